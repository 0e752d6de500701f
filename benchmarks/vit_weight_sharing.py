"""What weight sharing costs a ViT subnet: its accuracy taken from the trained supernet against the
same architecture trained alone, for the same number of epochs with the same recipe.

The supernet is trained from ``--config`` (default ``examples/vit_cifar10.yaml``; ``--epochs``
scales every phase, for a shorter run) unless ``--run`` names a trained one. Five subnets are
compared: the largest, the smallest, and the random subnets at the 25th, 50th and 75th MACs
percentiles of ``--pool`` sampled ones. Each is trained alone from timm's initialisation as
the supernet was trained: the same data, augmentation, batch size, AdamW settings, label
smoothing, gradient clipping and seed, for as many epochs as all the supernet's phases together,
with a warm-up and one cosine decay from the first phase's learning rate (a standalone network
has no phases and no teacher). Test accuracy of both, side by side.

    python -m benchmarks.vit_weight_sharing --epochs 1,0,0,1 --out benchmarks/results/vit_weight_sharing_cifar10.json
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from benchmarks.common import write_result

logger = logging.getLogger(__name__)


def _train_config(path: str, epochs: str | None, data_root: str | None) -> dict[str, Any]:
    import yaml

    config = yaml.safe_load(Path(path).read_text())
    if epochs is not None:
        counts = [int(e) for e in epochs.split(",")]
        if len(counts) != len(config["phases"]):
            raise SystemExit(f"--epochs: {len(config['phases'])} phases in {path}, got {len(counts)} counts")
        config["phases"] = [dict(p, epochs=n) for p, n in zip(config["phases"], counts) if n > 0]
    if data_root is not None:
        config["data"]["root"] = data_root
    return config


def _standalone(space: Any, arch: Any, dataset: Any, config: dict[str, Any], epochs: int) -> tuple[float, float]:
    """Trains ``arch`` alone (timm's model) as the supernet was trained; returns (test accuracy, seconds)."""
    import torch
    import torch.nn.functional as F

    from search_spaces.training.config import PhaseSpec
    from search_spaces.training.evaluation import accuracy
    from search_spaces.training.losses import lr_at

    training, first = config["training"], config["phases"][0]
    seed = int(training.get("seed", 0))
    torch.manual_seed(seed)
    net = space.build_static(arch)
    skip = net.no_weight_decay()  # timm's own list (class token, position embeddings), as the trainer skips
    decay = [p for n, p in net.named_parameters() if p.dim() > 1 and n not in skip]
    rest = [p for n, p in net.named_parameters() if p.dim() <= 1 or n in skip]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": float(training.get("weight_decay", 0.05))},
         {"params": rest, "weight_decay": 0.0}], lr=float(first["lr"]),
    )  # fmt: skip
    loader = dataset.loader("train", int(config["data"]["batch_size"]), train=True, seed=seed)
    # one phase of all the supernet's epochs: the trainer's warm-up and cosine decay
    schedule = PhaseSpec("standalone", epochs, float(first["lr"]), warmup_epochs=float(first.get("warmup_epochs", 0.0)))
    started, step = time.perf_counter(), 0
    net.train()
    for epoch in range(epochs):
        for x, y in loader.epoch(epoch):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(schedule, step, len(loader))
            loss = F.cross_entropy(net(x), y, label_smoothing=float(training.get("label_smoothing", 0.0)))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if training.get("grad_clip"):
                torch.nn.utils.clip_grad_norm_(net.parameters(), float(training["grad_clip"]))
            optimizer.step()
            step += 1
        logger.info("standalone %s: epoch %d/%d, loss %.3f", space.to_string(arch), epoch + 1, epochs, float(loss))
    seconds = time.perf_counter() - started
    return float(accuracy(net.eval(), dataset, "test", space.resolution(arch))["accuracy"]), seconds


def _middle_archs(space: Any, pool: int, seed: int) -> list[Any]:
    import numpy as np

    from predictors.flops import arch_cost

    rng = np.random.default_rng(seed)
    archs = sorted(space.sample_unique(pool, rng), key=lambda a: arch_cost(space, a).macs)
    return [archs[int(q * (len(archs) - 1))] for q in (0.25, 0.5, 0.75)]


def main() -> None:
    import torch

    from predictors.collect import _dataset
    from predictors.flops import arch_cost
    from search_spaces.training.checkpoint import load_supernet
    from search_spaces.training.config import load_train_config
    from search_spaces.training.evaluation import accuracy
    from search_spaces.training.trainer import SupernetTrainer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="examples/vit_cifar10.yaml", help="the supernet's training config")
    parser.add_argument("--epochs", default=None, help="epochs per phase of --config, e.g. 1,0,0,1 (0 drops it)")
    parser.add_argument("--data-root", default=None, help="data.root (default: the config's)")
    parser.add_argument("--run", default=None, help="a trained supernet instead (its training config is used)")
    parser.add_argument("--pool", type=int, default=200, help="random subnets the middle three are picked from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work", default="runs/vit_weight_sharing", help="where the supernet run is kept (reused)")
    parser.add_argument("--out", default="benchmarks/results/vit_weight_sharing_cifar10.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    training_seconds = 0.0
    if args.run is None:
        run = Path(args.work) / "supernet"
        config = _train_config(args.config, args.epochs, args.data_root)
        if not (run / "supernet.json").is_file():
            started = time.perf_counter()
            SupernetTrainer(load_train_config(config), run, resume=(run / "checkpoint").is_dir()).run()
            training_seconds = time.perf_counter() - started
    else:
        run = Path(args.run)
    supernet, meta = load_supernet(run)
    supernet.eval()
    config = meta["training_config"]
    space, dataset = supernet.space, _dataset(supernet, meta)
    epochs = sum(int(p["epochs"]) for p in config["phases"])
    archs = [("largest", space.max_arch()), ("smallest", space.min_arch())]
    archs += list(zip(("macs_p25", "macs_p50", "macs_p75"), _middle_archs(space, args.pool, args.seed)))
    rows: list[dict[str, Any]] = []
    result: dict[str, Any] = {}
    for label, arch in archs:
        shared = float(accuracy(supernet.extract(arch).eval(), dataset, "test", space.resolution(arch))["accuracy"])
        alone, seconds = _standalone(space, arch, dataset, config, epochs)
        cost = arch_cost(space, arch)
        rows.append({
            "subnet": label, "arch": arch.to_dict(), "notation": space.to_string(arch),
            "macs": cost.macs if cost else None, "params": cost.params if cost else None,
            "supernet_test_accuracy": shared, "standalone_test_accuracy": alone,
            "gap_points": 100 * (alone - shared), "standalone_seconds": seconds,
        })  # fmt: skip
        logger.info("%s %s: supernet %.4f, alone %.4f", label, space.to_string(arch), shared, alone)
        gaps = [r["gap_points"] for r in rows]
        result = {
            "benchmark": "vit_weight_sharing",
            "space_id": space.space_id,
            "supernet_run": str(run),
            "epochs": epochs,
            "phases": [{"name": p["name"], "epochs": p["epochs"]} for p in config["phases"]],
            "supernet_training_seconds": training_seconds,
            "subnets": rows,
            "complete": len(rows) == len(archs),
            "max_gap_points": max(gaps),
            "target": "every subnet within 1.5 points of its standalone twin",
            "target_met": all(g <= 1.5 for g in gaps) and len(rows) == len(archs),
        }
        write_result(args.out, result)  # after each subnet: an interrupted run keeps what it measured
    print(args.out)


if __name__ == "__main__":
    main()
