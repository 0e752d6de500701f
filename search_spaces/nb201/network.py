"""The NAS-Bench-201 network for one cell: C=16, N=5 cells per stage, as in the benchmark.

Skeleton: 3x3 conv stem + BN; three stages of N cells with a residual reduction
block (stride 2, channels doubled) between stages; BN + ReLU, global average
pooling and a linear classifier. Cell ops: ``nor_conv_kxk`` is ReLU-Conv-BN,
``avg_pool_3x3`` is a 3x3 average pool (stride 1), ``skip_connect`` the identity and
``none`` a zero. Node j sums the ops of its incoming edges; the cell outputs node 3.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nas.core.arch import Arch
from nas.core.space import create_space
from search_spaces.nb201.cell import EDGES


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """The ``none`` op: a zero tensor of the input's shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, channels: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"op: unknown NAS-Bench-201 op {name!r}")


class Cell(nn.Module):
    def __init__(self, ops: list[str], channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(make_op(op, channels) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for target in range(1, 4):
            nodes.append(sum(self.edges[k](nodes[source]) for k, (source, t) in enumerate(EDGES) if t == target))
        return nodes[3]


class ResidualReduction(nn.Module):
    """ResNet basic block with stride 2 between stages (channels doubled)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """One NAS-Bench-201 architecture as a network.

    Args:
        arch: The arch (or its JSON / string form).
        num_classes: Classifier outputs.
        channels: Stem channels C (16 in the benchmark).
        cells_per_stage: N (5 in the benchmark).
        in_channels: Image channels.
    """

    def __init__(
        self,
        arch: Arch | dict[str, Any] | str,
        num_classes: int = 10,
        channels: int = 16,
        cells_per_stage: int = 5,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        space: Any = create_space("nb201")
        self.arch = space.from_string(arch) if isinstance(arch, str) else space.make(arch)
        ops = self.arch["ops"]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            layers.extend(Cell(ops, c) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))
