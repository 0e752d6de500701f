"""Zero-cost proxies on NAS-Bench-201 (CIFAR-10): Spearman rho / Kendall tau and time per arch.

Compares every proxy with the published values of Abdelfattah et al. (2021) and
writes JSON with the environment. Per-arch scores go to a JSONL next to the result,
so a long run can be interrupted and resumed.

    python -m benchmarks.zero_cost_nb201 --archs 1000 \\
        --benchmark ../shared/data/nb201/nats_bench_tss_200ep.csv \\
        --data ../shared/data/cifar10/cifar10_jpg.tar.xz
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path
from typing import Any

from benchmarks.common import write_result
from predictors.proxy_eval import PerArchBatches, proxy_batch, rank_metrics, read_score_records, score_nb201

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NASLIB_NAMES = {"jacob_cov": "jacov", "naswot": "nwot"}  # ours -> NAS-Bench-Suite-Zero's column


def naslib_reference(
    naslib_csv: Path, accuracy_csv: Path, scores_jsonl: Path, proxies: list[str], task: str = "cifar10"
) -> dict[str, Any]:
    """NASLib's own per-arch proxy values as a reference implementation under the same ground truth.

    Per proxy: Spearman/Kendall of NASLib's values with the benchmark's 200-epoch test accuracy
    (the ground truth our rho uses) on NASLib's archs, and the rank agreement (Spearman) between
    our values and NASLib's on the archs both scored.
    """
    from scipy.stats import spearmanr

    with accuracy_csv.open() as fh:
        column = "CIFAR10TestAccuracy200Epochs" if task == "cifar10" else "CIFAR100TestAccuracy200Epochs"
        truth = [float(r[column]) for r in csv.DictReader(fh)]
    with naslib_csv.open() as fh:
        naslib = [r for r in csv.DictReader(fh) if r["task"] == task]
    ours = {row["index"]: row["scores"] for row in read_score_records(scores_jsonl)}
    out: dict[str, Any] = {"naslib_archs": len(naslib)}
    for name in proxies:
        column = NASLIB_NAMES.get(name, name)
        if column not in naslib[0]:
            continue
        values = [float(r[column]) if r[column] not in ("", "nan") else math.nan for r in naslib]
        ref = rank_metrics(values, [truth[int(r["nb201_index"])] for r in naslib])
        shared = [r for r in naslib if int(r["nb201_index"]) in ours and name in ours[int(r["nb201_index"])]]
        pairs = [(float(ours[int(r["nb201_index"])][name]), float(r[column] or "nan")) for r in shared]
        pairs = [(a, b) for a, b in pairs if math.isfinite(a) and math.isfinite(b)]
        agreement = float(spearmanr(*zip(*pairs)).statistic) if len(pairs) > 2 else math.nan
        out[name] = {
            "naslib_spearman": ref["spearman"],
            "naslib_kendall": ref["kendall"],
            "shared_archs": len(pairs),
            "rank_agreement_with_naslib": agreement,
        }
    return out


REFERENCE_PROXIES = "synflow,jacob_cov,snip,grad_norm,grasp,fisher,naswot,params"


def reference_protocol(
    naslib_csv: Path, accuracy_csv: Path, batch: Any, scores_jsonl: Path, proxies: list[str], workers: int,
    task: str = "cifar10",
) -> dict[str, Any]:  # fmt: skip
    """The reference protocol on NASLib's own archs: our proxies (one batch of 64 training images,
    default init) scored on the archs of NAS-Bench-Suite-Zero's table and correlated with its
    ``val_accuracy`` (NATS-Bench's ``cifar10-valid`` setting: networks trained on the train split),
    beside NASLib's values under the same ground truth and the published column; plus the
    per-arch rank agreement of ours with NASLib's."""
    from scipy.stats import spearmanr

    from predictors.proxy_eval import PUBLISHED_NB201_SPEARMAN

    with naslib_csv.open() as fh:
        naslib = [r for r in csv.DictReader(fh) if r["task"] == task]
    indices = [int(r["nb201_index"]) for r in naslib]
    truth = [float(r["val_accuracy"]) for r in naslib]
    test = score_nb201(proxies, len(indices), accuracy_csv, batch, dataset=task, indices=indices,
                       results_path=scores_jsonl, workers=workers)  # fmt: skip
    ours = {row["index"]: row["scores"] for row in read_score_records(scores_jsonl)}
    published = PUBLISHED_NB201_SPEARMAN.get(task, {})
    out: dict[str, Any] = {"archs": len(indices), "ground_truth": "NASLib val_accuracy (cifar10-valid)", "proxies": {}}
    for name in proxies:
        mine = [float(ours[i][name]) for i in indices]
        row: dict[str, Any] = {"ours": rank_metrics(mine, truth), "ours_vs_test_accuracy": test["proxies"][name]}
        column = NASLIB_NAMES.get(name, name)
        if column in naslib[0]:
            theirs = [float(r[column]) if r[column] not in ("", "nan") else math.nan for r in naslib]
            row["naslib"] = rank_metrics(theirs, truth)
            pairs = [(a, b) for a, b in zip(mine, theirs) if math.isfinite(a) and math.isfinite(b)]
            row["rank_agreement_with_naslib"] = float(spearmanr(*zip(*pairs)).statistic)
            row["agreement_pairs"] = len(pairs)
            row["difference_to_naslib"] = row["ours"]["spearman"] - row["naslib"]["spearman"]
            row["targets_met"] = abs(row["difference_to_naslib"]) <= 0.03 and row["rank_agreement_with_naslib"] >= 0.9
        if name in published:
            row["published_spearman"] = published[name]
        out["proxies"][name] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=1000)
    parser.add_argument("--benchmark", default=str(SHARED / "nb201" / "nats_bench_tss_200ep.csv"))
    parser.add_argument("--data", default=str(SHARED / "cifar10" / "cifar10_jpg.tar.xz"))
    parser.add_argument(
        "--proxies", help="comma-separated (default: every built-in for random; those NASLib also has for reference)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--naslib", default=str(SHARED / "zero_cost" / "nb201_zc12_725archs.csv"),
        help="NAS-Bench-Suite-Zero per-arch values: reference rho under the same ground truth (skipped if absent)",
    )  # fmt: skip
    parser.add_argument(
        "--batch-per-arch", action="store_true",
        help="a fresh augmented batch per arch (the released code's protocol) instead of one fixed batch",
    )  # fmt: skip
    parser.add_argument(
        "--out", help="result JSON (default: benchmarks/results/zero_cost_nb201_cifar10[_perarch|_reference].json)"
    )
    parser.add_argument(
        "--protocol", choices=["random", "reference"], default="random",
        help="random: --archs random archs against 200-epoch test accuracy; reference: NASLib's 725 CIFAR-10 "
        "archs against their val_accuracy, beside NASLib's own values (the published column's setting)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="archs scored at once, one process each")
    parser.add_argument(
        "--dataset", choices=["cifar10", "cifar100"], default="cifar10",
        help="ground truth (random protocol); the proxies' batch is CIFAR-10 images either way, the network's "
        "head has the dataset's classes",
    )  # fmt: skip
    args = parser.parse_args()
    if args.protocol == "reference":
        out = Path(args.out or "benchmarks/results/zero_cost_nb201_cifar10_reference.json")
        proxies = (args.proxies or REFERENCE_PROXIES).split(",")
        result = reference_protocol(
            Path(args.naslib), Path(args.benchmark), proxy_batch(args.data, 64, args.seed),
            Path("benchmarks/results/zero_cost_nb201_cifar10.jsonl"), proxies, args.workers,
        )  # fmt: skip
        write_result(out, {"benchmark": "zero_cost_nb201_reference", "batch": "fixed", "seed": args.seed, **result})
        for name, m in result["proxies"].items():
            naslib = m.get("naslib", {}).get("spearman", math.nan)
            agreement = m.get("rank_agreement_with_naslib", math.nan)
            print(f"{name:<10} rho ours {m['ours']['spearman']:.3f}  NASLib {naslib:.3f}  published "
                  f"{m.get('published_spearman', '-')}  agreement {agreement:.3f}")  # fmt: skip
        print(f"wrote {out}")
        return
    default = f"zero_cost_nb201_{args.dataset}{'_perarch' if args.batch_per_arch else ''}.json"
    out = Path(args.out or f"benchmarks/results/{default}")
    out.parent.mkdir(parents=True, exist_ok=True)
    batch = PerArchBatches(args.data, 64, args.seed) if args.batch_per_arch else proxy_batch(args.data, 64, args.seed)
    proxies = (args.proxies or "synflow,jacob_cov,snip,grad_norm,grasp,fisher,naswot,zen,params,flops").split(",")
    result = score_nb201(
        proxies,
        args.archs,
        args.benchmark,
        batch,
        dataset=args.dataset,
        seed=args.seed,
        results_path=out.with_suffix(".jsonl"),
        workers=args.workers,
    )
    if Path(args.naslib).is_file():
        result["naslib_reference"] = naslib_reference(
            Path(args.naslib), Path(args.benchmark), out.with_suffix(".jsonl"), proxies, task=args.dataset
        )
    write_result(
        out, {"benchmark": "zero_cost_nb201", "batch": "per-arch" if args.batch_per_arch else "fixed", **result}
    )
    reference = result.get("naslib_reference", {})
    for name, m in result["proxies"].items():
        published = m.get("published_spearman")
        ref = reference.get(name)
        naslib = ""
        if ref:
            naslib = f"NASLib rho {ref['naslib_spearman']:.3f} (agreement {ref['rank_agreement_with_naslib']:.3f})"
        print(
            f"{name:<10} rho {m['spearman']:.3f} tau {m['kendall']:.3f} "
            f"published {published if published is not None else '-'}  "
            f"{naslib}  {m['seconds_per_arch']:.3f} s/arch"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
