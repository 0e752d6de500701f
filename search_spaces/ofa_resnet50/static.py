"""Plain (static) OFA ResNet subnets, built from a static config: ordinary convolutions, BN,
pooling and a linear classifier; what ``Supernet.extract`` returns and what gets exported."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from search_spaces.ofa_mbv3.static import ConvBNAct, conv_from_config


class ResidualConv(nn.Module):
    """``conv_residual``: a conv-BN-ReLU whose input is added to its output (the stem's middle conv)."""

    def __init__(self, layer: Mapping[str, Any], bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.conv = conv_from_config(layer, bn_momentum, bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + x


class Bottleneck(nn.Module):
    """``bottleneck``: 1x1 reduce, 3x3 (strided), 1x1 expand, shortcut (identity, or average
    pooling by the stride then a 1x1 conv), ReLU after the addition."""

    def __init__(self, layer: Mapping[str, Any], bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> None:
        super().__init__()
        bn: dict[str, Any] = {"bn_momentum": bn_momentum, "bn_eps": bn_eps}
        in_ch, mid, out_ch, stride = layer["in_ch"], layer["mid_ch"], layer["out_ch"], layer["stride"]
        self.conv1 = ConvBNAct(in_ch, mid, 1, act="relu", **bn)
        self.conv2 = ConvBNAct(mid, mid, 3, stride, act="relu", **bn)
        self.conv3 = ConvBNAct(mid, out_ch, 1, act=None, **bn)
        self.downsample: nn.Module | None = None
        if layer["downsample"]:
            self.downsample = nn.Sequential(
                nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity(),
                ConvBNAct(in_ch, out_ch, 1, act=None, **bn),
            )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.act(self.conv3(self.conv2(self.conv1(x))) + shortcut)


def layer_module(layer: Mapping[str, Any], bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
    """The module of one static-config entry (the classifier excluded)."""
    op = layer["op"]
    if op == "conv":
        return conv_from_config(layer, bn_momentum, bn_eps)
    if op == "conv_residual":
        return ResidualConv(layer, bn_momentum, bn_eps)
    if op == "maxpool":
        return nn.MaxPool2d(3, 2, 1)
    if op == "bottleneck":
        return Bottleneck(layer, bn_momentum, bn_eps)
    if op == "pool":
        return nn.AdaptiveAvgPool2d(1)
    raise ValueError(f"static config: unknown ofa_resnet50 op {op!r}")


class StaticOFAResNet(nn.Module):
    """A fixed subnet: the layers of the static config in order, then the classifier.

    Args:
        static_config: Layer list from ``OFAResNetSpace.static_config``.
        bn_momentum: BatchNorm momentum.
        bn_eps: BatchNorm epsilon.
    """

    def __init__(
        self, static_config: Sequence[Mapping[str, Any]], bn_momentum: float = 0.1, bn_eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.static_config = [dict(layer) for layer in static_config]
        if not self.static_config or self.static_config[-1]["op"] != "linear":
            raise ValueError("static config must end with the classifier ('linear' layer)")
        self.layers = nn.ModuleList(layer_module(layer, bn_momentum, bn_eps) for layer in self.static_config[:-1])
        head = self.static_config[-1]
        self.classifier = nn.Sequential(
            nn.Dropout(head.get("dropout", 0.0)),
            nn.Linear(head["in_features"], head["out_features"], bias=head["bias"]),
        )

    def module_name(self, layer: str) -> str:
        """The module that computes static-config layer ``layer`` (``layers.<position>``)."""
        names = [entry["name"] for entry in self.static_config[:-1]]
        if layer not in names:
            raise ValueError(f"no layer {layer!r} in this subnet; it has {names}")
        return f"layers.{names.index(layer)}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.classifier(torch.flatten(x, 1))
