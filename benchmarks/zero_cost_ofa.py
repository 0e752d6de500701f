"""Zero-cost proxies of once-for-all subnets against their holdout accuracy, next to MACs.

On a trained supernet (the Fashion-MNIST example, ``nas train examples/fashion_mnist.yaml --out
runs/fashion``), for ``--archs`` random subnets: holdout accuracy after BN recalibration (what a
supernet search evaluates), and each proxy's score on one batch of training images with the
subnet's inherited weights and with a fresh initialisation (the supernet evaluator's
``proxies`` / ``proxy_weights``). Reports Spearman/Kendall of every proxy and of MACs and params
with accuracy, and, as predictor features, a GP fitted on ``--fit`` subnets with the arch
encoding alone, with MACs, and with the proxies beside it, scored on the rest (``--repeats``
random splits). Per-subnet values go to a JSONL next to the result (resumed when present).

    python -m benchmarks.zero_cost_ofa --run runs/fashion --archs 200
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import write_result

PROXIES = "synflow,naswot,meco,zico,swap,snip,grad_norm,jacob_cov"


def _measure(run: str, archs: int, proxies: list[str], seed: int, recal: int, batch: int, path: Path) -> list[dict]:
    import torch
    from tqdm import tqdm

    from nas.evaluators import build_evaluator
    from search_spaces.training.checkpoint import load_supernet

    space = load_supernet(run)[0].space
    spec = {"kind": "supernet", "checkpoint": run, "recal_batches": recal, "proxies": proxies,
            "proxy_batch_size": batch}  # fmt: skip
    inherited = build_evaluator(spec, space)
    init = build_evaluator({**spec, "proxy_weights": "init"}, space)
    sample = space.sample_unique(archs, np.random.default_rng(seed))
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["arch_id"]] = row
    rows = []
    for arch in tqdm(sample, desc="subnets"):
        if arch.arch_id in done:
            rows.append(done[arch.arch_id])
            continue
        start = time.perf_counter()
        with torch.no_grad():
            metrics = inherited.evaluate([arch])[0]
        middle = time.perf_counter()
        fresh = init.evaluate_cheap([arch])[0]  # type: ignore[attr-defined]
        row = {
            "arch_id": arch.arch_id,
            "arch": arch.to_dict(),
            "accuracy": metrics["accuracy"],
            "macs": metrics["macs"],
            "params": metrics["params"],
            "inherited": {p: metrics[f"zc_{p}"] for p in proxies},
            "init": {p: fresh[f"zc_{p}"] for p in proxies},
            "seconds": {
                "evaluate_with_inherited_proxies": middle - start,
                "init_proxies": time.perf_counter() - middle,
            },
        }
        rows.append(row)
        with path.open("a") as fh:
            fh.write(json.dumps({k: _json(v) for k, v in row.items()}) + "\n")
    return rows


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    return value if not isinstance(value, float) or math.isfinite(value) else str(value)


def _rank_metrics(values: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    from scipy.stats import kendalltau, spearmanr

    finite = np.isfinite(values)
    return {
        "spearman": float(spearmanr(values[finite], truth[finite]).statistic),
        "kendall": float(kendalltau(values[finite], truth[finite]).statistic),
        "finite": int(finite.sum()),
    }


def _as_features(rows: list[dict], run: str, fit: int, repeats: int, columns: dict[str, np.ndarray]) -> dict:
    """Spearman on held-out subnets of a GP fitted on ``fit`` of them, per feature set."""
    from scipy.stats import spearmanr

    from predictors.learned import Predictor
    from search_spaces.training.checkpoint import load_supernet

    space = load_supernet(run)[0].space
    archs = [space.make(r["arch"]) for r in rows]
    truth = np.array([r["accuracy"] for r in rows])
    encoding = np.stack([space.features(a) for a in archs]).astype(np.float64)

    def standard(x: np.ndarray) -> np.ndarray:
        x = np.sign(x) * np.log1p(np.abs(x))
        x = np.where(np.isfinite(x), x, np.nanmedian(np.where(np.isfinite(x), x, np.nan)))
        return (x - x.mean()) / (x.std() or 1.0)

    sets = {"encoding": encoding}
    for name, values in columns.items():
        sets[f"encoding+{name}"] = np.hstack([encoding, standard(values)[:, None]])
    proxies = [n for n in columns if n != "macs"]
    if "macs" in columns and proxies:  # MACs and the best proxy together
        both = np.stack([standard(columns["macs"]), standard(columns[proxies[0]])], axis=1)
        sets[f"encoding+macs+{proxies[0]}"] = np.hstack([encoding, both])
    out: dict[str, Any] = {}
    for name, x in sets.items():
        rhos = []
        for repeat in range(repeats):
            order = np.random.default_rng(repeat).permutation(len(rows))
            train, test = order[:fit], order[fit:]
            model = Predictor(space, "gp", repeat).fit_features(x[train], truth[train])
            rhos.append(float(spearmanr(model.predict_features(x[test])[0], truth[test]).statistic))
        out[name] = {"median_spearman": float(np.median(rhos)), "spearman_per_split": rhos}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/fashion", help="a trained supernet's run folder")
    parser.add_argument("--archs", type=int, default=200, help="random subnets")
    parser.add_argument("--proxies", default=PROXIES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recal-batches", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64, help="training images in the proxies' batch")
    parser.add_argument("--fit", type=int, default=50, help="subnets the predictor is fitted on")
    parser.add_argument("--repeats", type=int, default=10, help="random fit/test splits")
    parser.add_argument("--out", default="benchmarks/results/zero_cost_ofa_fashion.json")
    args = parser.parse_args(argv)
    proxies = args.proxies.split(",")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = _measure(
        args.run, args.archs, proxies, args.seed, args.recal_batches, args.batch_size, out.with_suffix(".jsonl")
    )
    truth = np.array([r["accuracy"] for r in rows])
    columns: dict[str, np.ndarray] = {"macs": np.array([r["macs"] for r in rows], dtype=float),
                                      "params": np.array([r["params"] for r in rows], dtype=float)}  # fmt: skip
    for weights in ("inherited", "init"):
        for p in proxies:
            columns[f"{p}@{weights}"] = np.array([float(r[weights][p]) for r in rows])
    correlation = {name: _rank_metrics(values, truth) for name, values in columns.items()}
    best = sorted((n for n in columns if "@" in n), key=lambda n: -abs(correlation[n]["spearman"]))[:3]
    features = _as_features(rows, args.run, args.fit, args.repeats, {n: columns[n] for n in ["macs", *best]})
    seconds = {
        key: float(np.mean([r["seconds"][key] for r in rows]))
        for key in ("evaluate_with_inherited_proxies", "init_proxies")
    }
    result = {
        "benchmark": "zero_cost_ofa",
        "run": args.run,
        "archs": len(rows),
        "seed": args.seed,
        "proxy_batch_size": args.batch_size,
        "accuracy_range": [float(truth.min()), float(truth.max())],
        "correlation_with_holdout_accuracy": correlation,
        "as_predictor_features": {"fit": args.fit, "repeats": args.repeats, **features},
        "seconds_per_subnet": seconds,
    }
    write_result(out, result)
    for name, m in sorted(correlation.items(), key=lambda kv: -kv[1]["spearman"]):
        print(f"{name:<22} rho {m['spearman']:+.3f} tau {m['kendall']:+.3f}")
    for name, m in features.items():
        print(f"GP on {name:<28} median rho {m['median_spearman']:.3f}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
