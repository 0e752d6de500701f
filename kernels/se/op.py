"""Validating wrapper of the SE kernels."""

from __future__ import annotations

import torch
import triton

from kernels import KernelInputError, check_tensor

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def squeeze_excite(
    x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor
) -> torch.Tensor:
    """SE gating of NCHW ``x``: ``w1`` [mid, C] (or [mid, C, 1, 1]), ``w2`` [C, mid]; channels-last output."""
    from kernels.se.kernel import se_fc_kernel, se_pool_kernel, se_scale_kernel

    check_tensor("x", x, 4, DTYPES)
    n, c, h, w = x.shape
    w1m = w1.reshape(w1.shape[0], -1).float().contiguous()
    w2m = w2.reshape(w2.shape[0], -1).float().contiguous()
    mid = w1m.shape[0]
    if w1m.shape[1] != c or tuple(w2m.shape) != (c, mid):
        raise KernelInputError(f"w1/w2: expected [mid, {c}] and [{c}, mid], got {tuple(w1.shape)}, {tuple(w2.shape)}")
    if b1.shape != (mid,) or b2.shape != (c,):
        raise KernelInputError(f"b1/b2: expected [{mid}] and [{c}], got {tuple(b1.shape)}, {tuple(b2.shape)}")
    pooled = torch.empty((n, c), device=x.device, dtype=torch.float32)
    gate = torch.empty((n, c), device=x.device, dtype=torch.float32)
    y = torch.empty_like(x, memory_format=torch.channels_last)
    block_c, block_hw = 32, 64
    se_pool_kernel[(n, triton.cdiv(c, block_c))](
        x, pooled, c, h * w, w, x.stride(0), x.stride(1), x.stride(2), x.stride(3),
        BLOCK_HW=block_hw, BLOCK_C=block_c,
    )  # fmt: skip
    se_fc_kernel[(n,)](
        pooled, w1m, b1.float().contiguous(), w2m, b2.float().contiguous(), gate, c, mid,
        BLOCK_MID=max(16, triton.next_power_of_2(mid)), BLOCK_C=block_c,
    )  # fmt: skip
    se_scale_kernel[(n, triton.cdiv(h * w, block_hw), triton.cdiv(c, block_c))](
        x, gate, y, c, h * w, w, x.stride(0), x.stride(1), x.stride(2), x.stride(3),
        y.stride(0), y.stride(1), y.stride(2), y.stride(3), BLOCK_HW=block_hw, BLOCK_C=block_c,
    )  # fmt: skip
    return y
