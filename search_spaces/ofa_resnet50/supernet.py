"""Weight-sharing once-for-all ResNet-50 supernet (elastic depth, expand ratio, width)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from nas.core.arch import Arch
from search_spaces.dynamic_ops import DynamicBatchNorm2d, DynamicConv2d, DynamicLinear
from search_spaces.elastic.supernet import ElasticSupernet, copy_bn
from search_spaces.ofa_resnet50.config import OFAResNetConfig
from search_spaces.ofa_resnet50.static import Bottleneck, ResidualConv, StaticOFAResNet

if TYPE_CHECKING:  # the space builds its supernet; the supernet only reads the space
    from search_spaces.ofa_resnet50.space import OFAResNetSpace


class DynamicConvBN(nn.Module):
    """Convolution (leading slice of the output channels) and BN, optionally ReLU.

    Attributes:
        active_out_channels: Output channels to compute.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int, *, act: bool, cfg: OFAResNetConfig
    ) -> None:
        super().__init__()
        self.conv = DynamicConv2d(in_channels, out_channels, kernel, stride)
        self.bn = DynamicBatchNorm2d(out_channels, eps=cfg.bn_eps, momentum=cfg.bn_momentum)
        self.act = nn.ReLU() if act else nn.Identity()
        self.active_out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.conv.active_out_channels = self.active_out_channels
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def copy_into(self, layer: nn.Module, in_channels: int) -> None:
        """Copies the active weights into a static ``ConvBNAct`` of matching shape."""
        out = self.active_out_channels
        layer.conv.weight.copy_(self.conv.active_weight(in_channels, out))
        copy_bn(self.bn, layer.bn, out)


class DynamicBottleneck(nn.Module):
    """Bottleneck block with elastic expand ratio and output width.

    Attributes:
        active_expand: Expand ratio in use (bottleneck width = output width x ratio).
        active_out_channels: Output channels in use.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        *,
        projection: bool,
        cfg: OFAResNetConfig,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.max_mid = cfg.mid_channels(out_channels, max(cfg.expand_choices))
        self.conv1 = DynamicConvBN(in_channels, self.max_mid, 1, 1, act=True, cfg=cfg)
        self.conv2 = DynamicConvBN(self.max_mid, self.max_mid, 3, stride, act=True, cfg=cfg)
        self.conv3 = DynamicConvBN(self.max_mid, out_channels, 1, 1, act=False, cfg=cfg)
        self.pool = nn.AvgPool2d(stride, stride, ceil_mode=True) if projection and stride > 1 else None
        self.downsample = DynamicConvBN(in_channels, out_channels, 1, 1, act=False, cfg=cfg) if projection else None
        self.act = nn.ReLU()
        self.active_expand = max(cfg.expand_choices)
        self.active_out_channels = out_channels

    @property
    def active_mid(self) -> int:
        return OFAResNetConfig.mid_channels(self.active_out_channels, self.active_expand)

    def _activate(self) -> None:
        mid, out = self.active_mid, self.active_out_channels
        self.conv1.active_out_channels = self.conv2.active_out_channels = mid
        self.conv3.active_out_channels = out
        if self.downsample is not None:
            self.downsample.active_out_channels = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._activate()
        shortcut = x if self.downsample is None else self.downsample(x if self.pool is None else self.pool(x))
        return self.act(self.conv3(self.conv2(self.conv1(x))) + shortcut)

    @torch.no_grad()
    def copy_into(self, block: Bottleneck, in_channels: int) -> None:
        self._activate()
        self.conv1.copy_into(block.conv1, in_channels)
        self.conv2.copy_into(block.conv2, self.active_mid)
        self.conv3.copy_into(block.conv3, self.active_mid)
        if self.downsample is not None:
            assert block.downsample is not None
            self.downsample.copy_into(block.downsample[1], in_channels)


class OFAResNetSupernet(ElasticSupernet):
    """Once-for-all ResNet with elastic depth, expand ratio, width (and resolution).

    Args:
        space: The space (or a preset name / config accepted by ``OFAResNetSpace``).
        seed: Seed of the weight initialisation (He fan-out for convs, as in once-for-all);
            ``None`` keeps PyTorch's default initialisation.
        **overrides: Config overrides when ``space`` is a name or config.
    """

    family = "ofa_resnet50"
    space: OFAResNetSpace

    def _build(self, cfg: OFAResNetConfig) -> None:
        mid, stem = max(cfg.stem_mid_channels()), max(cfg.stem_out_channels())
        self.stem = nn.ModuleList(
            [
                DynamicConvBN(cfg.in_channels, mid, 3, cfg.stem_stride, act=True, cfg=cfg),
                DynamicConvBN(mid, mid, 3, 1, act=True, cfg=cfg),
                DynamicConvBN(mid, stem, 3, 1, act=True, cfg=cfg),
            ]
        )
        self.max_pool = nn.MaxPool2d(3, 2, 1) if cfg.max_pool else None
        self.blocks = nn.ModuleList()
        in_ch = stem
        for s, built in enumerate(cfg.stage_blocks):
            out_ch = max(cfg.stage_channels(s))
            for i in range(built):
                stride = cfg.stage_strides[s] if i == 0 else 1
                self.blocks.append(
                    DynamicBottleneck(in_ch, out_ch, stride, projection=cfg.has_projection(s, i), cfg=cfg)
                )
                in_ch = out_ch
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = DynamicLinear(in_ch, cfg.num_classes)

    # ------------------------------------------------------------ activation
    def set_active(self, arch: Arch | Mapping[str, Any]) -> Arch:
        """Selects the subnet used by ``forward``; returns the canonical arch."""
        arch = self.space.make(arch)
        cfg = self.space.config
        w = arch["w"]
        self.stem[0].active_out_channels = self.stem[1].active_out_channels = cfg.stem_mid_channels()[w[0]]
        self.stem[2].active_out_channels = cfg.stem_out_channels()[w[1]]
        for s, offset in enumerate(cfg.stage_offsets):
            for i in range(cfg.stage_blocks[s]):
                block = self.blocks[offset + i]
                block.active_out_channels = cfg.stage_channels(s)[w[2 + s]]
                block.active_expand = arch["e"][offset + i]
        self.active_arch = arch
        return arch

    def skips_stem_conv(self) -> bool:
        return self.active_arch["d"][0] != max(self.space.config.depth_choices)

    def active_blocks(self) -> list[DynamicBottleneck]:
        """The blocks the active arch runs, in order."""
        cfg = self.space.config
        extra = self.active_arch["d"][1:]
        return [
            self.blocks[offset + i]
            for offset, base, x in zip(cfg.stage_offsets, cfg.base_depths, extra)
            for i in range(base + x)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem[0](x)
        if not self.skips_stem_conv():
            x = self.stem[1](x) + x
        x = self.stem[2](x)
        if self.max_pool is not None:
            x = self.max_pool(x)
        for block in self.active_blocks():
            x = block(x)
        x = x.mean((2, 3))
        return self.classifier(self.dropout(x))

    # ------------------------------------------------------------ extraction
    @torch.no_grad()
    def extract(self, arch: Arch | Mapping[str, Any] | None = None) -> StaticOFAResNet:
        """A plain network with copied weights equal to the supernet with ``arch`` active."""
        arch = self.active_arch if arch is None else self.space.make(arch)
        net: StaticOFAResNet = self._new_static(arch)
        layers = net.static_config
        with self.active(arch):
            blocks = iter(self.active_blocks())
            for layer, module in zip(layers, net.layers):
                name = layer["name"]
                if name in ("stem.0", "stem.2"):
                    self.stem[int(name[-1])].copy_into(module, layer["in_ch"])
                elif name == "stem.1":
                    assert isinstance(module, ResidualConv)
                    self.stem[1].copy_into(module.conv, layer["in_ch"])
                elif layer["op"] == "bottleneck":
                    assert isinstance(module, Bottleneck)
                    next(blocks).copy_into(module, layer["in_ch"])
        in_features = layers[-1]["in_features"]
        net.classifier[1].weight.copy_(self.classifier.linear.weight[:, :in_features])
        net.classifier[1].bias.copy_(self.classifier.linear.bias)
        return net
