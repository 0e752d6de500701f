"""Triton ops vs torch eager (cuDNN) on the OFA MobileNetV3 shapes, side by side, on CUDA.

For each op (pointwise, depthwise, SE, whole MBConv block) and each shape taken from
the static configs of the ``cifar`` (or ``imagenet``) space, measures both with
``triton.testing.do_bench`` in one run and reports the ratio torch / triton (> 1:
ours is faster), plus the achieved memory bandwidth of our kernel (bytes read +
written / time) against the device's measured device-to-device copy bandwidth.

    python -m benchmarks.kernels --config imagenet --batch 64 --dtype float16
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks.common import write_result


def _copy_bandwidth(torch: Any) -> float:
    from kernels.bench import measure_cuda

    x = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    t = measure_cuda(lambda: y.copy_(x))
    return 2 * x.numel() / (t.median_ms * 1e-3) / 1e9


def main() -> None:
    import torch

    from kernels.bench import environment, measure_cuda
    from kernels.mbconv import MBConvRunner
    from nas.space import create_space
    from predictors.latency import op_signatures
    from search_spaces.ofa_mbv3.static import block_from_config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="cifar")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--max-shapes", type=int, default=40)
    parser.add_argument("--out", default="benchmarks/results/kernels_cuda.json")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks.kernels needs a CUDA GPU (kernel correctness is tested on CPU by the test suite)")
    dtype = getattr(torch, args.dtype)
    space = create_space("ofa_mbv3", config=args.config)
    blocks = [layer for layer in op_signatures(space).values() if layer["op"] == "mbconv"][: args.max_shapes]
    rows = []
    for layer in blocks:
        block = block_from_config(layer).eval().to("cuda", dtype).to(memory_format=torch.channels_last)
        x = torch.randn(args.batch, layer["in_ch"], layer["in_hw"], layer["in_hw"], device="cuda", dtype=dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        runner = MBConvRunner(block.float().cpu(), dtype, "cuda")
        with torch.inference_mode():
            eager = measure_cuda(lambda: block(x))  # noqa: B023 - measured at once
            ours = measure_cuda(lambda: runner(x))  # noqa: B023
            y = runner(x)
        moved = x.numel() * x.element_size() + y.numel() * y.element_size()
        rows.append(
            {
                "layer": {k: layer[k] for k in ("in_ch", "out_ch", "mid_ch", "kernel", "stride", "in_hw", "se")},
                "torch_ms": eager.median_ms,
                "triton_ms": ours.median_ms,
                "speedup": eager.median_ms / ours.median_ms,
                "block_io_gbps": moved / (ours.median_ms * 1e-3) / 1e9,
            }
        )
    copy_gbps = _copy_bandwidth(torch)
    result = {
        "benchmark": "kernels",
        "config": args.config,
        "batch": args.batch,
        "dtype": args.dtype,
        "copy_bandwidth_gbps": copy_gbps,
        "blocks": rows,
        "environment": environment("cuda"),
    }
    write_result(Path(args.out), result)
    for r in rows:
        print(f"{r['layer']}  torch {r['torch_ms']:.3f} ms  triton {r['triton_ms']:.3f} ms  x{r['speedup']:.2f}")


if __name__ == "__main__":
    main()
