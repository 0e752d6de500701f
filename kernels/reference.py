"""Pure-torch references shared by the ops."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def activation(y: torch.Tensor, act: str | None) -> torch.Tensor:
    if act in (None, "none"):
        return y
    if act == "relu":
        return F.relu(y)
    if act == "h_swish":
        return F.hardswish(y)
    if act == "relu6":
        return F.relu6(y)
    raise ValueError(f"act: unknown activation {act!r}")


def fold_bn(
    bn: torch.nn.Module | None, channels: int, bias: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) equal to an eval-mode BatchNorm (identity when ``bn`` is None)."""
    if bn is None or isinstance(bn, torch.nn.Identity):
        scale = torch.ones(channels)
        shift = torch.zeros(channels) if bias is None else bias.detach().float().clone()
        return scale, shift
    inv = torch.rsqrt(bn.running_var.float() + bn.eps)
    weight = bn.weight.detach().float() if bn.weight is not None else torch.ones(channels)
    beta = bn.bias.detach().float() if bn.bias is not None else torch.zeros(channels)
    scale = weight * inv
    shift = beta - bn.running_mean.float() * scale
    if bias is not None:
        shift = shift + bias.detach().float() * scale
    return scale, shift
