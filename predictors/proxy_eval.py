"""Rank correlation of zero-cost proxies with benchmark accuracy on NAS-Bench-201.

Samples archs (seeded, without replacement), builds each NB201 network with
PyTorch's default initialisation (seeded per arch), scores it with every proxy on
one fixed batch, and reports Spearman rho and Kendall tau against the tabular
accuracy next to the published values. Per-arch results are appended to a JSONL
file, so an interrupted run resumes without recomputing.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

# Abdelfattah et al. (ICLR 2021), all 15,625 NB201 archs, one batch of 64 images, default init;
# ground truth: 200-epoch test accuracy (table in ../shared/data/README.md).
PUBLISHED_NB201_SPEARMAN: dict[str, dict[str, float]] = {
    "cifar10": {
        "grad_norm": 0.594,
        "snip": 0.596,
        "grasp": 0.514,
        "fisher": 0.360,
        "synflow": 0.737,
        "jacob_cov": 0.731,
    },
    "cifar100": {
        "grad_norm": 0.637,
        "snip": 0.637,
        "grasp": 0.547,
        "fisher": 0.385,
        "synflow": 0.763,
        "jacob_cov": 0.704,
    },
    "imagenet16-120": {
        "grad_norm": 0.578,
        "snip": 0.578,
        "grasp": 0.549,
        "fisher": 0.327,
        "synflow": 0.751,
        "jacob_cov": 0.701,
    },
}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet16-120": 120}


def rank_metrics(scores: Sequence[float], truth: Sequence[float]) -> dict[str, float]:
    """Spearman rho and Kendall tau over the pairs with a score and a finite truth.

    A score of -inf (synflow or naswot of a network with no path from input to output)
    is the worst possible score, not a missing one: it ranks below every finite score
    (ties among themselves). Only NaN scores (a proxy that failed) are left out.
    """
    from scipy.stats import kendalltau, spearmanr

    s, t = np.asarray(scores, float), np.asarray(truth, float)
    keep = ~np.isnan(s) & np.isfinite(t)
    if keep.sum() < 3:
        return {"spearman": float("nan"), "kendall": float("nan"), "n": int(keep.sum())}
    return {
        "spearman": float(spearmanr(s[keep], t[keep]).statistic),
        "kendall": float(kendalltau(s[keep], t[keep]).statistic),
        "n": int(keep.sum()),
    }


def proxy_batch(data_root: str | Path, batch_size: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` normalised CIFAR-10 training images (seeded choice), with labels."""
    from search_spaces.datasets import BatchLoader, load_dataset

    dataset = load_dataset("cifar10", data_root)
    loader = BatchLoader(dataset.train, dataset, batch_size, train=False, shuffle=True, seed=seed)
    return next(loader.epoch(0))


class PerArchBatches:
    """A different augmented training batch for every arch (seeded by the arch index).

    This is the protocol of Abdelfattah et al.'s released code, which draws a batch from
    an augmenting (random crop + flip) training loader inside the per-network loop;
    the default here is one fixed batch for all archs.
    """

    def __init__(self, data_root: str | Path, batch_size: int = 64, seed: int = 0) -> None:
        from search_spaces.datasets import load_dataset

        self.dataset = load_dataset("cifar10", data_root)
        self.batch_size, self.seed = batch_size, seed

    def __call__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from search_spaces.datasets import BatchLoader

        loader = BatchLoader(
            self.dataset.train, self.dataset, self.batch_size, train=True, seed=self.seed * 1_000_003 + index
        )
        return next(loader.epoch(0))


def read_score_records(path: str | Path | None) -> list[dict[str, Any]]:
    """Per-arch records of a :func:`score_nb201` JSONL (none when the file does not exist yet).

    A line cut short by an interrupted write is skipped with a warning (its arch is scored again).
    """
    if path is None or not Path(path).is_file():
        return []
    records = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            logger.warning("%s, line %d: incomplete record skipped", path, number)
    return records


def score_arch(
    index: int, proxies: Sequence[str], batch: tuple[torch.Tensor, torch.Tensor], num_classes: int, seed: int
) -> tuple[dict[str, float], dict[str, float]]:
    """One NB201 arch's proxy scores and seconds: its network initialised from (seed, index), the
    proxies sharing passes where they can (:func:`predictors.zero_cost.score_many`)."""
    from predictors.zero_cost import score_many
    from search_spaces.nb201.network import NB201Network
    from search_spaces.nb201.space import NB201Space

    arch = NB201Space().from_index(index)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 100_003 + index)
        net = NB201Network(arch, num_classes=num_classes)
    return score_many(proxies, net, batch, seed=seed)


def _batch_of(batch: Any, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    return batch(index) if callable(batch) else batch


def _score_in_worker(
    index: int, proxies: Sequence[str], batch: tuple[torch.Tensor, torch.Tensor], num_classes: int, seed: int
) -> tuple[int, dict[str, float], dict[str, float]]:
    torch.set_num_threads(1)  # one core per worker process: archs in parallel, not ops
    scores, seconds = score_arch(index, proxies, batch, num_classes, seed)
    return index, scores, seconds


def score_nb201(
    proxies: Sequence[str],
    num_archs: int,
    accuracy_csv: str | Path,
    batch: tuple[torch.Tensor, torch.Tensor] | Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    *,
    dataset: str = "cifar10",
    seed: int = 0,
    results_path: str | Path | None = None,
    progress: bool = True,
    indices: Sequence[int] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Scores ``num_archs`` random NB201 archs (or the archs ``indices`` names) and correlates each
    proxy with accuracy.

    ``batch`` is one fixed batch for every arch, or a function of the arch index giving each its own.
    ``workers`` > 1 scores that many archs at once in worker processes (one thread each).
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from nas.core.progress import bar as progress_bar
    from predictors.zero_cost import proxy_names
    from search_spaces.nb201.space import NUM_ARCHS, NB201Space
    from search_spaces.nb201.tabular import TabularNB201Evaluator

    known = proxy_names()
    unknown = [p for p in proxies if p not in known]
    if unknown:
        raise ValueError(f"proxies: unknown {unknown}; known: {', '.join(known)}")
    if indices is None:
        if not 3 <= num_archs <= NUM_ARCHS:
            raise ValueError(f"archs: must be within 3..{NUM_ARCHS}, got {num_archs}")
        indices = np.random.default_rng(seed).choice(NUM_ARCHS, size=num_archs, replace=False).tolist()
    elif not all(0 <= int(i) < NUM_ARCHS for i in indices) or len(set(indices)) != len(indices):
        raise ValueError(f"indices: must be distinct NB201 indices in [0, {NUM_ARCHS})")
    if not 1 <= workers <= 256:
        raise ValueError(f"workers: must be in [1, 256], got {workers}")
    space = NB201Space()
    evaluator = TabularNB201Evaluator(accuracy_csv, dataset)
    num_classes = NUM_CLASSES.get(dataset, 10)
    path = Path(results_path) if results_path else None
    done = {row["index"]: row for row in read_score_records(path) if set(proxies) <= set(row["scores"])}
    by_index: dict[int, dict[str, Any]] = {}
    for index in indices:  # scores from the file; accuracy looked up again (its unit may have changed)
        if index in done:
            arch = space.from_index(index)
            by_index[index] = {**done[index], "accuracy": evaluator.evaluate([arch])[0]["accuracy"]}
    todo = [int(i) for i in indices if i not in by_index]

    def record(index: int, scores: dict[str, float], seconds: dict[str, float]) -> None:
        arch = space.from_index(index)
        row = {"index": index, "arch": space.to_string(arch), "accuracy": evaluator.evaluate([arch])[0]["accuracy"],
               "scores": scores, "seconds": seconds}  # fmt: skip
        by_index[index] = row
        if path is not None:
            with path.open("a") as fh:
                fh.write(json.dumps({**row, "scores": {k: _json_float(v) for k, v in scores.items()}}) + "\n")

    bar = progress_bar(
        total=len(indices), initial=len(indices) - len(todo), desc="zero-cost proxies", disable=not progress
    )
    if workers == 1:
        for index in todo:
            record(index, *score_arch(index, proxies, _batch_of(batch, index), num_classes, seed))
            bar.update(1)
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = [
                pool.submit(_score_in_worker, index, list(proxies), _batch_of(batch, index), num_classes, seed)
                for index in todo
            ]
            for future in as_completed(futures):
                record(*future.result())
                bar.update(1)
    bar.close()
    rows = [by_index[int(i)] for i in indices]
    truth = [r["accuracy"] for r in rows]
    summary = {}
    published = PUBLISHED_NB201_SPEARMAN.get(dataset, {})
    for name in proxies:
        values = [float(r["scores"][name]) for r in rows]
        metrics = rank_metrics(values, truth)
        metrics["seconds_per_arch"] = float(np.mean([r["seconds"][name] for r in rows]))
        if name in published:
            metrics["published_spearman"] = published[name]
            metrics["difference"] = metrics["spearman"] - published[name]
        summary[name] = metrics
    return {"space": "nb201", "dataset": dataset, "archs": len(rows), "seed": seed, "proxies": summary}


def _json_float(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)
