"""Images/s of one supernet training step (forward + backward, sandwich of 4 subnets).

Measures the cifar config on the CPU (or the GPU with --device cuda), comparing
memory formats side by side in one run, and writes JSON with device and versions.

    python benchmarks/train_throughput.py --out benchmarks/results/train_throughput_cpu.json
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch

from benchmarks.common import write_result
from search_spaces.training.config import load_train_config
from search_spaces.training.trainer import SupernetTrainer


def measure(channels_last: bool, args: argparse.Namespace) -> dict:
    """Times the trainer's own step (``SupernetTrainer._train_step``), not a copy of it."""
    config = load_train_config(
        {
            "space": {"name": "ofa_mbv3", "config": args.config},
            "data": {"name": "synthetic", "batch_size": args.batch, "synthetic_samples": 4 * args.batch},
            "training": {
                "channels_last": channels_last,
                "distillation": "inplace",
                "device": args.device,
                "progress": False,
            },
            "phases": [
                {
                    "name": "all",
                    "epochs": 1,
                    "lr": 0.01,
                    "sandwich": True,
                    "subnets_per_step": 2,
                    "open": {"ks": "all", "e": "all", "d": "all", "r": "all"},
                }
            ],
        }
    )
    with tempfile.TemporaryDirectory() as out:
        trainer = SupernetTrainer(config, out)
    space, device = trainer.space, trainer.device
    optimizer = trainer._optimizer(0.01)
    r = space.config.resolutions[-1]
    x = torch.randn(args.batch, space.config.in_channels, r, r, device=device)
    y = torch.randint(0, space.config.num_classes, (args.batch,), device=device)
    rng = np.random.default_rng(0)
    trainer.supernet.train()

    def step() -> int:
        archs = [space.max_arch(), space.min_arch(), space.sample(rng), space.sample(rng)]
        trainer._train_step(x, y, archs, True, optimizer)
        return x.shape[0] * len(archs)

    for _ in range(args.warmup):
        step()
    rates = []
    for _ in range(args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        images = step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(images / (time.perf_counter() - start))
    return {"channels_last": channels_last, "images_per_s_median": statistics.median(rates), "images_per_s_all": rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="cifar")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="benchmarks/results/train_throughput.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = [measure(cl, args) for cl in (False, True)]
    baseline = runs[0]["images_per_s_median"]
    for run in runs:
        run["ratio_vs_nchw"] = run["images_per_s_median"] / baseline
    result = {
        "benchmark": "train_throughput",
        "config": args.config,
        "batch": args.batch,
        "step": "SupernetTrainer._train_step: sandwich of 4 subnets (max, min, 2 random), in-place KD, SGD",
        "runs": runs,
    }
    path = write_result(args.out, result)
    for run in runs:
        print(
            f"channels_last={run['channels_last']}: {run['images_per_s_median']:.1f} img/s "
            f"(x{run['ratio_vs_nchw']:.2f})"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
