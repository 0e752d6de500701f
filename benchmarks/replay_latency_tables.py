"""Replays stored CPU latency tables through the current code: every stored lookup and corrected
prediction must come out the same (a check that refactoring the latency code changed nothing).

    python -m benchmarks.replay_latency_tables
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from benchmarks.common import environment
from nas.core.space import create_space
from predictors.latency import LatencyTable, op_signatures

logger = logging.getLogger(__name__)
RESULTS = Path(__file__).with_name("results")


def replay(result: Path, tables: Path) -> dict:
    stored = json.loads(result.read_text())
    space = create_space("ofa_mbv3", config=stored["space_id"].split("/")[1])
    out = {
        "environment": environment(), "benchmark": "replay_latency_tables", "result": str(result),
        "ops_enumerated": len(op_signatures(space)), "runs": [],
    }  # fmt: skip
    for run in stored["runs"]:
        path = tables / "ofa_mbv3" / f"cifar_{run['device']}_{run.get('backend', 'torch')}_float32_b{run['batch']}.json"
        table = LatencyTable.load(path)
        diff_sum = diff_pred = 0.0
        for row in run["per_arch"]:
            arch = space.make(row["arch"])
            diff_sum = max(diff_sum, abs(table.lookup(space, arch) - row["table_sum_ms"]))
            diff_pred = max(diff_pred, abs(table.predict(space, arch) - row["predicted_ms"]))
        out["runs"].append(
            {
                "batch": run["batch"],
                "archs": len(run["per_arch"]),
                "entries": len(table.entries),
                "max_abs_diff_table_sum_ms": diff_sum,
                "max_abs_diff_predicted_ms": diff_pred,
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--result", default=str(RESULTS / "latency_table_cpu.json"))
    parser.add_argument("--tables", default=str(RESULTS / "latency_table_cpu"))
    parser.add_argument("--out", default=str(RESULTS / "latency_table_cpu_replay.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    report = replay(Path(args.result), Path(args.tables))
    Path(args.out).write_text(json.dumps(report, indent=1))
    for run in report["runs"]:
        logger.info(
            "batch %d: %d archs, max |diff| table sum %.3g ms, corrected %.3g ms",
            run["batch"],
            run["archs"],
            run["max_abs_diff_table_sum_ms"],
            run["max_abs_diff_predicted_ms"],
        )


if __name__ == "__main__":
    main()
