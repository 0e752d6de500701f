"""The jitted depthwise kernel: a block of output pixels x a block of channels per program."""

from __future__ import annotations

import triton
import triton.language as tl

from kernels import autotune_bench, interpreted
from kernels.activations import apply_activation


def _configs() -> list[triton.Config]:
    if interpreted():
        return [triton.Config({"BLOCK_P": 16, "BLOCK_C": 32}, num_warps=4)]
    return [
        triton.Config({"BLOCK_P": p, "BLOCK_C": c}, num_warps=w)
        for p, c, w in [(32, 32, 4), (64, 32, 4), (16, 64, 4), (128, 32, 8), (128, 16, 4), (64, 16, 2)]
    ]


@triton.autotune(configs=_configs(), key=["P", "C", "KS", "STRIDE"], do_bench=autotune_bench)
@triton.jit(do_not_specialize=["P", "H", "W", "OH", "OW", "sxn", "syn"])  # spatial sizes: one compile for all
def depthwise_kernel(
    x_ptr, w_ptr, scale_ptr, shift_ptr, y_ptr,
    P, C, H, W, OH, OW,
    sxn, sxc, sxh, sxw, syn, syc, syh, syw,
    KS: tl.constexpr, STRIDE: tl.constexpr, ACT: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    pid_p = tl.program_id(0)
    pid_c = tl.program_id(1)
    p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    n = p // (OH * OW)
    rem = p % (OH * OW)
    oh = rem // OW
    ow = rem % OW
    p_ok = p < P
    c_ok = c < C
    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    PAD: tl.constexpr = KS // 2
    # kh is a runtime loop and only kw is unrolled: unrolling all KS*KS taps made k = 5, 7 at
    # stride 1 spill hundreds of registers (measured on an H100: k=7 at 46x46, batch 64, ran
    # 2.6-7 ms instead of 0.35 ms) and took 3-9 s to compile per configuration instead of ~1 s.
    for kh in range(KS):
        ih = oh * STRIDE - PAD + kh
        h_ok = (ih >= 0) & (ih < H)
        for kw in tl.static_range(KS):
            iw = ow * STRIDE - PAD + kw
            ok = p_ok & h_ok & (iw >= 0) & (iw < W)
            xv = tl.load(
                x_ptr + (n * sxn + ih * sxh + iw * sxw)[:, None] + c[None, :] * sxc,
                mask=ok[:, None] & c_ok[None, :], other=0.0,
            )  # fmt: skip
            wv = tl.load(w_ptr + c * (KS * KS) + kh * KS + kw, mask=c_ok, other=0.0)
            acc += xv.to(tl.float32) * wv.to(tl.float32)[None, :]
    scale = tl.load(scale_ptr + c, mask=c_ok, other=0.0)
    shift = tl.load(shift_ptr + c, mask=c_ok, other=0.0)
    y = apply_activation(acc * scale[None, :] + shift[None, :], ACT)
    out = y_ptr + (n * syn + oh * syh + ow * syw)[:, None] + c[None, :] * syc
    tl.store(out, y.to(y_ptr.dtype.element_ty), mask=p_ok[:, None] & c_ok[None, :])
