"""The layer kinds of once-for-all ResNet's static configs that the MobileNetV3 kinds do not
cover (``conv_residual``, ``maxpool``, ``bottleneck``): what each costs and the module that
computes it, registered as ``layer`` ops. ``conv``, ``pool`` and ``linear`` are the shared kinds.

Counting convention as for MobileNetV3 (once-for-all's ``count_net_flops``): convolutions and
the classifier cost multiply-accumulates; BN, activations, pooling (max and average, the
shortcut's too) and residual additions are free; parameters are weights, biases and BN affine
parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_spaces.ofa_mbv3.layers import conv_cost


def _image_shape(layer: Mapping[str, Any]) -> tuple[int, int, int]:
    return (layer["in_ch"], layer["in_hw"], layer["in_hw"])


class ResidualConvLayer:
    """``conv_residual``: a 3x3 conv-BN-ReLU plus its input."""

    @staticmethod
    def cost(layer: Mapping[str, Any]) -> tuple[int, int]:
        return conv_cost(layer["in_ch"], layer["out_ch"], layer["kernel"], layer["out_hw"], bn=True)

    @staticmethod
    def module(layer: Mapping[str, Any]) -> tuple[Any, tuple[int, ...]]:
        from search_spaces.ofa_resnet50.static import layer_module

        return layer_module(layer), _image_shape(layer)


class MaxPoolLayer:
    """``maxpool``: 3x3 stride-2 max pooling (free)."""

    @staticmethod
    def cost(layer: Mapping[str, Any]) -> tuple[int, int]:
        return 0, 0

    @staticmethod
    def module(layer: Mapping[str, Any]) -> tuple[Any, tuple[int, ...]]:
        from search_spaces.ofa_resnet50.static import layer_module

        return layer_module(layer), _image_shape(layer)


class BottleneckLayer:
    """``bottleneck``: 1x1 reduce, 3x3, 1x1 expand, and a projection shortcut where the shape changes."""

    @staticmethod
    def cost(layer: Mapping[str, Any]) -> tuple[int, int]:
        in_ch, mid, out_ch = layer["in_ch"], layer["mid_ch"], layer["out_ch"]
        parts = [
            conv_cost(in_ch, mid, 1, layer["in_hw"], bn=True),
            conv_cost(mid, mid, 3, layer["out_hw"], bn=True),
            conv_cost(mid, out_ch, 1, layer["out_hw"], bn=True),
        ]
        if layer["downsample"]:
            parts.append(conv_cost(in_ch, out_ch, 1, layer["downsample_hw"], bn=True))
        return sum(p[0] for p in parts), sum(p[1] for p in parts)

    @staticmethod
    def module(layer: Mapping[str, Any]) -> tuple[Any, tuple[int, ...]]:
        from search_spaces.ofa_resnet50.static import layer_module

        return layer_module(layer), _image_shape(layer)


__all__ = ["BottleneckLayer", "MaxPoolLayer", "ResidualConvLayer"]
