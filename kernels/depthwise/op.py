"""Validating wrapper of the depthwise kernel."""

from __future__ import annotations

import torch

from kernels import KernelInputError, activation_code, check_tensor

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def depthwise_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    stride: int = 1,
    act: str | None = None,
) -> torch.Tensor:
    """Depthwise k x k convolution (padding k // 2) of NCHW ``x`` with folded BN and activation.

    Args:
        x: ``[N, C, H, W]`` (NCHW or channels-last memory).
        weight: ``[C, 1, k, k]`` with k in 3, 5, 7.
        scale, shift: ``[C]``.
        stride: 1 or 2.

    Returns:
        ``[N, C, OH, OW]`` in channels-last memory, dtype of ``x``.
    """
    from kernels.depthwise.kernel import depthwise_kernel

    check_tensor("x", x, 4, DTYPES)
    check_tensor("weight", weight, 4, DTYPES)
    n, c, h, w = x.shape
    k = weight.shape[-1]
    if tuple(weight.shape) != (c, 1, k, k) or k not in (3, 5, 7):
        raise KernelInputError(f"weight: expected [{c}, 1, k, k] with k in 3, 5, 7, got {tuple(weight.shape)}")
    if stride not in (1, 2):
        raise KernelInputError(f"stride: use 1 or 2, got {stride}")
    for name, t in (("scale", scale), ("shift", shift)):
        check_tensor(name, t, 1)
        if t.shape[0] != c:
            raise KernelInputError(f"{name}: expected [{c}], got {tuple(t.shape)}")
    pad = k // 2
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    y = torch.empty((n, c, oh, ow), device=x.device, dtype=x.dtype, memory_format=torch.channels_last)
    wk = weight.to(x.dtype).reshape(c, k * k).contiguous()
    p = n * oh * ow

    def grid(meta: dict) -> tuple[int, int]:
        return (-(-p // meta["BLOCK_P"]), -(-c // meta["BLOCK_C"]))

    depthwise_kernel[grid](
        x, wk, scale.float().contiguous(), shift.float().contiguous(), y,
        p, c, h, w, oh, ow,
        x.stride(0), x.stride(1), x.stride(2), x.stride(3), y.stride(0), y.stride(1), y.stride(2), y.stride(3),
        KS=k, STRIDE=stride, ACT=activation_code(act),
    )  # fmt: skip
    return y
