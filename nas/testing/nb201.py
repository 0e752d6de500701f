"""Synthetic NAS-Bench-201 tables for tests (all 15,625 archs, known values)."""

from __future__ import annotations

import csv
from pathlib import Path

from search_spaces.nb201.space import NUM_ARCHS, NB201Space


def write_nb201_tables(folder: Path, space: NB201Space) -> tuple[Path, Path]:
    """Synthetic NB201 tables in the benchmark's CSV layout: ``acc.csv`` (accuracy i/1000 and i/2000
    for CIFAR-10/100, rows reversed) and ``lat.csv`` (devices ``cpu`` = i/100 ms and ``gpu`` = 1 ms)."""
    acc, lat = folder / "acc.csv", folder / "lat.csv"
    with acc.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["CIFAR10TestAccuracy200Epochs", "CIFAR100TestAccuracy200Epochs", "ArchitectureString"])
        for i in reversed(range(NUM_ARCHS)):  # row order must not matter
            w.writerow([i / 1000, i / 2000, space.to_string(space.from_index(i))])
    with lat.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arch_index", "arch_str", "cpu", "gpu"])
        for i in range(NUM_ARCHS):
            w.writerow([i, space.to_string(space.from_index(i)), i * 0.01, 1.0])
    return acc, lat
