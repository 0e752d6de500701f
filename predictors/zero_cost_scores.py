"""Zero-cost scores computed once per arch, read back as cheap metrics.

A score file holds per-arch proxy values: the JSON lines ``nas proxy score --out`` writes
(``{"arch": ..., "scores": {"meco": ..., ...}}``, resumable) or a CSV with an ``arch`` column
(the space's notation or JSON; NB201's ``arch_str`` also works) and one column per proxy;
either may be gzip-compressed (``.jsonl.gz``, ``.csv.gz``).
Evaluators offer each proxy as the cheap metric ``zc_<proxy>``, so the predictor-in-the-loop
searcher can use them as surrogate features and rank archs by them before the first real
evaluation (``proxy_features``, ``warm_start``).

:class:`ProxyScoreCache` is the write-through form for scores computed during a search
(a supernet's subnets): each arch is scored once and appended to its file, which a later job
or a resumed one reads back.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nas.core import registry
from nas.core.arch import Arch
from nas.core.space import SearchSpace

logger = logging.getLogger(__name__)

PREFIX = "zc_"
# Columns of a score CSV that are not proxies.
NOT_PROXIES = {"arch", "arch_str", "ArchitectureString", "index", "arch_id", "accuracy", "seconds"}


def proxy_metric(proxy: str) -> str:
    """The metric name under which evaluators offer a proxy's score (``zc_meco``)."""
    return proxy if proxy.startswith(PREFIX) else PREFIX + proxy


class ScoreFile:
    """Per-arch proxy scores read from a file (every arch of a record must parse in ``space``).

    Args:
        path: JSON lines or CSV (see the module).
        space: The archs' space.
        proxies: The proxies to keep (default: every one in the file).

    Raises:
        ValueError: naming the file and line that is wrong (never quoting its content).
    """

    def __init__(self, path: str | Path, space: SearchSpace, proxies: Sequence[str] | None = None) -> None:
        from predictors.learned import arch_of_row

        self.path = Path(path)
        self.space = space
        if not self.path.is_file():
            raise ValueError(f"zero-cost scores: file {self.path} not found")
        scores: dict[str, dict[str, float]] = {}
        names: list[str] = []
        keys = set(space.arch_keys())
        for where, row in self._rows():
            try:
                arch = arch_of_row(space, row, keys)
            except (ValueError, TypeError, KeyError, json.JSONDecodeError):
                raise ValueError(f"{where}: no valid {space.space_id} arch in the row") from None
            values = row["scores"] if isinstance(row.get("scores"), dict) else row
            kept = {}
            for position, (name, value) in enumerate(values.items(), start=1):
                if name in NOT_PROXIES or name == "scores" or (values is row and name in keys):
                    continue
                try:
                    kept[str(name)] = float(value)
                except (TypeError, ValueError):  # the file's own text (names, values) is never quoted
                    field = "column" if values is row else "score"
                    raise ValueError(f"{where}: {field} {position} is not a number") from None
            for name in kept:
                if name not in names:
                    names.append(name)
            scores.setdefault(arch.arch_id, {}).update(kept)
        if not scores:
            raise ValueError(f"zero-cost scores: {self.path} holds no rows")
        wanted = list(proxies) if proxies is not None else names
        missing = [p for p in wanted if p not in names]
        if missing:
            known = set(registry.names("proxy"))
            has = [n for n in names if n in known]  # only registered proxy names: never the file's other text
            raise ValueError(
                f"zero-cost scores: {self.path} has no scores for {missing}; it has {has or 'no known proxy'}. "
                "Score them with `nas proxy score --proxies ... --out FILE`"
            )
        self.proxies: tuple[str, ...] = tuple(wanted)
        self._scores = scores
        logger.info("zero-cost scores: %d archs x %s from %s", len(scores), list(self.proxies), self.path)

    def _open(self) -> Any:
        if self.path.suffix.lower() == ".gz":
            return gzip.open(self.path, "rt", newline="")
        return self.path.open(newline="")

    def _rows(self) -> Any:
        try:
            yield from self._parse()
        except (OSError, EOFError, UnicodeDecodeError, csv.Error):  # csv.Error: NUL bytes, a field over 128 KiB
            raise ValueError(
                f"{self.path}: not a readable score file (JSON lines or CSV, gzip-compressed or not)"
            ) from None

    def _parse(self) -> Any:
        if self.path.name.lower().removesuffix(".gz").endswith(".csv"):
            with self._open() as fh:
                for line, row in enumerate(csv.DictReader(fh), start=2):
                    yield f"{self.path}, line {line}", row
            return
        with self._open() as fh:
            for line, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError:
                    raise ValueError(f"{self.path}, line {line}: invalid JSON") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{self.path}, line {line}: expected a JSON object")
                yield f"{self.path}, line {line}", row

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(proxy_metric(p) for p in self.proxies)

    def __len__(self) -> int:
        return len(self._scores)

    def lookup(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        """``zc_<proxy>`` per arch; NaN where the file has no score for it."""
        out = []
        for arch in archs:
            found = self._scores.get(self.space.make(arch).arch_id, {})
            out.append({proxy_metric(p): float(found.get(p, math.nan)) for p in self.proxies})
        return out


class ProxyScoreCache:
    """Scores computed on demand by ``score(arch) -> {proxy: value}``, each arch once, kept in memory and
    appended to ``path`` (JSON lines, the :class:`ScoreFile` format) when one is given."""

    def __init__(
        self,
        space: SearchSpace,
        proxies: Sequence[str],
        score: Callable[[Arch], dict[str, float]],
        path: str | Path | None = None,
    ) -> None:
        self.space, self.proxies, self._score = space, tuple(proxies), score
        self.path = Path(path) if path is not None else None
        self._scores: dict[str, dict[str, float]] = {}
        if self.path is not None and self.path.is_file():
            known = ScoreFile(self.path, space)
            self._scores = {
                arch_id: values for arch_id, values in known._scores.items() if set(self.proxies) <= set(values)
            }

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(proxy_metric(p) for p in self.proxies)

    def lookup(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        out = []
        for arch in archs:
            arch = self.space.make(arch)
            values = self._scores.get(arch.arch_id)
            if values is None:
                values = {p: float(v) for p, v in self._score(arch).items() if p in self.proxies}
                self._scores[arch.arch_id] = values
                if self.path is not None:
                    record = {"arch": arch.to_dict(), "arch_id": arch.arch_id,
                              "scores": {p: v if math.isfinite(v) else str(v) for p, v in values.items()}}  # fmt: skip
                    with self.path.open("a") as fh:
                        fh.write(json.dumps(record) + "\n")
            out.append({proxy_metric(p): float(values.get(p, math.nan)) for p in self.proxies})
        return out
