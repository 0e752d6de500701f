"""MACs and parameter counts of a subnet from its static config (no torch).

Counting convention (once-for-all's ``count_net_flops``, so numbers compare with
published ones): a convolution costs ``out_elements * (in_ch / groups * k * k + bias)``
multiply-accumulates, a linear layer ``in_features * out_features`` per sample; BN,
activations, pooling, residual additions and the SE gating multiply are free.
Parameters are the trainable tensors of the static network: weights, biases and
BN affine parameters (running statistics are buffers and are not counted).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cost:
    """Multiply-accumulates (per sample) and trainable parameters."""

    macs: int = 0
    params: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.macs + other.macs, self.params + other.params)


def conv_cost(
    in_ch: int,
    out_ch: int,
    kernel: int,
    out_hw: int,
    *,
    groups: int = 1,
    bias: bool = False,
    bn: bool = False,
) -> Cost:
    """Cost of one square convolution (optionally followed by BN)."""
    per_output = in_ch // groups * kernel * kernel + (1 if bias else 0)
    macs = out_hw * out_hw * out_ch * per_output
    params = out_ch * (in_ch // groups) * kernel * kernel
    params += out_ch if bias else 0
    params += 2 * out_ch if bn else 0
    return Cost(macs, params)


def layer_cost(layer: Mapping[str, Any]) -> Cost:
    """Cost of one static-config entry.

    Raises:
        ValueError: for an unknown ``op``.
    """
    op = layer["op"]
    if op == "conv":
        return conv_cost(
            layer["in_ch"],
            layer["out_ch"],
            layer["kernel"],
            layer["out_hw"],
            groups=layer.get("groups", 1),
            bias=layer["bias"],
            bn=layer["bn"],
        )
    if op == "mbconv":
        mid, in_hw, out_hw = layer["mid_ch"], layer["in_hw"], layer["out_hw"]
        total = Cost()
        if layer["expand"] != 1:
            total += conv_cost(layer["in_ch"], mid, 1, in_hw, bn=True)
        total += conv_cost(mid, mid, layer["kernel"], out_hw, groups=mid, bn=True)
        if layer["se"]:
            se_mid = layer["se_mid"]
            total += conv_cost(mid, se_mid, 1, 1, bias=True)
            total += conv_cost(se_mid, mid, 1, 1, bias=True)
        total += conv_cost(mid, layer["out_ch"], 1, out_hw, bn=True)
        return total
    if op == "pool":
        return Cost()
    if op == "linear":
        in_f, out_f = layer["in_features"], layer["out_features"]
        return Cost(in_f * out_f, in_f * out_f + (out_f if layer["bias"] else 0))
    raise ValueError(f"op: unknown layer kind {op!r} in static config")


def arch_cost(space: Any, arch: Any) -> Cost | None:
    """MACs and parameters of ``arch``, or ``None`` for a space without a static layer description."""
    try:
        config = space.static_config(arch)
    except NotImplementedError:
        return None
    return count_cost(config)


def count_cost(static_config: Iterable[Mapping[str, Any]]) -> Cost:
    """Total MACs (per sample) and parameters of a static config."""
    total = Cost()
    for layer in static_config:
        total += layer_cost(layer)
    return total
