"""Pure-torch depthwise convolution with folded BN and activation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels.reference import activation


def depthwise_reference(
    x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, stride: int, act: str | None
) -> torch.Tensor:
    """``x`` NCHW, ``weight`` [C, 1, k, k]; padding k // 2; computed in float32."""
    k = weight.shape[-1]
    y = F.conv2d(x.float(), weight.float(), stride=stride, padding=k // 2, groups=x.shape[1])
    y = activation(y * scale.float()[None, :, None, None] + shift.float()[None, :, None, None], act)
    return y.to(x.dtype)
