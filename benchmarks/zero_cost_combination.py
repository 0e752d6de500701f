"""A learned combination of zero-cost proxies fitted on a few archs with known accuracy, against
the best single proxy: Spearman with 200-epoch test accuracy on every other arch.

Reads the per-arch scores the NB201 proxy benchmark stored (``zero_cost_nb201_<dataset>.jsonl``
and, for the newer proxies, ``zero_cost_nb201_<dataset>_new.jsonl``), joins them by arch, and
for each of ``--repeats`` random draws fits a ridge regression on the proxies' ranks (a rank is
scale-free and keeps -inf, the score of cells with no input-output path, as the worst) of
``--fit`` archs and scores the rest.

    python -m benchmarks.zero_cost_combination --fit 50
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import write_result

RESULTS = Path("benchmarks/results")


def _load(dataset: str, archs: int, seed: int, benchmark: str) -> tuple[list[int], dict[str, np.ndarray], np.ndarray]:
    """The benchmark's random archs (as ``zero_cost_nb201 --archs N --seed S`` drew them), every
    proxy stored for all of them, and their accuracy looked up in the table (a fraction)."""
    from predictors.proxy_eval import read_score_records
    from search_spaces.nb201.space import NUM_ARCHS, NB201Space
    from search_spaces.nb201.tabular import TabularNB201Evaluator

    rows: dict[int, dict[str, Any]] = {}
    for suffix in ("", "_new", "_swap", "_az"):  # the benchmark runs that scored these archs
        for record in read_score_records(RESULTS / f"zero_cost_nb201_{dataset}{suffix}.jsonl"):
            rows.setdefault(record["index"], {}).update({k: float(v) for k, v in record["scores"].items()})
    indices = np.random.default_rng(seed).choice(NUM_ARCHS, size=archs, replace=False).tolist()
    missing = [i for i in indices if i not in rows]
    if missing:
        raise SystemExit(
            f"{len(missing)} of the {archs} archs have no stored scores: run benchmarks.zero_cost_nb201 first"
        )
    names = sorted(n for n in set.intersection(*(set(rows[i]) for i in indices)))
    space, table = NB201Space(), TabularNB201Evaluator(benchmark, dataset)
    accuracy = np.array([table.evaluate([space.from_index(i)])[0]["accuracy"] for i in indices])
    return indices, {n: np.array([rows[i][n] for i in indices]) for n in names}, accuracy


def _ranks(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(np.nan_to_num(values, nan=-np.inf)) / len(values)


def main(argv: list[str] | None = None) -> None:
    from scipy.stats import spearmanr
    from sklearn.linear_model import RidgeCV

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100"], help="ground truth")
    parser.add_argument("--fit", type=int, default=50, help="archs the combination is fitted on (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=20, help="random draws (default: %(default)s)")
    parser.add_argument(
        "--seed", type=int, default=0, help="the benchmark's arch sample and the draws (default: %(default)s)"
    )
    parser.add_argument("--archs", type=int, default=1000, help="the benchmark's sample size (default: %(default)s)")
    parser.add_argument(
        "--benchmark",
        default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "nb201" / "nats_bench_tss_200ep.csv"),
        help="NB201 accuracy CSV",
    )
    parser.add_argument("--out", help="result JSON (default: benchmarks/results/zero_cost_combination_<dataset>.json)")
    args = parser.parse_args(argv)
    indices, scores, accuracy = _load(args.dataset, args.archs, args.seed, args.benchmark)
    names = list(scores)
    features = np.column_stack([_ranks(scores[n]) for n in names])
    single = {n: float(spearmanr(features[:, k], accuracy).statistic) for k, n in enumerate(names)}
    rng = np.random.default_rng(args.seed)
    rhos, weights = [], []
    for _ in range(args.repeats):
        chosen = rng.choice(len(indices), size=args.fit, replace=False)
        rest = np.setdiff1d(np.arange(len(indices)), chosen)
        model = RidgeCV(alphas=np.logspace(-3, 2, 12)).fit(features[chosen], accuracy[chosen])
        rhos.append(float(spearmanr(model.predict(features[rest]), accuracy[rest]).statistic))
        weights.append(model.coef_)
    best = max(single, key=lambda n: single[n] if math.isfinite(single[n]) else -1.0)
    result = {
        "benchmark": "zero_cost_combination",
        "dataset": args.dataset,
        "archs": len(indices),
        "fit_on": args.fit,
        "repeats": args.repeats,
        "proxies": names,
        "single_proxy_spearman": single,
        "best_single": {"proxy": best, "spearman": single[best]},
        "combination_spearman": {
            "median": float(np.median(rhos)),
            "min": float(np.min(rhos)),
            "max": float(np.max(rhos)),
        },
        "mean_weights": dict(zip(names, np.mean(weights, axis=0).round(4).tolist())),
    }
    write_result(args.out or RESULTS / f"zero_cost_combination_{args.dataset}.json", result)
    print(f"{len(indices)} archs; best single {best} rho {single[best]:.3f}; combination fitted on {args.fit}: "
          f"median rho {np.median(rhos):.3f} (min {np.min(rhos):.3f}, max {np.max(rhos):.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
