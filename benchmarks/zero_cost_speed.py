"""Seconds per NB201 arch for all zero-cost proxies together: each proxy on its own (one forward
and backward each, grasp two) against shared passes (:func:`predictors.zero_cost.score_many`), in
one process, and shared passes with archs spread over worker processes — side by side in one run.

The first two alternate arch by arch (so the machine's drift hits both alike); the worker run
scores the same archs as a block between two single-process blocks. Scores must agree.

    python -m benchmarks.zero_cost_speed --archs 24   # writes benchmarks/results/zero_cost_speed_cpu.json
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import write_result

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PROXIES = "synflow,jacob_cov,snip,grad_norm,grasp,fisher,naswot,params"


def _batch(data: str | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if data and Path(data).exists():
        from predictors.proxy_eval import proxy_batch

        return proxy_batch(data, 64, seed)
    gen = torch.Generator().manual_seed(seed)  # CIFAR-shaped stand-in when the images are absent
    return torch.randn(64, 3, 32, 32, generator=gen), torch.randint(0, 10, (64,), generator=gen)


def _separately(index: int, proxies: list[str], batch: Any, seed: int) -> tuple[dict[str, float], float]:
    from predictors.zero_cost import score
    from search_spaces.nb201.network import NB201Network
    from search_spaces.nb201.space import NB201Space

    arch = NB201Space().from_index(index)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 100_003 + index)
        net = NB201Network(arch, num_classes=10)
    start = time.perf_counter()
    scores = {}
    for name in proxies:
        try:
            scores[name] = score(name, net, batch, seed=seed)
        except (FloatingPointError, RuntimeError, ValueError):
            scores[name] = math.nan
    return scores, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=24, help="NB201 archs (default: %(default)s)")
    parser.add_argument("--proxies", default=PROXIES, help="comma-separated (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="processes of the third variant (default: %(default)s)")
    parser.add_argument("--data", default=str(SHARED / "cifar10" / "cifar10_jpg.tar.xz"), help="CIFAR-10 images")
    parser.add_argument("--seed", type=int, default=0, help="arch sample, batch and init (default: %(default)s)")
    parser.add_argument("--out", default="benchmarks/results/zero_cost_speed_cpu.json", help="result JSON")
    args = parser.parse_args(argv)
    from nas.testing.nb201 import write_nb201_tables
    from predictors.proxy_eval import score_arch, score_nb201
    from search_spaces.nb201.space import NUM_ARCHS, NB201Space

    proxies = args.proxies.split(",")
    batch = _batch(args.data, args.seed)
    indices = np.random.default_rng(args.seed).choice(NUM_ARCHS, size=args.archs, replace=False).tolist()
    score_arch(indices[0], proxies, batch, 10, args.seed)  # warm-up (first-call allocations)
    alone, shared, per_proxy_shared, mismatches = [], [], [], 0
    for index in indices:  # alternate arch by arch
        scores_a, seconds_a = _separately(index, proxies, batch, args.seed)
        start = time.perf_counter()
        scores_b, seconds_b = score_arch(index, proxies, batch, 10, args.seed)
        shared.append(time.perf_counter() - start)
        alone.append(seconds_a)
        per_proxy_shared.append(seconds_b)
        for name in proxies:
            a, b = scores_a[name], scores_b[name]
            if not (math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-9) or (math.isnan(a) and math.isnan(b))):
                mismatches += 1
    with tempfile.TemporaryDirectory() as folder:  # score_nb201 needs accuracy tables: stand-ins do
        accuracy_csv, _ = write_nb201_tables(Path(folder), NB201Space())
        start = time.perf_counter()
        score_nb201(proxies, 0, accuracy_csv, batch, indices=indices, seed=args.seed, progress=False,
                    workers=args.workers)  # fmt: skip
        pooled = (time.perf_counter() - start) / len(indices)
    mean_alone, mean_shared = float(np.mean(alone)), float(np.mean(shared))
    result = {
        "benchmark": "zero_cost_speed",
        "archs": len(indices),
        "proxies": proxies,
        "seconds_per_arch": {
            "each_proxy_alone": round(mean_alone, 3),
            "shared_passes": round(mean_shared, 3),
            f"shared_passes_{args.workers}_workers": round(pooled, 3),
        },
        "speedup": {
            "shared_passes": round(mean_alone / mean_shared, 2),
            f"shared_passes_{args.workers}_workers": round(mean_alone / pooled, 2),
        },
        "seconds_per_arch_per_proxy_shared": {
            n: round(float(np.mean([s[n] for s in per_proxy_shared])), 3) for n in proxies
        },
        "score_mismatches": mismatches,
        "torch_threads": torch.get_num_threads(),
    }
    write_result(args.out, result)
    print(result["seconds_per_arch"], result["speedup"], "mismatches", mismatches)


if __name__ == "__main__":
    main()
