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
from pathlib import Path

from benchmarks.common import write_result
from predictors.proxy_eval import PerArchBatches, proxy_batch, score_nb201

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=1000)
    parser.add_argument("--benchmark", default=str(SHARED / "nb201" / "nats_bench_tss_200ep.csv"))
    parser.add_argument("--data", default=str(SHARED / "cifar10" / "cifar10_jpg.tar.xz"))
    parser.add_argument("--proxies", default="synflow,jacob_cov,snip,grad_norm,grasp,fisher,naswot,zen,params,flops")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--batch-per-arch", action="store_true",
        help="a fresh augmented batch per arch (the released code's protocol) instead of one fixed batch",
    )  # fmt: skip
    parser.add_argument(
        "--out", help="result JSON (default: benchmarks/results/zero_cost_nb201_cifar10[_perarch].json)"
    )
    args = parser.parse_args()
    default = "zero_cost_nb201_cifar10_perarch.json" if args.batch_per_arch else "zero_cost_nb201_cifar10.json"
    out = Path(args.out or f"benchmarks/results/{default}")
    out.parent.mkdir(parents=True, exist_ok=True)
    batch = PerArchBatches(args.data, 64, args.seed) if args.batch_per_arch else proxy_batch(args.data, 64, args.seed)
    result = score_nb201(
        args.proxies.split(","),
        args.archs,
        args.benchmark,
        batch,
        dataset="cifar10",
        seed=args.seed,
        results_path=out.with_suffix(".jsonl"),
    )
    write_result(
        out, {"benchmark": "zero_cost_nb201", "batch": "per-arch" if args.batch_per_arch else "fixed", **result}
    )
    for name, m in result["proxies"].items():
        published = m.get("published_spearman")
        print(
            f"{name:<10} rho {m['spearman']:.3f} tau {m['kendall']:.3f} "
            f"published {published if published is not None else '-'}  {m['seconds_per_arch']:.3f} s/arch"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
