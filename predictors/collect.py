"""Predictor training data from a trained supernet: (arch, accuracy) pairs as JSONL.

Samples distinct subnets (seeded), recalibrates each one's BatchNorm statistics on
training images, measures its accuracy on the holdout split (never the test
split by default) and appends one JSON line per subnet. Subnets already in the
file are skipped, so an interrupted collection resumes; ``workers > 1`` spreads
subnets over processes, each loading the supernet once.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

_WORKER: dict[str, Any] = {}


def _dataset(supernet: Any, meta: dict[str, Any]) -> Any:
    from nas.core.config import from_dict
    from search_spaces.training.config import DataSpec
    from search_spaces.training.evaluation import load_training_data

    return load_training_data(from_dict(DataSpec, meta["data"], "data"), supernet.space)


def _load(run_dir: str, threads: int) -> tuple[Any, Any]:
    import torch

    from search_spaces.training.checkpoint import load_supernet

    torch.set_num_threads(threads)
    supernet, meta = load_supernet(run_dir)
    return supernet.eval(), _dataset(supernet, meta)


def _init_worker(run_dir: str, threads: int) -> None:
    _WORKER["supernet"], _WORKER["dataset"] = _load(run_dir, threads)


def _measure(supernet: Any, dataset: Any, arch_dict: dict[str, Any], split: str, recal: int, seed: int) -> dict:
    from predictors.flops import count_cost
    from search_spaces.training.evaluation import evaluate_subnet

    space = supernet.space
    arch = space.make(arch_dict)
    metrics = evaluate_subnet(supernet, arch, dataset, split, recal_batches=recal, seed=seed)
    cost = count_cost(space.static_config(arch))
    return {
        "arch_id": arch.arch_id,
        "arch": arch.to_dict(),
        "accuracy": metrics["accuracy"],
        "loss": metrics["loss"],
        "split": split,
        "macs": cost.macs,
        "params": cost.params,
    }


def _measure_in_worker(arch_dict: dict[str, Any], split: str, recal: int, seed: int) -> dict:
    return _measure(_WORKER["supernet"], _WORKER["dataset"], arch_dict, split, recal, seed)


def collect(
    run_dir: str | Path,
    num_archs: int,
    out: str | Path,
    *,
    seed: int = 0,
    workers: int = 1,
    split: str = "holdout",
    recal_batches: int = 10,
    progress: bool = True,
) -> int:
    """Measures ``num_archs`` random subnets into ``out``; returns how many were new."""
    from nas.core.progress import bar as progress_bar
    from search_spaces.training.checkpoint import load_supernet

    if num_archs <= 0:
        raise ValueError(f"archs: must be positive, got {num_archs}")
    if workers <= 0:
        raise ValueError(f"workers: must be positive, got {workers}")
    if split not in ("holdout", "test"):
        raise ValueError(f"split: use holdout (default) or test, got {split!r}")
    supernet, meta = load_supernet(run_dir)
    space = supernet.space
    archs = space.sample_unique(num_archs, np.random.default_rng(seed))
    out = Path(out)
    done = set()
    if out.is_file():
        for number, line in enumerate(out.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                done.add(json.loads(line)["arch_id"])
            except (json.JSONDecodeError, KeyError):  # cut short by an interrupted write: measure again
                logger.warning("%s, line %d: incomplete record skipped", out, number)
    todo = [a.to_dict() for a in archs if a.arch_id not in done]
    if not todo:
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    bar = progress_bar(total=len(todo), desc="subnets", disable=not progress)
    with out.open("a") as fh:
        if workers == 1:
            dataset = _dataset(supernet, meta)
            results = (_measure(supernet.eval(), dataset, a, split, recal_batches, seed) for a in todo)
            for row in results:
                fh.write(json.dumps(row) + "\n")
                fh.flush()
                bar.update(1)
        else:
            import multiprocessing

            threads = max(1, (os.cpu_count() or 1) // workers)
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, context, _init_worker, (str(run_dir), threads)) as pool:
                futures = [pool.submit(_measure_in_worker, a, split, recal_batches, seed) for a in todo]
                for future in futures:
                    fh.write(json.dumps(future.result()) + "\n")
                    fh.flush()
                    bar.update(1)
    bar.close()
    return len(todo)
