"""Latency tables built and validated end to end: share of subnets within ±10%, Spearman, MAPE.

For each batch size (and each device: the CPU, plus CUDA when there is a GPU), builds
the table of every op signature of the space (``nas latency build``), then measures
``--archs`` random subnets end to end on the same runtime (``nas latency validate``)
and reports the plain table sum and the corrected prediction side by side. Tables go
next to the result so they can be inspected or reused.

    python -m benchmarks.latency_table --config cifar --batches 1,64 --archs 100
    python -m benchmarks.latency_table --space vit --config cifar --cpu-backends torch

Give one CPU backend per run: ONNX Runtime timed in the same process after torch's tables ran
2x slow at batch 1 (torch's thread pool stays alive beside ONNX Runtime's; measured 2026-12-08),
as ``nas latency build`` never does (one backend per process).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from benchmarks.common import write_result

logger = logging.getLogger(__name__)


def main() -> None:
    import torch

    from kernels.bench import environment
    from nas.core.space import create_space
    from predictors.latency import build_table, validate_table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="ofa_mbv3", help="space name (ofa_mbv3, ofa_resnet50, vit)")
    parser.add_argument("--config", default="cifar")
    parser.add_argument("--resolutions", help="comma-separated subset of the preset's resolutions (e.g. 160,192,224)")
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--archs", type=int, default=100)
    parser.add_argument("--calibration", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="rounds each measurement is spread over")
    parser.add_argument("--devices", help="comma-separated (default: cpu, and cuda when available)")
    parser.add_argument(
        "--backends", default="",
        help="CUDA backends to build, e.g. cuda-graph,torch,triton,torch-compile (default: triton)",
    )  # fmt: skip
    parser.add_argument("--cpu-backends", default="torch", help="CPU backends to build, e.g. torch,onnxruntime")
    parser.add_argument("--dtype", default="float32", help="dtype of the CUDA tables (CPU tables use float32)")
    parser.add_argument(
        "--precisions", help="precision genes of the space, e.g. int8,fp32 (measure with --cpu-backends onnxruntime)"
    )
    parser.add_argument("--out", default="benchmarks/results/latency_table.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    cpu_backends = args.cpu_backends.split(",")
    if "cpu" in devices and "torch" in cpu_backends and cpu_backends[-1] != "torch" and len(cpu_backends) > 1:
        logger.warning(
            "--cpu-backends %s: the backends after torch are timed beside torch's live thread pool (ONNX Runtime "
            "ran 2x slow at batch 1 that way); run one CPU backend per invocation for figures to keep",
            args.cpu_backends,
        )
    out = Path(args.out)
    tables_dir = out.with_suffix("")
    options: dict[str, object] = {}
    if args.resolutions:
        options["resolutions"] = [int(r) for r in args.resolutions.split(",")]
    if args.precisions:
        options["precisions"] = args.precisions.split(",")
    space = create_space(args.space, config=args.config, **options)
    runs = []
    for device in devices:
        cuda = device.startswith("cuda")
        backends = (args.backends.split(",") if args.backends else ["triton"]) if cuda else args.cpu_backends.split(",")
        dtype = args.dtype if cuda else "float32"
        for backend in backends:
            for batch in (int(b) for b in args.batches.split(",")):
                start = time.perf_counter()
                table = build_table(
                    space, device=device, dtype=dtype, batch=batch, calibration_archs=args.calibration,
                    backend=backend, rounds=args.rounds,
                )  # fmt: skip
                built = time.perf_counter() - start
                table.save(tables_dir / f"{space.space_id}_{device.replace(':', '')}_{backend}_{dtype}_b{batch}.json")
                report = validate_table(table, space, args.archs, rounds=args.rounds)
                report.update(backend=backend, build_seconds=built, ops=len(table.entries))
                report["validate_seconds"] = time.perf_counter() - start - built
                report["environment"] = environment(device)
                runs.append(report)
                for kind in ("table_sum", "corrected"):
                    m = report.get(kind)
                    if m:
                        logger.info(
                            "%s %s batch %d %-9s within ±10%% %.0f%%  rho %.3f  MAPE %.1f%%",
                            device, backend, batch, kind, m["within_10pct"] * 100, m["spearman"], m["mape"],
                        )  # fmt: skip
                write_result(out, {"benchmark": "latency_table", "space_id": space.space_id, "runs": runs})
    logger.info("wrote %s", out)


if __name__ == "__main__":
    main()
