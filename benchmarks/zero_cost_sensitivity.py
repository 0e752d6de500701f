"""How much each proxy's per-arch ranking depends on the initialisation and on the batch — the
yardstick for how closely two implementations can agree arch by arch.

On ``--archs`` of NASLib's CIFAR-10 archs, each proxy is scored three times: init A + batch A,
init B + batch A, init A + batch B (B: another seed). Reported per proxy: Spearman between the
A/A scores and each variant (our own agreement with ourselves), and between A/A and NASLib's
values (computed with NASLib's own init and batch). A proxy whose ranking moves with the seed
cannot agree with another implementation better than it agrees with itself.

    python -m benchmarks.zero_cost_sensitivity --archs 60
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path
from typing import Any

from benchmarks.common import write_result

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NASLIB_NAMES = {"jacob_cov": "jacov", "naswot": "nwot"}


def _spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    pairs = [(x, y) for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)]
    return float(spearmanr(*zip(*pairs)).statistic) if len(pairs) > 2 else math.nan


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--archs", type=int, default=60, help="NASLib CIFAR-10 archs, the first N (default: %(default)s)"
    )
    parser.add_argument("--proxies", default="grasp,snip,grad_norm,fisher,jacob_cov,synflow", help="comma-separated")
    parser.add_argument("--naslib", default=str(SHARED / "zero_cost" / "nb201_zc12_725archs.csv"), help="NASLib CSV")
    parser.add_argument("--data", default=str(SHARED / "cifar10" / "cifar10_jpg.tar.xz"), help="CIFAR-10 images")
    parser.add_argument("--workers", type=int, default=2, help="archs scored at once (default: %(default)s)")
    parser.add_argument("--out", default="benchmarks/results/zero_cost_sensitivity.json", help="result JSON")
    args = parser.parse_args(argv)
    import tempfile

    from nas.testing.nb201 import write_nb201_tables
    from predictors.proxy_eval import proxy_batch, read_score_records, score_nb201
    from search_spaces.nb201.space import NB201Space

    proxies = args.proxies.split(",")
    with open(args.naslib) as fh:
        naslib = [r for r in csv.DictReader(fh) if r["task"] == "cifar10"][: args.archs]
    indices = [int(r["nb201_index"]) for r in naslib]
    runs: dict[str, dict[int, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        accuracy_csv, _ = write_nb201_tables(Path(folder), NB201Space())  # stand-in accuracies: unused here
        for name, init_seed, batch_seed in (("A/A", 0, 0), ("B init", 1, 0), ("B batch", 0, 1)):
            path = Path(folder) / f"{init_seed}-{batch_seed}.jsonl"
            batch = proxy_batch(args.data, 64, batch_seed)
            score_nb201(proxies, 0, accuracy_csv, batch, indices=indices, seed=init_seed, results_path=path,
                        progress=False, workers=args.workers)  # fmt: skip
            runs[name] = {r["index"]: r["scores"] for r in read_score_records(path)}
    out: dict[str, Any] = {}
    for proxy in proxies:
        base = [float(runs["A/A"][i][proxy]) for i in indices]
        column = NASLIB_NAMES.get(proxy, proxy)
        theirs = [float(r[column]) if r.get(column) not in (None, "", "nan") else math.nan for r in naslib]
        out[proxy] = {
            "self_agreement_other_init": _spearman(base, [float(runs["B init"][i][proxy]) for i in indices]),
            "self_agreement_other_batch": _spearman(base, [float(runs["B batch"][i][proxy]) for i in indices]),
            "agreement_with_naslib": _spearman(base, theirs),
        }
        print(f"{proxy:<10} " + "  ".join(f"{k} {v:.3f}" for k, v in out[proxy].items()))
    note = "init seed changes the weights (NB201Network init), batch seed the 64 images"
    write_result(args.out, {"benchmark": "zero_cost_sensitivity", "archs": len(indices), "proxies": out, "note": note})


if __name__ == "__main__":
    main()
