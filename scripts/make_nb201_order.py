"""Regenerates search_spaces/nb201/nb201_order.txt.gz from a NAS-Bench-201 CSV.

The NAS-Bench-201 index of an architecture is its position in the benchmark's own
list (not an enumeration order), so the list is shipped with the package: one line
per index, six digits, the op of each edge in string order (0->1, 0->2, 1->2,
0->3, 1->3, 2->3), coded by position in NB201's op list
(none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3).

    python scripts/make_nb201_order.py ../shared/data/nb201/nats_bench_tss_200ep.csv
"""

from __future__ import annotations

import csv
import gzip
import sys
from pathlib import Path

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def main(path: str) -> None:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    column = "ArchitectureString" if "ArchitectureString" in rows[0] else "arch_str"
    lines = []
    for row in rows:
        ops = [edge.split("~")[0] for node in row[column].strip("|").split("|+|") for edge in node.split("|")]
        lines.append("".join(str(NB201_OPS.index(op)) for op in ops))
    if len(set(lines)) != 15625:
        raise SystemExit(f"{path}: expected 15,625 distinct architectures, found {len(set(lines))}")
    out = Path(__file__).resolve().parents[1] / "search_spaces" / "nb201" / "nb201_order.txt.gz"
    with gzip.GzipFile(out, "wb", mtime=0) as fh:
        fh.write(("\n".join(lines) + "\n").encode())
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1])
