"""Few-shot learned latency predictors on NAS-Bench-201's 27 measured device columns.

For each column of ``../shared/data/nb201/nb201_latency_help.csv`` (GPUs at batch 1/32/256, Xeon
CPUs, phones, Raspberry Pi 4, Eyeriss, FPGA): our ``Predictor`` for the latency target (kind
``latency``: the space's latency views — NB201: op counts and the live-cell summary as an eager
runtime runs them; op counts after dead-node elimination — plus MACs/params, the (view, linear
model) pair that cross-validates best) fitted on 20, 50 and 100 random measured archs and scored
on all the others — share within ±10%, Kendall τ —
next to the MACs-only baseline (τ of MACs; a line on MACs fitted to the same archs) and the
column's noise ceiling: a plain gradient-boosted model on the one-hot encoding fitted on 5,000
archs and scored on the rest (the columns are single measurements). ``--seeds`` repetitions.

Targets (from 50 archs): ≥ 90% within ±10% on every GPU column, within 5 points of the ceiling
on every other, never below the MACs baseline's τ.

    python -m benchmarks.latency_predictors_nb201 --out benchmarks/results/latency_predictors_nb201.json
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import write_result

GPU_PREFIXES = ("1080ti", "2080ti", "titan")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nb201" / "nb201_latency_help.csv"


def load(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns = [c for c in rows[0] if c not in ("arch_index", "arch_str")]
    return [r["arch_str"] for r in rows], {c: np.array([float(r[c]) for r in rows]) for c in columns}


def ceiling(onehot: np.ndarray, y: np.ndarray, seed: int, train: int = 5000) -> float:
    from sklearn.ensemble import HistGradientBoostingRegressor

    from predictors.learned import within_share

    order = np.random.default_rng(seed).permutation(len(y))
    model = HistGradientBoostingRegressor(max_iter=300, random_state=seed).fit(onehot[order[:train]], y[order[:train]])
    return within_share(model.predict(onehot[order[train:]]), y[order[train:]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 100])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--columns", nargs="*", help="default: all 27")
    parser.add_argument(
        "--selection",
        default="within",
        choices=["median", "within"],
        help="how the latency model picks its view and model (default: within)",
    )
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds of the selection")
    parser.add_argument("--repeats", type=int, default=3, help="shuffled repeats of the cross-validation")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the 5,000-arch ceiling fits")
    parser.add_argument("--out", default="benchmarks/results/latency_predictors_nb201.json")
    args = parser.parse_args()

    from scipy.stats import kendalltau

    from nas.core.space import create_space
    from predictors.learned import Predictor, macs_of, within_share

    space: Any = create_space("nb201")
    strings, columns = load(Path(args.data))
    archs = [space.from_string(s) for s in strings]
    onehot = np.stack([space.features(a, "onehot") for a in archs]).astype(np.float64)
    macs = macs_of(space, archs)
    # the predictor's feature rows once for all archs (the same rows Predictor.fit builds)
    probe = Predictor(space, None, target="latency_ms@probe")
    features = np.stack([probe.features(a) for a in archs])
    results: dict[str, Any] = {}
    started = time.perf_counter()
    for name in args.columns or list(columns):
        y = columns[name]
        row: dict[str, Any] = {
            "gpu": name.startswith(GPU_PREFIXES),
            "ceiling_within_10pct": (
                None if args.no_ceiling else float(np.mean([ceiling(onehot, y, s) for s in range(min(args.seeds, 3))]))
            ),
            "macs_kendall": float(kendalltau(macs, y).statistic),
        }
        for n in args.sizes:
            ours, macs_line, taus, chosen = [], [], [], []
            for seed in range(args.seeds):
                order = np.random.default_rng(1000 + seed).permutation(len(y))
                train, test = order[:n], order[n:]
                predictor = Predictor(
                    space,
                    None,
                    seed=seed,
                    target=f"latency_ms@{name}",
                    params={"selection": args.selection, "folds": args.folds, "repeats": args.repeats},
                )
                predictor.fit([archs[i] for i in train], y[train])
                predicted = predictor.predict_features(features[test])[0]
                ours.append(within_share(predicted, y[test]))
                taus.append(float(kendalltau(predicted, y[test]).statistic))
                slope, intercept = np.polyfit(macs[train], y[train], 1)
                macs_line.append(within_share(slope * macs[test] + intercept, y[test]))
                model = predictor._models[0]
                chosen.append(f"{model.view_}/{model.chosen_}")
            row[str(n)] = {
                "within_10pct": float(np.mean(ours)),
                "kendall": float(np.mean(taus)),
                "macs_line_within_10pct": float(np.mean(macs_line)),
                "models_chosen": chosen,
            }
        fifty = row.get("50")
        if fifty:
            row["targets_50"] = {
                "within": (fifty["within_10pct"] >= 0.90)
                if row["gpu"]
                else (
                    row["ceiling_within_10pct"] is None or fifty["within_10pct"] >= row["ceiling_within_10pct"] - 0.05
                ),
                "tau_not_below_macs": fifty["kendall"] >= row["macs_kendall"],
            }
        results[name] = row
        print(name, {k: (v if not isinstance(v, dict) else round(v.get("within_10pct", 0), 3)) for k, v in row.items()})
    met = {k: all(r["targets_50"].values()) for k, r in results.items() if "targets_50" in r}
    path = write_result(
        args.out,
        {
            "benchmark": "few-shot latency predictors on NAS-Bench-201 (HELP / HW-NAS-Bench columns)",
            "command": (
                f"python -m benchmarks.latency_predictors_nb201 --seeds {args.seeds} --selection {args.selection}"
            ),
            "predictor": (
                "Predictor(kind='latency'): the space's latency views (NB201: op counts + live summary as an "
                "eager runtime runs them; op counts after dead-node elimination) + MACs/params, the (view, "
                "linear model) pair that cross-validates best"
            ),
            "seconds": time.perf_counter() - started,
            "columns": results,
            "targets_met": met,
        },
    )
    print(f"targets met on {sum(met.values())} of {len(met)} columns -> {path}")


if __name__ == "__main__":
    main()
