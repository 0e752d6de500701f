"""A new device from k measurements with the fleet as prior, leave-one-device-out on NAS-Bench-201.

For each of the 27 device columns of ``../shared/data/nb201/nb201_latency_help.csv`` held out in
turn (the other 26 fully known: the fleet), ``k`` = 5, 10, 20 archs are measured on it and the
rest predicted:

- ``fleet``: :class:`predictors.latency.fleet.FleetPrior` from the other 26 columns, the ``k``
  archs chosen by its design from a random pool of 2,000 (one pool per seed);
- ``fleet_random``: the same model on ``k`` random archs (what the design adds);
- ``per_device``: today's per-device fit (``Predictor`` for a latency target, as
  ``benchmarks/latency_predictors_nb201.py``) on ``k`` random archs, and on 50.

Scored on every arch not measured: share within ±10% and Kendall τ, next to the column's noise
ceiling (from ``latency_predictors_nb201.json``: a gradient-boosted model fitted on 5,000 archs).
Targets: with k = 10 the fleet reaches the per-device 50-arch result (share and τ) on ≥ 22 of 27
columns, and never falls below the per-device 10-arch result.

    python -m benchmarks.latency_fleet_nb201 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import write_result
from benchmarks.latency_predictors_nb201 import DATA, load

logger = logging.getLogger(__name__)
CEILINGS = Path(__file__).resolve().parent / "results" / "latency_predictors_nb201.json"


def _score(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    from scipy.stats import kendalltau

    from predictors.learned import within_share

    return within_share(predicted, truth), float(kendalltau(predicted, truth).statistic)


def _mean(pairs: list[tuple[float, float]]) -> dict[str, float]:
    return {"within_10pct": float(np.mean([p[0] for p in pairs])), "kendall": float(np.mean([p[1] for p in pairs]))}


def _at_least(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    return bool(ours["within_10pct"] >= theirs["within_10pct"] and ours["kendall"] >= theirs["kendall"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--ks", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--baseline-ks", type=int, nargs="*", default=[5, 10, 20, 50])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pool", type=int, default=2000, help="candidate archs the design chooses from")
    parser.add_argument("--columns", nargs="*", help="held-out columns (default: all 27)")
    parser.add_argument("--out", default="benchmarks/results/latency_fleet_nb201.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from nas.core.space import create_space
    from predictors.latency.fleet import FleetPrior
    from predictors.learned import Predictor

    space: Any = create_space("nb201")
    strings, columns = load(Path(args.data))
    names = list(columns)
    archs = [space.from_string(s) for s in strings]
    probe = Predictor(space, None, target="latency_ms@probe")
    features = np.stack([probe.features(a) for a in archs])
    latencies = np.stack([columns[n] for n in names], 1)
    ceilings = json.loads(CEILINGS.read_text())["columns"] if CEILINGS.is_file() else {}
    everything = np.arange(len(archs))
    results: dict[str, Any] = {}
    started = time.perf_counter()
    for j, name in enumerate(args.columns or names):
        j = names.index(name)
        y = latencies[:, j]
        others = [n for n in names if n != name]
        prior = FleetPrior.fit(features, np.delete(latencies, j, 1), others)
        row: dict[str, Any] = {"ceiling_within_10pct": ceilings.get(name, {}).get("ceiling_within_10pct")}
        for k in args.ks:
            designed: list[tuple[float, float]] = []
            random_: list[tuple[float, float]] = []
            chosen: list[dict[str, Any]] = []
            for seed in range(args.seeds):
                order = np.random.default_rng(1000 + seed).permutation(len(y))
                pool = order[: args.pool]
                for rows, out in ((pool[prior.design(features[pool], k)], designed), (order[:k], random_)):
                    model = prior.fit_device(features[rows], y[rows])
                    test = np.setdiff1d(everything, rows)
                    out.append(_score(model.predict(features[test]), y[test]))
                    if out is designed:
                        chosen.append({"prior": model.prior, "penalty": model.penalty, **model.expected})
            row[f"fleet_{k}"] = {**_mean(designed), "models": chosen}
            row[f"fleet_random_{k}"] = _mean(random_)
        for k in args.baseline_ks:
            scores = []
            for seed in range(args.seeds):
                order = np.random.default_rng(1000 + seed).permutation(len(y))
                predictor = Predictor(space, None, seed=seed, target=f"latency_ms@{name}")
                predictor.fit([archs[i] for i in order[:k]], y[order[:k]].tolist())
                scores.append(_score(predictor.predict_features(features[order[k:]])[0], y[order[k:]]))
            row[f"per_device_{k}"] = _mean(scores)
        f10, p50, p10 = row.get("fleet_10"), row.get("per_device_50"), row.get("per_device_10")
        if f10 and p50 and p10:
            row["targets"] = {
                "reaches_per_device_50": _at_least(f10, p50),
                "not_below_per_device_10": _at_least(f10, p10),
            }
        results[name] = row
        logger.info(
            "%-15s %s", name,
            "  ".join(f"{key}: {v['within_10pct']:.2f}/{v['kendall']:.2f}" for key, v in row.items()
                      if isinstance(v, dict) and "within_10pct" in v),
        )  # fmt: skip
    reached = sum(bool(r.get("targets", {}).get("reaches_per_device_50")) for r in results.values())
    never_below = all(r.get("targets", {}).get("not_below_per_device_10", False) for r in results.values())
    path = write_result(
        args.out,
        {
            "benchmark": "new device from k measurements, fleet prior, leave-one-device-out (NAS-Bench-201)",
            "command": f"python -m benchmarks.latency_fleet_nb201 --seeds {args.seeds} --pool {args.pool}",
            "seconds": time.perf_counter() - started,
            "columns": results,
            "summary": {"fleet_10_reaches_per_device_50": reached, "columns": len(results),
                        "fleet_10_never_below_per_device_10": never_below},
        },
    )  # fmt: skip
    logger.info("fleet k=10 reaches per-device 50 on %d of %d columns; never below per-device 10: %s -> %s",
                reached, len(results), never_below, path)  # fmt: skip


if __name__ == "__main__":
    main()
