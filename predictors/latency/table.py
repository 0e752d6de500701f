"""The latency table: measured op entries of one (space, device, dtype, batch), its lookup and correction."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.core.arch import Arch
from nas.core.io import read_json
from nas.core.space import SearchSpace
from predictors.latency.backends import backend_names, latency_backend
from predictors.latency.ops import FORMAT_VERSION, signature

LayerTimer = Callable[[Mapping[str, Any]], Mapping[str, float]]
ArchTimer = Callable[[Arch], Mapping[str, float]]


# ------------------------------------------------------------------ the table
@dataclass
class LatencyTable:
    space_id: str
    device: str
    dtype: str
    batch: int
    entries: dict[str, dict[str, float]]
    environment: dict[str, Any] = field(default_factory=dict)
    correction: dict[str, Any] | None = None
    source: str = "torch-eager"

    @property
    def backend(self) -> str:
        """The runtime the entries were measured on, for end-to-end measurements to match."""
        by_source = {latency_backend(name).source: name for name in backend_names()}
        return by_source.get(self.source, "torch")

    def _layers(self, space: SearchSpace, arch: Arch | Mapping[str, Any]) -> list[dict[str, Any]]:
        if space.space_id != self.space_id:
            raise ValueError(f"latency table is for space {self.space_id}, not {space.space_id}")
        return space.static_config(space.make(arch))

    def lookup(self, space: SearchSpace, arch: Arch | Mapping[str, Any]) -> float:
        """Sum of the table entries over the arch's layers (ms)."""
        total = 0.0
        for layer in self._layers(space, arch):
            entry = self.entries.get(signature(layer))
            if entry is None:
                raise KeyError(
                    f"op {signature(layer)} is not in the table; rebuild it with `nas latency build` for this space"
                )
            total += entry["mean_ms"]
        return total

    def features(self, space: SearchSpace, arch: Arch | Mapping[str, Any]) -> list[float]:
        """Inputs of the correction: table sum, number of MBConv blocks (the other layers are fixed), 1."""
        layers = self._layers(space, arch)
        return [self.lookup(space, arch), float(sum(ly["op"] == "mbconv" for ly in layers)), 1.0]

    def predict(self, space: SearchSpace, arch: Arch | Mapping[str, Any]) -> float:
        """Corrected latency (ms) when the table has a correction, else the plain sum."""
        if not self.correction:
            return self.lookup(space, arch)
        return float(np.dot(self.correction["coef"], self.features(space, arch)))

    def fit_correction(self, space: SearchSpace, archs: Sequence[Arch], measured: Sequence[float]) -> None:
        """Least-squares correction of the sums on relative error (ridge-regularised).

        With fewer than 6 calibration archs (two per coefficient), or when the linear correction
        would predict a non-positive latency for a calibration arch or the space's smallest or
        largest arch, the correction is a single scale factor of the sum instead.
        """
        x = np.array([self.features(space, a) for a in archs])
        y = np.asarray(measured, dtype=float)
        w = 1.0 / y  # weight rows by 1/latency: minimises relative, not absolute, error
        xw, yw = x * w[:, None], y * w
        kind = "scale"
        coef = np.array([float(np.median(y / x[:, 0])), 0.0, 0.0])
        if len(archs) >= 2 * x.shape[1]:
            alpha = 1e-10 * np.trace(xw.T @ xw) / x.shape[1]
            linear = np.linalg.solve(xw.T @ xw + alpha * np.eye(x.shape[1]), xw.T @ yw)
            corners = np.array([self.features(space, a) for a in (space.min_arch(), space.max_arch())])
            if np.all(np.concatenate([x, corners]) @ linear > 0):
                kind, coef = "linear", linear
        self.correction = {
            "kind": kind,
            "features": ["table_sum_ms", "mbconv_blocks", "bias"],
            "coef": coef.tolist(),
            "calibration_archs": len(archs),
        }

    # -------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "space_id": self.space_id,
            "device": self.device,
            "dtype": self.dtype,
            "batch": self.batch,
            "source": self.source,
            "environment": self.environment,
            "correction": self.correction,
            "entries": self.entries,
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        tmp.replace(path)
        return path

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        space_id: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        batch: int | None = None,
        backend: str | None = None,
    ) -> LatencyTable:
        """Reads a table; refuses one built for another space, device, dtype, batch size or backend."""
        data = read_json(path, "a latency table", "build one with `nas latency build`")
        if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
            raise ValueError(
                f"{path}: not a latency table of format {FORMAT_VERSION} (build one with `nas latency build`)"
            )
        missing = sorted({"space_id", "device", "dtype", "batch", "entries"} - set(data))
        if missing:
            raise ValueError(f"{path}: not a complete latency table (no {', '.join(missing)})")
        wanted = {"space_id": space_id, "device": device, "dtype": dtype, "batch": batch}
        for key, value in wanted.items():
            if value is not None and data[key] != value:
                raise ValueError(
                    f"{path}: table built for {key} {data[key]!r}, not {value!r}; build one with "
                    f"`nas latency build` for this {key.replace('_id', '')}"
                )
        table = cls(
            data["space_id"], data["device"], data["dtype"], int(data["batch"]), data["entries"],
            data.get("environment", {}), data.get("correction"), data.get("source", "torch-eager"),
        )  # fmt: skip
        if backend is not None and table.backend != backend:
            raise ValueError(
                f"{path}: table measured on the {table.backend} backend ({table.source}), not {backend}; "
                f"build one with `nas latency build --backend {backend}`"
            )
        return table
