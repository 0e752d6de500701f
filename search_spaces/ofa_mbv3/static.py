"""Plain (static) OFA MobileNetV3 subnets, built from a static config.

This is what ``Supernet.extract`` returns and what gets exported: ordinary
``nn.Conv2d`` / ``nn.BatchNorm2d`` / ``nn.Linear`` layers and timm's ``SEModule``,
no slicing, no supernet code needed at inference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from timm.layers import SEModule
from torch import nn


def make_activation(name: str | None) -> nn.Module:
    """``relu`` / ``relu6`` / ``h_swish`` / ``None`` as a module."""
    if name is None or name == "none":
        return nn.Identity()
    # in place: they follow a BN or a convolution whose output nothing else reads, and a fresh
    # output tensor costs several times the activation itself on a CPU
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "h_swish":
        return nn.Hardswish()
    raise ValueError(f"act: unknown activation {name!r}; use relu, relu6, h_swish or none")


class ConvBNAct(nn.Module):
    """Convolution (``padding = k // 2``), optional BatchNorm, optional activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        *,
        groups: int = 1,
        bn: bool = True,
        act: str | None = None,
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum) if bn else nn.Identity()
        self.act = make_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class MBConvBlock(nn.Module):
    """Inverted-residual block: 1x1 expand, kxk depthwise, SE, 1x1 project, residual."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int,
        kernel_size: int,
        stride: int,
        *,
        expand: bool,
        se_channels: int = 0,
        act: str = "relu",
        residual: bool = False,
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        bn_kw: dict[str, Any] = {"bn_momentum": bn_momentum, "bn_eps": bn_eps}
        self.expand = ConvBNAct(in_channels, mid_channels, 1, act=act, **bn_kw) if expand else None
        self.depthwise = ConvBNAct(
            mid_channels, mid_channels, kernel_size, stride, groups=mid_channels, act=act, **bn_kw
        )
        self.se = (
            SEModule(mid_channels, rd_channels=se_channels, act_layer=nn.ReLU, gate_layer=nn.Hardsigmoid)
            if se_channels
            else None
        )
        self.project = ConvBNAct(mid_channels, out_channels, 1, act=None, **bn_kw)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.expand is None else self.expand(x)
        y = self.depthwise(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y


def block_from_config(layer: Mapping[str, Any], bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> MBConvBlock:
    """An MBConv block from one ``mbconv`` static-config entry."""
    return MBConvBlock(
        layer["in_ch"],
        layer["out_ch"],
        layer["mid_ch"],
        layer["kernel"],
        layer["stride"],
        expand=layer["expand"] != 1,
        se_channels=layer["se_mid"] if layer["se"] else 0,
        act=layer["act"],
        residual=layer["residual"],
        bn_momentum=bn_momentum,
        bn_eps=bn_eps,
    )


def conv_from_config(layer: Mapping[str, Any], bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> ConvBNAct:
    """A conv(+BN)(+act) layer from one ``conv`` static-config entry."""
    return ConvBNAct(
        layer["in_ch"],
        layer["out_ch"],
        layer["kernel"],
        layer["stride"],
        groups=layer.get("groups", 1),
        bn=layer["bn"],
        act=layer["act"],
        bn_momentum=bn_momentum,
        bn_eps=bn_eps,
    )


class StaticOFAMobileNetV3(nn.Module):
    """A fixed subnet: stem, MBConv blocks, [final expand], pool and feature mix (in the order of
    the static config), classifier.

    Args:
        static_config: Layer list from ``OFAMobileNetV3Space.static_config``.
        bn_momentum: BatchNorm momentum.
        bn_eps: BatchNorm epsilon.
    """

    def __init__(
        self, static_config: Sequence[Mapping[str, Any]], bn_momentum: float = 0.1, bn_eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.static_config = [dict(layer) for layer in static_config]
        by_name = {layer["name"]: layer for layer in self.static_config}
        for required in ("stem", "feature_mix", "pool", "classifier"):
            if required not in by_name:
                raise ValueError(f"static config lacks the {required!r} layer")
        bn_kw: dict[str, Any] = {"bn_momentum": bn_momentum, "bn_eps": bn_eps}
        self.stem = conv_from_config(by_name["stem"], **bn_kw)
        self.blocks = nn.Sequential(
            *[block_from_config(layer, **bn_kw) for layer in self.static_config if layer["op"] == "mbconv"]
        )
        self.final_expand = conv_from_config(by_name["final_expand"], **bn_kw) if "final_expand" in by_name else None
        self.feature_mix = conv_from_config(by_name["feature_mix"], **bn_kw)
        names = [layer["name"] for layer in self.static_config]
        self.feature_mix_before_pool = names.index("feature_mix") < names.index("pool")
        head = by_name["classifier"]
        self.classifier = nn.Sequential(
            nn.Dropout(head.get("dropout", 0.0)),
            nn.Linear(head["in_features"], head["out_features"], bias=head["bias"]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        if self.final_expand is not None:
            x = self.final_expand(x)
        if self.feature_mix_before_pool:
            x = self.feature_mix(x).mean((2, 3), keepdim=True)
        else:
            x = self.feature_mix(x.mean((2, 3), keepdim=True))
        return self.classifier(torch.flatten(x, 1))
