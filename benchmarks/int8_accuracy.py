"""int8 accuracy drop of random subnets with and without a quantization-aware phase, on one trained supernet.

A supernet is trained by progressive shrinking (``base``); from its weights, two runs of the same
length continue it: one in float (``float``) and one with fake int8 (``qat``: each elastic block
of each trained subnet in fake int8 with probability ``--fake-quant``). The same random subnets
of both are then measured as deployed: BN recalibrated, test accuracy in float (torch) and with
every elastic block quantized (ONNX Runtime static QDQ, calibrated on training images, run by
ONNX Runtime), so the drop is what a user of either supernet would see. Runs are kept in
``--work`` and reused when the script runs again.

    python -m benchmarks.int8_accuracy --data fashion-mnist --archs 100
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.common import write_result

logger = logging.getLogger(__name__)


def _phases(epochs: list[int], lr: float) -> list[dict[str, Any]]:
    full, kernel, depth, expand = epochs
    every = {"ks": "all", "d": "all", "e": "all", "r": "all"}
    return [
        {"name": "full", "epochs": full, "lr": lr, "open": {"r": "all"}},
        {"name": "kernel", "epochs": kernel, "lr": lr * 0.6, "open": {"ks": "all", "r": "all"}},
        {"name": "depth", "epochs": depth, "lr": lr * 0.16, "open": {"ks": "all", "d": "all", "r": "all"},
         "subnets_per_step": 2},
        {"name": "expand", "epochs": expand, "lr": lr * 0.16, "open": every, "subnets_per_step": 2},
    ]  # fmt: skip


def _train(config: dict[str, Any], out: Path) -> float:
    from search_spaces.training.config import load_train_config
    from search_spaces.training.trainer import SupernetTrainer

    if (out / "supernet.json").is_file():
        logger.info("reusing %s", out)
        return 0.0
    started = time.perf_counter()
    resume = (out / "checkpoint").is_dir()  # an interrupted run continues where it stopped
    SupernetTrainer(load_train_config(config), out, resume=resume).run()
    return time.perf_counter() - started


def _measure(run: Path, archs: list[Any], calibration_images: int, threads: int) -> list[dict[str, Any]]:
    import torch

    from predictors.collect import _dataset
    from predictors.quantization import QuantSettings, int8_accuracy
    from search_spaces.training.checkpoint import load_supernet
    from search_spaces.training.evaluation import accuracy, recalibrated_subnet

    supernet, meta = load_supernet(run)
    supernet.eval()
    dataset = _dataset(supernet, meta)
    space = supernet.space
    rows = []
    for i, arch in enumerate(archs):
        net = recalibrated_subnet(supernet, arch, dataset, recal_batches=10, device=torch.device("cpu"))
        r = space.resolution(arch)
        fp32 = accuracy(net, dataset, "test", r)["accuracy"]
        blocks = [layer["name"] for layer in space.static_config(arch) if layer["op"] == "mbconv"][1:]
        int8 = int8_accuracy(
            net, dataset, "test", r, blocks, QuantSettings(images=calibration_images), threads=threads
        )["accuracy"]
        rows.append({"arch": arch.to_dict(), "fp32": fp32, "int8": int8, "drop_points": 100 * (fp32 - int8)})
        logger.info("%s %d/%d: fp32 %.4f int8 %.4f", run.name, i + 1, len(archs), fp32, int8)
    return rows


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    drops = [r["drop_points"] for r in rows]
    return {
        "subnets": len(rows),
        "within_1_point": sum(d <= 1.0 for d in drops) / len(drops),
        "median_drop_points": statistics.median(drops),
        "mean_drop_points": statistics.fmean(drops),
        "max_drop_points": max(drops),
        "mean_fp32": statistics.fmean(r["fp32"] for r in rows),
        "mean_int8": statistics.fmean(r["int8"] for r in rows),
        "drop_quartiles_points": statistics.quantiles(drops, n=4) if len(drops) > 1 else drops,
    }


def main() -> None:
    import numpy as np
    import torch

    from search_spaces.training.checkpoint import load_supernet

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="fashion-mnist", help="dataset name (training config data.name)")
    parser.add_argument("--data-root", default=None, help="data.root (cifar10: the folder or archive holding it)")
    parser.add_argument("--config", default="mnist", help="ofa_mbv3 preset")
    parser.add_argument("--space-options", default="{}", help="space options as JSON, e.g. '{\"stem_stride\": 2}'")
    parser.add_argument("--epochs", default="3,1,1,2", help="progressive shrinking: full,kernel,depth,expand")
    parser.add_argument("--continue-epochs", type=int, default=1, help="length of the float and the QAT run")
    parser.add_argument("--fake-quant", type=float, default=0.5, help="QAT: probability per block of fake int8")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--archs", type=int, default=100)
    parser.add_argument("--calibration-images", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="runs/int8_accuracy", help="where the runs are kept (and reused)")
    parser.add_argument("--out", default="benchmarks/results/int8_accuracy_fashion_mnist.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)

    work = Path(args.work)
    training: dict[str, Any] = {"seed": args.seed, "progress": False, "eval_random_subnets": 1}
    base = {
        "space": {"name": "ofa_mbv3", "config": args.config, "options": json.loads(args.space_options)},
        "data": {"name": args.data, "batch_size": 128, **({"root": args.data_root} if args.data_root else {})},
        "training": training,
        "phases": _phases([int(e) for e in args.epochs.split(",")], args.lr),
    }
    seconds = {"base": _train(base, work / "base")}
    every = {"ks": "all", "d": "all", "e": "all", "r": "all"}
    for name, p in (("float", 0.0), ("qat", args.fake_quant)):
        config = {
            **base,
            "training": {**training, "init_from": str(work / "base")},
            "phases": [{"name": "continue", "epochs": args.continue_epochs, "lr": args.lr * 0.16, "open": every,
                        "subnets_per_step": 2, "fake_quant": p}],
        }  # fmt: skip
        seconds[name] = _train(config, work / name)
    space = load_supernet(work / "base")[0].space
    archs = space.sample_unique(args.archs, np.random.default_rng(args.seed))
    threads = torch.get_num_threads()
    results: dict[str, Any] = {}
    for name in ("float", "qat"):
        rows = _measure(work / name, archs, args.calibration_images, threads)
        results[name] = {"summary": _summary(rows), "per_arch": rows}
        logger.info("%s: %s", name, results[name]["summary"])
    write_result(
        args.out,
        {
            "benchmark": "int8_accuracy",
            "space_id": space.space_id,
            "data": args.data,
            "settings": {k: v for k, v in vars(args).items() if k not in ("out", "work", "data_root")},
            "training_seconds": seconds,
            "int8": "every elastic block (stem, first block and head in float), ONNX Runtime static QDQ, "
            "uint8 activations, int8 weights per channel, minmax calibration on training images",
            **results,
        },
    )


if __name__ == "__main__":
    main()
