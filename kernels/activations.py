"""Activations shared by the kernels (codes from :data:`kernels.ACTIVATIONS`)."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def apply_activation(y, ACT: tl.constexpr):
    if ACT == 1:  # relu
        y = tl.maximum(y, 0.0)
    elif ACT == 2:  # h-swish: x * relu6(x + 3) / 6
        y = y * tl.minimum(tl.maximum(y + 3.0, 0.0), 6.0) / 6.0
    elif ACT == 3:  # relu6
        y = tl.minimum(tl.maximum(y, 0.0), 6.0)
    return y


@triton.jit
def hard_sigmoid(y):
    return tl.minimum(tl.maximum(y + 3.0, 0.0), 6.0) / 6.0
