"""The jitted SE kernels: pool, the two small FCs with their activations, and the gating multiply."""

from __future__ import annotations

import triton
import triton.language as tl

from kernels.activations import hard_sigmoid


@triton.jit
def se_pool_kernel(
    x_ptr, pooled_ptr, C, HW, W, sxn, sxc, sxh, sxw,
    BLOCK_HW: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """pooled[n, c] = mean over (h, w) of x[n, c, h, w] (float32)."""
    n = tl.program_id(0)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = c < C
    acc = tl.zeros((BLOCK_C,), dtype=tl.float32)
    for s0 in range(0, HW, BLOCK_HW):
        s = s0 + tl.arange(0, BLOCK_HW)
        h = s // W
        w = s % W
        v = tl.load(
            x_ptr + n * sxn + (h * sxh + w * sxw)[:, None] + c[None, :] * sxc,
            mask=(s < HW)[:, None] & c_ok[None, :], other=0.0,
        )  # fmt: skip
        acc += tl.sum(v.to(tl.float32), axis=0)
    tl.store(pooled_ptr + n * C + c, acc / HW, mask=c_ok)


@triton.jit
def se_fc_kernel(
    pooled_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, gate_ptr, C, MID,
    BLOCK_MID: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """gate[n] = h_sigmoid(W2 relu(W1 pooled[n] + b1) + b2); one program per sample."""
    n = tl.program_id(0)
    j = tl.arange(0, BLOCK_MID)
    j_ok = j < MID
    hidden = tl.zeros((BLOCK_MID,), dtype=tl.float32)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        c_ok = c < C
        p = tl.load(pooled_ptr + n * C + c, mask=c_ok, other=0.0)
        w1 = tl.load(w1_ptr + j[:, None] * C + c[None, :], mask=j_ok[:, None] & c_ok[None, :], other=0.0)
        hidden += tl.sum(w1.to(tl.float32) * p[None, :], axis=1)
    hidden = tl.maximum(hidden + tl.load(b1_ptr + j, mask=j_ok, other=0.0), 0.0)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        c_ok = c < C
        w2 = tl.load(w2_ptr + c[:, None] * MID + j[None, :], mask=c_ok[:, None] & j_ok[None, :], other=0.0)
        out = tl.sum(w2.to(tl.float32) * hidden[None, :], axis=1) + tl.load(b2_ptr + c, mask=c_ok, other=0.0)
        tl.store(gate_ptr + n * C + c, hard_sigmoid(out), mask=c_ok)


@triton.jit
def se_scale_kernel(
    x_ptr, gate_ptr, y_ptr, C, HW, W, sxn, sxc, sxh, sxw, syn, syc, syh, syw,
    BLOCK_HW: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """y[n, c, h, w] = x[n, c, h, w] * gate[n, c]."""
    n = tl.program_id(0)
    s = tl.program_id(1) * BLOCK_HW + tl.arange(0, BLOCK_HW)
    c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    h = s // W
    w = s % W
    mask = (s < HW)[:, None] & (c < C)[None, :]
    g = tl.load(gate_ptr + n * C + c, mask=c < C, other=0.0)
    v = tl.load(x_ptr + n * sxn + (h * sxh + w * sxw)[:, None] + c[None, :] * sxc, mask=mask, other=0.0)
    y = v.to(tl.float32) * g[None, :]
    tl.store(y_ptr + n * syn + (h * syh + w * syw)[:, None] + c[None, :] * syc, y.to(y_ptr.dtype.element_ty), mask=mask)
