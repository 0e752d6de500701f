"""The layer kinds of once-for-all MobileNetV3's static configs (``conv``, ``mbconv``, ``pool``,
``linear``): what each costs and the module that computes it (registered as ``layer`` ops).

Counting convention (once-for-all's ``count_net_flops``, so numbers compare with published
ones): a convolution costs ``out_elements * in_ch / groups * k * k`` multiply-
accumulates (a bias adds none), a linear layer ``in_features * out_features`` per sample; BN, activations,
pooling, residual additions and the SE gating multiply are free. Parameters are the
trainable tensors of the static network: weights, biases and BN affine parameters
(running statistics are buffers and are not counted).

A new supernet family with layers of its own registers its kinds the same way: an object
with ``cost(layer) -> (macs, params)`` and ``module(layer) -> (module, input shape)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def conv_cost(
    in_ch: int, out_ch: int, kernel: int, out_hw: int, *, groups: int = 1, bias: bool = False, bn: bool = False
) -> tuple[int, int]:
    """(MACs per sample, parameters) of one square convolution, optionally followed by BN.

    A bias is an addition, not a multiply-accumulate: it adds parameters, not MACs (as the
    reference's own counter, ``ofa.utils.pytorch_utils.count_net_flops``, counts).
    """
    macs = out_hw * out_hw * out_ch * (in_ch // groups * kernel * kernel)
    params = out_ch * (in_ch // groups) * kernel * kernel + (out_ch if bias else 0) + (2 * out_ch if bn else 0)
    return macs, params


def _add(*costs: tuple[int, int]) -> tuple[int, int]:
    return sum(c[0] for c in costs), sum(c[1] for c in costs)


def _image_shape(layer: Mapping[str, Any]) -> tuple[int, int, int]:
    return (layer["in_ch"], layer["in_hw"], layer["in_hw"])


class ConvLayer:
    """``conv``: a square convolution with optional BN and activation."""

    @staticmethod
    def cost(layer: Mapping[str, Any]) -> tuple[int, int]:
        return conv_cost(
            layer["in_ch"], layer["out_ch"], layer["kernel"], layer["out_hw"], groups=layer.get("groups", 1),
            bias=layer["bias"], bn=layer["bn"],
        )  # fmt: skip

    @staticmethod
    def module(layer: Mapping[str, Any]) -> tuple[Any, tuple[int, ...]]:
        from search_spaces.ofa_mbv3.static import conv_from_config

        return conv_from_config(layer), _image_shape(layer)


class MBConvLayer:
    """``mbconv``: expand 1x1, depthwise kxk, optional squeeze-and-excitation, project 1x1."""

    @staticmethod
    def cost(layer: Mapping[str, Any]) -> tuple[int, int]:
        mid, in_hw, out_hw = layer["mid_ch"], layer["in_hw"], layer["out_hw"]
        parts = []
        if layer["expand"] != 1:
            parts.append(conv_cost(layer["in_ch"], mid, 1, in_hw, bn=True))
        parts.append(conv_cost(mid, mid, layer["kernel"], out_hw, groups=mid, bn=True))
        if layer["se"]:
            se_mid = layer["se_mid"]
            parts.append(conv_cost(mid, se_mid, 1, 1, bias=True))
            parts.append(conv_cost(se_mid, mid, 1, 1, bias=True))
        parts.append(conv_cost(mid, layer["out_ch"], 1, out_hw, bn=True))
        return _add(*parts)

    @staticmethod
    def module(layer: Mapping[str, Any]) -> tuple[Any, tuple[int, ...]]:
        from search_spaces.ofa_mbv3.static import block_from_config

        return block_from_config(layer), _image_shape(layer)


class _GlobalPool:
    """Global average pooling exactly as the static network computes it."""

    def __call__(self, x: Any) -> Any:
        return x.mean((2, 3), keepdim=True)

    def to(self, *args: Any, **kwargs: Any) -> _GlobalPool:
        return self

    def eval(self) -> _GlobalPool:
        return self


class PoolLayer:
    """``pool``: global average pooling (free)."""

    @staticmethod
    def cost(layer: Mapping[str, Any]) -> tuple[int, int]:
        return 0, 0

    @staticmethod
    def module(layer: Mapping[str, Any]) -> tuple[Any, tuple[int, ...]]:
        return _GlobalPool(), _image_shape(layer)


class LinearLayer:
    """``linear``: the classifier."""

    @staticmethod
    def cost(layer: Mapping[str, Any]) -> tuple[int, int]:
        in_f, out_f = layer["in_features"], layer["out_features"]
        return in_f * out_f, in_f * out_f + (out_f if layer["bias"] else 0)

    @staticmethod
    def module(layer: Mapping[str, Any]) -> tuple[Any, tuple[int, ...]]:
        from torch import nn

        return nn.Linear(layer["in_features"], layer["out_features"], bias=layer["bias"]), (layer["in_features"],)


__all__ = ["ConvLayer", "LinearLayer", "MBConvLayer", "PoolLayer", "conv_cost"]
