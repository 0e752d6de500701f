"""Triton ops vs torch eager (cuDNN) on the OFA MobileNetV3 shapes, side by side, on CUDA.

For every MBConv block signature of the ``cifar`` (or ``imagenet``) space, measures each
op of the block — the 1x1 expand (GEMM + folded BN + activation), the depthwise kxk conv
(+ BN + activation), squeeze-and-excitation, the 1x1 project (+ BN + residual) — and the
whole block, ours and torch eager's, one after the other in the same run with two timers:
``do_bench`` (L2 flushed; includes the host's launch overhead, which dominates at these sizes)
and ``do_bench_cudagraph`` (replayed CUDA graph: GPU time only). It reports
the ratios torch / triton of both (> 1: ours is faster; ``speedup`` is the GPU-time one) and
the achieved memory bandwidth of our kernel on GPU time (activation bytes read + written /
time) against the device's measured device-to-device copy bandwidth.

    python -m benchmarks.kernels --config imagenet --batch 64 --dtype float16
"""

from __future__ import annotations

import argparse
import logging
import statistics
from pathlib import Path
from typing import Any

from benchmarks.common import write_result

logger = logging.getLogger(__name__)

LAYER_KEYS = ("in_ch", "out_ch", "mid_ch", "kernel", "stride", "in_hw", "se", "act", "residual")


def _copy_bandwidth(torch: Any) -> float:
    from kernels.bench import measure_cuda

    x = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    t = measure_cuda(lambda: y.copy_(x))
    return 2 * x.numel() / (t.median_ms * 1e-3) / 1e9


def _ops(torch: Any, block: Any, runner: Any, x: Any) -> dict[str, tuple[Any, Any, Any]]:
    """Per op of the block: (torch callable, our callable, its input as the block sees it)."""
    from kernels.depthwise.op import depthwise_conv
    from kernels.pointwise.op import pointwise_conv
    from kernels.se.op import squeeze_excite

    ops: dict[str, tuple[Any, Any, Any]] = {}
    with torch.inference_mode():
        y = x
        if runner.expand is not None:
            e = runner.expand
            ops["expand"] = (block.expand, lambda t: pointwise_conv(t, e.weight, e.scale, e.shift, e.act), y)
            y = block.expand(y)
        d = runner.depthwise
        ops["depthwise"] = (
            block.depthwise, lambda t: depthwise_conv(t, d.weight, d.scale, d.shift, runner.stride, d.act), y,
        )  # fmt: skip
        y = block.depthwise(y)
        if runner.se is not None:
            ops["se"] = (block.se, lambda t: squeeze_excite(t, *runner.se), y)
            y = block.se(y)
        p = runner.project
        res = x if runner.residual else None
        eager_project = (lambda t: block.project(t) + x) if runner.residual else block.project
        ops["project"] = (
            eager_project, lambda t: pointwise_conv(t, p.weight, p.scale, p.shift, p.act, residual=res), y,
        )  # fmt: skip
    ops["block"] = (block, runner, x)
    return ops


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    summary = {}
    for name in ("expand", "depthwise", "se", "project", "block"):
        ratios = [r["ops"][name]["speedup"] for r in rows if name in r["ops"]]
        launch = [r["ops"][name]["launch_speedup"] for r in rows if name in r["ops"]]
        fracs = [r["ops"][name]["fraction_of_copy_bandwidth"] for r in rows if name in r["ops"]]
        if ratios:
            summary[name] = {
                "shapes": len(ratios),
                "speedup_geomean": statistics.geometric_mean(ratios),
                "speedup_min": min(ratios),
                "speedup_max": max(ratios),
                "launch_speedup_geomean": statistics.geometric_mean(launch),
                "median_fraction_of_copy_bandwidth": statistics.median(fracs),
            }
    return summary


def main() -> None:
    import torch

    from kernels.bench import environment, measure_cuda
    from kernels.mbconv import MBConvRunner
    from nas.core.space import create_space
    from predictors.latency import op_signatures
    from search_spaces.ofa_mbv3.static import block_from_config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="cifar")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--max-shapes", type=int, default=0, help="at most this many block signatures (0: all)")
    parser.add_argument("--out", help="default: benchmarks/results/kernels_cuda_<config>_<dtype>_b<batch>.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks.kernels needs a CUDA GPU (kernel correctness is tested on CPU by the test suite)")
    out = Path(args.out or f"benchmarks/results/kernels_cuda_{args.config}_{args.dtype}_b{args.batch}.json")
    dtype = getattr(torch, args.dtype)
    space = create_space("ofa_mbv3", config=args.config)
    blocks = [layer for layer in op_signatures(space).values() if layer["op"] == "mbconv"]
    if args.max_shapes and len(blocks) > args.max_shapes:  # evenly spread over the space's signatures
        step = len(blocks) / args.max_shapes
        blocks = [blocks[int(i * step)] for i in range(args.max_shapes)]
    copy_gbps = _copy_bandwidth(torch)
    rows = []
    for layer in blocks:
        block = block_from_config(layer).eval()
        runner = MBConvRunner(block, dtype, "cuda")
        block = block.to("cuda", dtype).to(memory_format=torch.channels_last)
        x = torch.randn(args.batch, layer["in_ch"], layer["in_hw"], layer["in_hw"], device="cuda", dtype=dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        row: dict[str, Any] = {"layer": {k: layer[k] for k in LAYER_KEYS}, "ops": {}}
        for name, (eager, ours, inp) in _ops(torch, block, runner, x).items():
            with torch.inference_mode():
                y = ours(inp)  # also compiles and autotunes before anything is timed or captured
                err = (y.float() - eager(inp).float()).abs().max().item()
                t_torch = measure_cuda(lambda e=eager, i=inp: e(i))
                t_ours = measure_cuda(lambda o=ours, i=inp: o(i))
                try:
                    g_torch = measure_cuda(lambda e=eager, i=inp: e(i), graph=True)
                    g_ours = measure_cuda(lambda o=ours, i=inp: o(i), graph=True)
                except RuntimeError as exc:  # a capture failure is reported, not fatal
                    logger.warning("CUDA-graph timing of %s failed (%s); using launch timings", name, exc)
                    g_torch, g_ours = t_torch, t_ours
            moved = inp.numel() * inp.element_size() + y.numel() * y.element_size()
            gbps = moved / (g_ours.median_ms * 1e-3) / 1e9
            row["ops"][name] = {
                "torch_ms": t_torch.median_ms,
                "triton_ms": t_ours.median_ms,
                "launch_speedup": t_torch.median_ms / t_ours.median_ms,
                "torch_graph_ms": g_torch.median_ms,
                "triton_graph_ms": g_ours.median_ms,
                "speedup": g_torch.median_ms / g_ours.median_ms,
                "achieved_gbps": gbps,
                "fraction_of_copy_bandwidth": gbps / copy_gbps,
                "max_abs_error": err,
            }
        rows.append(row)
        result = {
            "benchmark": "kernels", "config": args.config, "batch": args.batch, "dtype": args.dtype,
            "copy_bandwidth_gbps": copy_gbps, "summary": _summary(rows), "blocks": rows,
            "device": environment("cuda"),
        }  # fmt: skip
        write_result(out, result)  # after every block: a run cut short keeps what it measured
        logger.info(
            "%s  %s",
            {k: layer[k] for k in ("in_ch", "mid_ch", "out_ch", "kernel", "stride", "in_hw")},
            "  ".join(f"{k} x{v['speedup']:.2f}" for k, v in row["ops"].items()),
        )
    for name, s in _summary(rows).items():
        logger.info(
            "%-9s %3d shapes  torch/triton geomean x%.2f (min x%.2f, max x%.2f)  median %.0f%% of copy bandwidth",
            name, s["shapes"], s["speedup_geomean"], s["speedup_min"], s["speedup_max"],
            100 * s["median_fraction_of_copy_bandwidth"],
        )  # fmt: skip
    logger.info("wrote %s", out)


if __name__ == "__main__":
    main()
