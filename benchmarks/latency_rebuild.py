"""Is a table's build repeatable, and is one built under load caught? (issue 26, targets 3)

Builds the latency table of one space three times on this machine: twice as it is (run this on an
idle machine) and once while ``--load`` other processes spin on the CPU. Reports each build's
verdict (:mod:`predictors.latency.provenance`) and the median per-op difference between the
builds: the two idle builds should differ by <= 5%, the loaded one should be marked unreliable.

    python -m benchmarks.latency_rebuild --config cifar --rounds 3
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

import numpy as np

from benchmarks.common import write_result


def _difference(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    ratios = np.array([a[k]["mean_ms"] / b[k]["mean_ms"] for k in a])
    return {
        "median_abs_per_op": float(np.median(np.abs(ratios - 1.0))),
        "p90_abs_per_op": float(np.quantile(np.abs(ratios - 1.0), 0.9)),
        "median_ratio": float(np.median(ratios)),
    }


def _build_record(table: Any, seconds: float) -> dict[str, Any]:
    record = table.provenance
    return {"seconds": seconds, "reliable": table.reliable, "reasons": record["reasons"], "load": record["load"],
            "noise": record["noise"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="ofa_mbv3")
    parser.add_argument("--config", default="cifar")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", type=int, default=2, help="spinning processes during the loaded build")
    parser.add_argument("--out", default="benchmarks/results/latency_rebuild_cpu.json")
    args = parser.parse_args()

    from nas.core.space import create_space
    from predictors.latency import build_table

    space = create_space(args.space, config=args.config)

    def build() -> Any:
        started = time.perf_counter()
        table = build_table(space, backend=args.backend, calibration_archs=0, rounds=args.rounds, progress=False)
        return table, time.perf_counter() - started

    first, first_s = build()
    second, second_s = build()
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    try:
        loaded, loaded_s = build()
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    builds = {"idle_1": (first, first_s), "idle_2": (second, second_s), "loaded": (loaded, loaded_s)}
    result = {
        "benchmark": "latency table rebuild and load detection",
        "command": f"python -m benchmarks.latency_rebuild --config {args.config} --backend {args.backend} "
        f"--rounds {args.rounds} --load {args.load}",
        "space_id": space.space_id,
        "ops": len(first.entries),
        "builds": {name: _build_record(t, s) for name, (t, s) in builds.items()},
        "idle_vs_idle": _difference(first.entries, second.entries),
        "loaded_vs_idle": _difference(loaded.entries, first.entries),
    }
    result["targets"] = {
        "idle_rebuild_within_5pct": result["idle_vs_idle"]["median_abs_per_op"] <= 0.05,
        "loaded_build_marked": not loaded.reliable,
        "idle_builds_reliable": first.reliable and second.reliable,
    }
    path = write_result(args.out, result)
    print(result["targets"], result["idle_vs_idle"], "->", path)


if __name__ == "__main__":
    main()
