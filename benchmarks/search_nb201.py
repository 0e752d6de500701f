"""Searchers on NAS-Bench-201 (CIFAR-10 accuracy vs a measured latency column): hypervolume vs evaluations.

For every searcher and seed, runs the ask/tell loop against the tabular
benchmark and records the hypervolume of the evaluated archs relative to the true
front's (computed from all 15,625 archs), after 50/100/200/500 evaluations, and
the evaluations needed to reach 95% and 99% of it. Writes JSON and a plot of the
median HV ratio vs evaluations.

    python -m benchmarks.search_nb201 --seeds 10 --device pixel3

``predictor-zc`` is the predictor-in-the-loop searcher with zero-cost proxies: MeCo and
SynFlow scores of every arch (``--zero-cost``, a file from ``benchmarks.zero_cost_nb201``
or ``nas proxy score --out``) as surrogate features, and its first 20 archs picked from the
MeCo + SynFlow rank vote and latency instead of at random.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import write_result
from nas.core.pareto import Objective, hypervolume, pareto_front
from nas.searchers import create_searcher

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "nb201"
CHECKPOINTS = (50, 100, 200, 500)
# Evaluation budget per searcher; GP-based Optuna is limited by its cost on a 2-core CPU.
BUDGETS = {"gp": 100, "predictor": 300, "predictor-zc": 300, "tpe": 500}
SETTINGS: dict[str, dict[str, Any]] = {
    "evolution": {"population": 20},
    "nsga2": {"population": 20},
    "optuna-nsga2": {"population": 20},
    "tpe": {"n_startup_trials": 20},
    "gp": {"n_startup_trials": 20},
    "predictor": {"initial": 20, "predictor": "gp", "kappa": 0.0},
    "predictor-zc": {
        "initial": 20,
        "predictor": "gp",
        "kappa": 0.0,
        "proxy_features": ["meco", "synflow"],
        "warm_start": ["meco", "synflow"],
        "local_fraction": 0.5,
    },
}
# Labels that run another kind with their own settings.
KINDS = {"predictor-zc": "predictor"}
ZERO_COST = Path(__file__).resolve().parent / "results" / "zero_cost_nb201_cifar10_all.csv.gz"


def hv_curve(
    kind: str, seed: int, evaluator: Any, objectives: list[Objective], ref: dict[str, float], budget: int, batch: int
) -> list[float]:
    """Hypervolume after each evaluation."""
    searcher = create_searcher(
        KINDS.get(kind, kind), evaluator.space, objectives, (), seed, SETTINGS.get(kind, {}),
        cheap=evaluator.evaluate_cheap, cheap_metrics=evaluator.cheap_metrics,
    )  # fmt: skip
    points: list[dict[str, float]] = []
    curve: list[float] = []
    while len(points) < budget:
        trials = searcher.ask(min(batch, budget - len(points)))
        if not trials:
            break
        for trial, metrics in zip(trials, evaluator.evaluate([t.arch for t in trials])):
            searcher.tell(trial.trial_id, metrics)
            points.append(metrics)
            curve.append(hypervolume(points, objectives, ref))
    return curve


def first_reaching(curve: list[float], level: float) -> int | None:
    hits = np.flatnonzero(np.asarray(curve) >= level)
    return int(hits[0]) + 1 if hits.size else None


def main() -> None:
    from search_spaces.nb201.space import NB201Space

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accuracy-csv", default=str(SHARED / "nats_bench_tss_200ep.csv"))
    parser.add_argument("--latency-csv", default=str(SHARED / "nb201_latency_help.csv"))
    parser.add_argument("--device", default="pixel3")
    parser.add_argument("--searchers", default="random,evolution,nsga2,optuna-nsga2,tpe,predictor,predictor-zc,gp")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--gp-seeds", type=int, default=3, help="seeds for Optuna's GP (slow)")
    parser.add_argument("--budget", type=int, default=1500, help="evaluations per run (searchers without a cap)")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/search_nb201.json")
    parser.add_argument(
        "--zero-cost", default=str(ZERO_COST),
        help="per-arch zero-cost scores of every NB201 arch (for predictor-zc; "
        "`python -m benchmarks.zero_cost_nb201 --archs 15625 --proxies meco,synflow --workers 2 "
        "--out benchmarks/results/zero_cost_nb201_cifar10_all.json`)",
    )  # fmt: skip
    parser.add_argument("--merge", action="store_true", help="keep the other searchers' results already in --out")
    args = parser.parse_args()

    from nas.evaluators import TabularEvaluator, TabularSpec

    space = NB201Space()
    zero_cost = args.zero_cost if "predictor-zc" in args.searchers.split(",") else None
    evaluator = TabularEvaluator(
        TabularSpec("tabular", args.accuracy_csv, args.latency_csv, "cifar10", [args.device], zero_cost), space
    )
    lat = f"latency_ms@{args.device}"
    objectives = [Objective("accuracy", "max"), Objective(lat, "min")]
    everything = evaluator.evaluate([space.from_index(i) for i in range(15625)])
    # Reference: the nadir of the true front pushed out by 1% of its range, so the hypervolume
    # measures how well the front itself is found (a table-wide nadir would make any decent arch
    # score ~95%).
    true_front = [everything[i] for i in pareto_front(everything, objectives)]
    acc = [m["accuracy"] for m in true_front]
    lats = [m[lat] for m in true_front]
    ref = {
        "accuracy": min(acc) - 0.01 * (max(acc) - min(acc)),
        lat: max(lats) + 0.01 * (max(lats) - min(lats)),
    }
    true_hv = hypervolume(everything, objectives, ref)
    results: dict[str, Any] = {}
    out = Path(args.out)
    if args.merge and out.is_file():
        results = json.loads(out.read_text())["searchers"]
    for kind in args.searchers.split(","):
        budget = min(args.budget, BUDGETS.get(kind, args.budget))
        seeds = args.gp_seeds if kind == "gp" else args.seeds
        runs = []
        for seed in range(seeds):
            start = time.perf_counter()
            curve = hv_curve(kind, seed, evaluator, objectives, ref, budget, args.batch)
            ratio = [h / true_hv for h in curve]
            runs.append(
                {
                    "seed": seed,
                    "seconds": time.perf_counter() - start,
                    "hv_ratio_at": {str(c): ratio[c - 1] for c in CHECKPOINTS if c <= len(ratio)},
                    "evals_to_95": first_reaching(ratio, 0.95),
                    "evals_to_99": first_reaching(ratio, 0.99),
                    "curve": [round(r, 5) for r in ratio],
                }
            )
            print(f"{kind:<13} seed {seed}: 99% after {runs[-1]['evals_to_99']} evals, {runs[-1]['seconds']:.1f} s")
        summary = {"budget": budget, "seeds": seeds}
        for c in CHECKPOINTS:
            values = [r["hv_ratio_at"][str(c)] for r in runs if str(c) in r["hv_ratio_at"]]
            if values:
                summary[f"median_hv_ratio_at_{c}"] = float(np.median(values))
        for level in ("95", "99"):
            hits = [r[f"evals_to_{level}"] for r in runs]
            reached = [h for h in hits if h is not None]
            summary[f"reached_{level}"] = f"{len(reached)}/{len(hits)}"
            # median over seeds, counting runs that never reached the level as beyond the budget
            summary[f"median_evals_to_{level}"] = (
                float(np.median([h if h is not None else np.inf for h in hits])) if reached else None
            )
        summary["seconds_per_run"] = float(np.mean([r["seconds"] for r in runs]))
        results[kind] = {"summary": summary, "runs": runs}
    payload = {
        "benchmark": "search_nb201",
        "objectives": ["accuracy (max, CIFAR-10 200-epoch test)", f"{lat} (min)"],
        "reference": ref,
        "true_hypervolume": true_hv,
        "true_front_size": len(true_front),
        "batch": args.batch,
        "searchers": results,
    }
    write_result(out, payload)
    _plot(results, out.with_suffix(".png"), args.device)
    print(json.dumps({k: v["summary"] for k, v in results.items()}, indent=1))
    if "predictor" in results and "nsga2" in results:
        p = results["predictor"]["summary"]["median_evals_to_99"]
        n = results["nsga2"]["summary"]["median_evals_to_99"]
        print(f"evaluations to 99% of the true HV: predictor {p}, nsga2 {n}")


def _plot(results: dict[str, Any], path: Path, device: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for kind, data in results.items():
        length = min(len(r["curve"]) for r in data["runs"])
        median = np.median([r["curve"][:length] for r in data["runs"]], axis=0)
        ax.plot(np.arange(1, length + 1), median, label=f"{kind} ({len(data['runs'])} seeds)")
    ax.axhline(0.99, ls="--", c="0.5", lw=1)
    ax.set_xscale("log")
    ax.set_ylim(0.5, 1.001)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("hypervolume / true hypervolume (median)")
    ax.set_title(f"NAS-Bench-201 CIFAR-10: accuracy vs latency on {device}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
