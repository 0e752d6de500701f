"""Tabular NAS-Bench-201 evaluator: benchmark accuracies and measured latencies from CSV files.

Reads the files given by path (for example NATS-Bench's 200-epoch accuracies and
HELP's per-device latencies); archs are matched by their string form, so the row
order of a file does not matter. No torch import.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.core.arch import Arch
from nas.core.config import short_repr
from nas.core.evaluator import Evaluator
from nas.core.space import SearchSpace, create_space
from search_spaces.nb201.cell import NUM_ARCHS

ACCURACY_COLUMNS = {
    "cifar10": "CIFAR10TestAccuracy200Epochs",
    "cifar100": "CIFAR100TestAccuracy200Epochs",
    "imagenet16-120": "ImageNetTestAccuracy200Epochs",
}
ARCH_COLUMNS = ("ArchitectureString", "arch_str")
NON_DEVICE_COLUMNS = {"arch_index", "arch_str", "ArchitectureString", "UniqueString"}


def _read(path: str | Path, what: str) -> tuple[list[str], list[dict[str, str]]]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what}: file {path} not found")
    # Errors name the file, line and column but never quote the file's content.
    try:
        with gzip.open(path, "rt", newline="") if path.suffix.lower() == ".gz" else path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            columns = list(reader.fieldnames or [])
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{what}: {path} cannot be read as a CSV table ({type(exc).__name__})") from None
    arch_column = next((c for c in ARCH_COLUMNS if c in columns), None)
    if arch_column is None:
        raise ValueError(f"{what}: {path} has no arch column in its header line (expected one of {list(ARCH_COLUMNS)})")
    return columns, rows


class TabularNB201Evaluator(Evaluator):
    """Looks archs up in benchmark tables.

    Args:
        accuracy_csv: CSV with an arch-string column and per-dataset accuracy columns, in percent
            (NAS-Bench-201's own) or as fractions; reported as a fraction either way.
        dataset: ``cifar10``, ``cifar100`` or ``imagenet16-120`` (or a column name).
        latency_csv: Optional CSV with an arch-string column and one column per device (ms).
        devices: Devices to report (default: every device column of ``latency_csv``).
    """

    def __init__(
        self,
        accuracy_csv: str | Path,
        dataset: str = "cifar10",
        latency_csv: str | Path | None = None,
        devices: Sequence[str] | None = None,
        space: SearchSpace | None = None,
    ) -> None:
        self.space: Any = space if space is not None else create_space("nb201")
        columns, rows = _read(accuracy_csv, "accuracy_csv")
        column = ACCURACY_COLUMNS.get(dataset, dataset)
        if column not in columns:
            raise ValueError(
                f"dataset: {accuracy_csv} has no column {short_repr(column)}; datasets: {sorted(ACCURACY_COLUMNS)} "
                "(or a column of the file's header line)"
            )
        self.accuracy = self._table(accuracy_csv, columns, rows, [column])
        # accuracy is a fraction everywhere in this project: NAS-Bench-201's tables give percent
        values = [row[column] for row in self.accuracy.values()]
        self.accuracy_scale = 0.01 if max(values) > 1.0 else 1.0
        if min(values) < 0 or max(values) * self.accuracy_scale > 1.0:
            raise ValueError(f"{accuracy_csv}: column {column} is neither a fraction nor a percentage")
        self.devices: tuple[str, ...] = ()
        self.latency: dict[str, dict[str, float]] = {}
        if latency_csv is not None:
            lat_columns, lat_rows = _read(latency_csv, "latency_csv")
            available = [c for c in lat_columns if c not in NON_DEVICE_COLUMNS]
            wanted = list(devices) if devices is not None else available
            unknown = [d for d in wanted if d not in available]
            if unknown:
                shown = ", ".join(short_repr(d) for d in unknown[:5])
                raise ValueError(f"devices: {shown} not columns of {latency_csv} (its header line lists the devices)")
            self.devices = tuple(wanted)
            self.latency = self._table(latency_csv, lat_columns, lat_rows, wanted)
        elif devices:
            raise ValueError("devices: given without latency_csv")
        self._accuracy_column = column

    def _table(
        self, path: str | Path, columns: list[str], rows: list[dict[str, str]], wanted: list[str]
    ) -> dict[str, dict[str, float]]:
        arch_column = next(c for c in ARCH_COLUMNS if c in columns)
        table: dict[str, dict[str, float]] = {}
        for line, row in enumerate(rows, start=2):
            try:
                arch = self.space.from_string(row[arch_column])
            except (ValueError, TypeError, KeyError):
                raise ValueError(f"{path}, line {line}: column {arch_column} is not an NB201 arch string") from None
            for c in wanted:
                try:
                    value = float(row[c])
                except (ValueError, TypeError, KeyError):
                    raise ValueError(f"{path}, line {line}: column {short_repr(c)} is not a number") from None
                table.setdefault(arch.arch_id, {})[c] = value
        if len(table) != NUM_ARCHS:
            raise ValueError(f"{path}: holds {len(table)} distinct archs, expected {NUM_ARCHS}")
        return table

    @property
    def metrics(self) -> tuple[str, ...]:
        return ("accuracy", *(f"latency_ms@{d}" for d in self.devices))

    def evaluate(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        out = []
        for arch in archs:
            arch = self.space.make(arch)
            result = {"accuracy": self.accuracy[arch.arch_id][self._accuracy_column] * self.accuracy_scale}
            if self.devices:
                row = self.latency[arch.arch_id]
                result.update({f"latency_ms@{d}": row[d] for d in self.devices})
            out.append(result)
        return out
