"""The jitted pointwise kernel: Y[m, n] = act(sum_k X[m, k] W[n, k] * scale[n] + shift[n]) (+ R[m, n])."""

from __future__ import annotations

import triton
import triton.language as tl

from kernels import autotune_bench, interpreted
from kernels.activations import apply_activation


def _configs() -> list[triton.Config]:
    if interpreted():  # one config: the interpreter would run every candidate
        return [triton.Config({"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 32}, num_warps=4)]
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
        for bm, bn, bk, w, s in [
            (64, 64, 32, 4, 3),
            (128, 64, 32, 4, 3),
            (64, 128, 32, 4, 3),
            (128, 128, 32, 8, 3),
            (32, 64, 32, 4, 4),
            (128, 32, 64, 4, 3),
        ]
    ]


@triton.autotune(configs=_configs(), key=["M", "N", "K"], do_bench=autotune_bench)
@triton.jit(do_not_specialize=["M"])  # rows only bound masks: one compile serves every batch x resolution
def pointwise_kernel(
    x_ptr, w_ptr, scale_ptr, shift_ptr, res_ptr, y_ptr,
    M, N, K,
    stride_xm, stride_xk, stride_wn, stride_wk, stride_rm, stride_rn, stride_ym, stride_yn,
    ACT: tl.constexpr, HAS_RES: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        rk = k0 + tl.arange(0, BLOCK_K)
        a = tl.load(
            x_ptr + rm[:, None] * stride_xm + rk[None, :] * stride_xk,
            mask=(rm[:, None] < M) & (rk[None, :] < K), other=0.0,
        )  # fmt: skip
        b = tl.load(
            w_ptr + rn[None, :] * stride_wn + rk[:, None] * stride_wk,
            mask=(rn[None, :] < N) & (rk[:, None] < K), other=0.0,
        )  # fmt: skip
        if UPCAST:  # the CPU interpreter has no bfloat16 products: multiply in float32 there
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc += tl.dot(a, b, input_precision=PRECISION)
    scale = tl.load(scale_ptr + rn, mask=rn < N, other=0.0)
    shift = tl.load(shift_ptr + rn, mask=rn < N, other=0.0)
    y = apply_activation(acc * scale[None, :] + shift[None, :], ACT)
    mask = (rm[:, None] < M) & (rn[None, :] < N)
    if HAS_RES:
        r = tl.load(res_ptr + rm[:, None] * stride_rm + rn[None, :] * stride_rn, mask=mask, other=0.0)
        y += r.to(tl.float32)
    tl.store(y_ptr + rm[:, None] * stride_ym + rn[None, :] * stride_yn, y.to(y_ptr.dtype.element_ty), mask=mask)
