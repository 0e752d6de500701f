"""int8 ViT subnets as ONNX Runtime deploys them: static QDQ against dynamic quantization.

On a trained ``vit`` supernet (default: the one ``benchmarks.vit_weight_sharing`` trains), random
subnets are measured three ways on the test split: float (torch), every transformer layer's
attention and MLP quantized statically (ONNX Runtime QDQ, calibrated on training images) and
dynamically (ONNX Runtime's dynamic quantization: int8 weights, activations quantized per batch),
each run by ONNX Runtime; the patch embedding, final norm and head stay float, as the space's
precision genes deploy them. With ``--latency`` each subnet is also timed end to end on ONNX
Runtime in the three forms, side by side in one process (ratios to float; run it on an idle
machine).

    python -m benchmarks.int8_vit --run runs/vit_weight_sharing/supernet --archs 30 --latency
"""

from __future__ import annotations

import argparse
import logging
import statistics
from pathlib import Path
from typing import Any

from benchmarks.common import write_result

logger = logging.getLogger(__name__)
FORMS = ("static", "dynamic")


def _summary(rows: list[dict[str, Any]], form: str) -> dict[str, Any]:
    drops = [r["fp32"] - r[form] for r in rows]
    out: dict[str, Any] = {
        "mean_accuracy": statistics.fmean(r[form] for r in rows),
        "median_drop_points": 100 * statistics.median(drops),
        "max_drop_points": 100 * max(drops),
        "within_1_point": sum(d <= 0.01 for d in drops) / len(drops),
    }
    for batch in sorted({b for r in rows for b in r.get("latency_ms_by_batch", {})}):
        by = [r["latency_ms_by_batch"][batch] for r in rows if batch in r.get("latency_ms_by_batch", {})]
        out[f"b{batch}_ratio_to_fp32_median"] = statistics.median(b[form] / b["fp32"] for b in by)
        out[f"b{batch}_faster_than_fp32"] = sum(b[form] < b["fp32"] for b in by) / len(by)
    return out


def main() -> None:
    import numpy as np
    import torch

    from predictors.collect import _dataset
    from predictors.latency.timers import measure_onnx
    from predictors.quantization import QuantSettings, int8_accuracy
    from search_spaces.training.checkpoint import load_supernet
    from search_spaces.training.evaluation import accuracy

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/vit_weight_sharing/supernet", help="a trained vit supernet (run folder)")
    parser.add_argument("--archs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibration-images", type=int, default=256)
    parser.add_argument("--latency", action="store_true", help="also time each form end to end (idle machine)")
    parser.add_argument("--batches", default="1,64", help="with --latency: batch sizes timed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/int8_vit_cifar10.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)

    supernet, meta = load_supernet(Path(args.run))
    supernet.eval()
    space = supernet.space
    if space.name != "vit":
        raise SystemExit(f"--run: {args.run} holds a {space.name} supernet; this benchmark measures vit subnets")
    dataset = _dataset(supernet, meta)
    archs = space.sample_unique(args.archs, np.random.default_rng(args.seed))
    settings = QuantSettings(images=args.calibration_images)
    rows: list[dict[str, Any]] = []
    for i, arch in enumerate(archs):
        net = supernet.extract(arch).eval()
        r = space.resolution(arch)
        layers = [layer["name"] for layer in space.static_config(arch) if layer["op"] in ("vit_attention", "vit_mlp")]
        row: dict[str, Any] = {"arch": arch.to_dict(), "notation": space.to_string(arch)}
        with torch.no_grad():
            row["fp32"] = float(accuracy(net, dataset, "test", r)["accuracy"])
        for form in FORMS:
            row[form] = float(int8_accuracy(net, dataset, "test", r, layers, settings, threads=args.threads,
                                            dynamic=form == "dynamic")["accuracy"])  # fmt: skip
        if args.latency:
            row["latency_ms_by_batch"] = {}
            shape = (space.config.in_channels, r, r)
            for batch in (int(b) for b in args.batches.split(",")):
                row["latency_ms_by_batch"][batch] = {
                    "fp32": measure_onnx(net, shape, batch, args.rounds)["mean_ms"],
                    "static": measure_onnx(net, shape, batch, args.rounds, int8=layers)["mean_ms"],
                    "dynamic": measure_onnx(net, shape, batch, args.rounds, int8=layers, dynamic=True)["mean_ms"],
                }
        rows.append(row)
        logger.info("%d/%d %s: fp32 %.4f static %.4f dynamic %.4f", i + 1, len(archs), row["notation"], row["fp32"],
                    row["static"], row["dynamic"])  # fmt: skip
        write_result(args.out, {
            "benchmark": "int8_vit", "run": args.run, "space_id": space.space_id, "archs": len(rows),
            "calibration_images": args.calibration_images, "threads": args.threads, "rounds": args.rounds,
            "summary": {form: _summary(rows, form) for form in FORMS}, "subnets": rows,
        })  # fmt: skip
    print(args.out)


if __name__ == "__main__":
    main()
