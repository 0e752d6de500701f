"""Validating wrapper of the pointwise kernel."""

from __future__ import annotations

import torch

from kernels import KernelInputError, activation_code, check_tensor, interpreted

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def pointwise_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    act: str | None = None,
    residual: torch.Tensor | None = None,
    *,
    tf32: bool = False,
) -> torch.Tensor:
    """1x1 convolution of NCHW ``x`` (NCHW or channels-last memory) with folded BN and activation.

    Args:
        x: ``[N, Cin, H, W]``.
        weight: ``[Cout, Cin]`` or ``[Cout, Cin, 1, 1]``.
        scale, shift: ``[Cout]`` per-channel affine after the product (folded BatchNorm).
        act: ``relu``, ``h_swish`` or ``None``.
        residual: optional ``[N, Cout, H, W]`` added after the activation.
        tf32: allow TF32 products for float32 inputs on GPUs that have them.

    Returns:
        ``[N, Cout, H, W]`` in channels-last memory, dtype of ``x``.
    """
    from kernels.pointwise.kernel import pointwise_kernel

    check_tensor("x", x, 4, DTYPES)
    check_tensor("weight", weight, None, DTYPES)
    n, cin, h, w = x.shape
    w2 = weight.reshape(weight.shape[0], -1) if weight.dim() in (2, 4) else None
    if w2 is None or w2.shape[1] != cin or (weight.dim() == 4 and weight.shape[2:] != (1, 1)):
        raise KernelInputError(f"weight: expected [Cout, {cin}] or [Cout, {cin}, 1, 1], got {tuple(weight.shape)}")
    cout = w2.shape[0]
    for name, t in (("scale", scale), ("shift", shift)):
        check_tensor(name, t, 1)
        if t.shape[0] != cout:
            raise KernelInputError(f"{name}: expected [{cout}], got {tuple(t.shape)}")
    if residual is not None:
        check_tensor("residual", residual, 4)
        if tuple(residual.shape) != (n, cout, h, w):
            raise KernelInputError(f"residual: expected {(n, cout, h, w)}, got {tuple(residual.shape)}")
    code = activation_code(act)
    xm = x.permute(0, 2, 3, 1).reshape(n * h * w, cin)  # a view for channels-last input
    wm = w2.to(x.dtype)
    y = torch.empty((n, cout, h, w), device=x.device, dtype=x.dtype, memory_format=torch.channels_last)
    ym = y.permute(0, 2, 3, 1).reshape(n * h * w, cout)
    rm = residual.permute(0, 2, 3, 1).reshape(n * h * w, cout) if residual is not None else ym
    m = n * h * w
    precision = "tf32" if (tf32 and x.dtype == torch.float32) else "ieee"

    def grid(meta: dict) -> tuple[int, int]:
        return (-(-m // meta["BLOCK_M"]), -(-cout // meta["BLOCK_N"]))

    pointwise_kernel[grid](
        xm, wm, scale.float().contiguous(), shift.float().contiguous(), rm, ym,
        m, cout, cin,
        xm.stride(0), xm.stride(1), wm.stride(0), wm.stride(1), rm.stride(0), rm.stride(1),
        ym.stride(0), ym.stride(1),
        ACT=code, HAS_RES=residual is not None, PRECISION=precision,
        UPCAST=interpreted() and x.dtype == torch.bfloat16,
    )  # fmt: skip
    return y
