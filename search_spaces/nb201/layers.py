"""The layer kinds of NAS-Bench-201's static configs (``nb201_cell``, ``nb201_reduction``,
``nb201_lastact``; the stem, pooling and classifier use the shared ``conv``, ``pool``, ``linear``):
what each costs and the module that computes it, registered as ``layer`` ops.

Counting as for the other spaces: convolutions and the classifier cost multiply-accumulates
(ReLU, BN, pooling, the ``none`` op's zeroing and node sums are free); parameters are weights,
biases and BN affine parameters. Ops on edges that no input-to-output path uses still run in
the benchmark's network, so they count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_spaces.ofa_mbv3.layers import conv_cost

KERNELS = {"nor_conv_3x3": 3, "nor_conv_1x1": 1}


def _image_shape(layer: Mapping[str, Any]) -> tuple[int, int, int]:
    return (layer["in_ch"], layer["in_hw"], layer["in_hw"])


class CellLayer:
    """``nb201_cell``: one cell of six edges (``ops``) at ``in_ch`` channels."""

    @staticmethod
    def cost(layer: Mapping[str, Any]) -> tuple[int, int]:
        c, hw = layer["in_ch"], layer["in_hw"]
        parts = [conv_cost(c, c, KERNELS[op], hw, bn=True) for op in layer["ops"] if op in KERNELS]
        return sum(p[0] for p in parts), sum(p[1] for p in parts)

    @staticmethod
    def module(layer: Mapping[str, Any]) -> tuple[Any, tuple[int, ...]]:
        from search_spaces.nb201.network import Cell

        return Cell(list(layer["ops"]), layer["in_ch"]), _image_shape(layer)


class ReductionLayer:
    """``nb201_reduction``: the residual block between stages (stride 2, channels doubled)."""

    @staticmethod
    def cost(layer: Mapping[str, Any]) -> tuple[int, int]:
        c_in, c_out, out_hw = layer["in_ch"], layer["out_ch"], layer["out_hw"]
        parts = [
            conv_cost(c_in, c_out, 3, out_hw, bn=True),
            conv_cost(c_out, c_out, 3, out_hw, bn=True),
            conv_cost(c_in, c_out, 1, out_hw),
        ]
        return sum(p[0] for p in parts), sum(p[1] for p in parts)

    @staticmethod
    def module(layer: Mapping[str, Any]) -> tuple[Any, tuple[int, ...]]:
        from search_spaces.nb201.network import ResidualReduction

        return ResidualReduction(layer["in_ch"], layer["out_ch"]), _image_shape(layer)


class LastActLayer:
    """``nb201_lastact``: BN and ReLU before the pooling."""

    @staticmethod
    def cost(layer: Mapping[str, Any]) -> tuple[int, int]:
        return 0, 2 * layer["in_ch"]

    @staticmethod
    def module(layer: Mapping[str, Any]) -> tuple[Any, tuple[int, ...]]:
        from torch import nn

        return nn.Sequential(nn.BatchNorm2d(layer["in_ch"]), nn.ReLU()), _image_shape(layer)


__all__ = ["CellLayer", "LastActLayer", "ReductionLayer"]
