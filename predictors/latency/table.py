"""The latency table: measured op entries of one (space, device, dtype, batch), its lookup and correction."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.core.arch import Arch
from nas.core.io import read_json
from nas.core.precision import FLOAT
from nas.core.space import SearchSpace
from predictors.latency.backends import backend_names, latency_backend
from predictors.latency.ops import FORMAT_VERSION, signature

LayerTimer = Callable[[Mapping[str, Any]], Mapping[str, float]]
ArchTimer = Callable[[Arch], Mapping[str, float]]


# ------------------------------------------------------------------ the table
@dataclass
class LatencyTable:
    """Per-op latencies of a space on one device, dtype, batch and runtime (see the module docstring)."""

    space_id: str
    device: str
    dtype: str
    batch: int
    entries: dict[str, dict[str, float]]
    environment: dict[str, Any] = field(default_factory=dict)
    correction: dict[str, Any] | None = None
    source: str = "torch-eager"
    # host time per kernel launch (ms) for a launch-bound runtime; None: entries simply add up
    launch_ms: float | None = None
    # the space's registered name and full configuration, so a customised space can be rebuilt from
    # the table alone (``nas latency validate``); None in tables built before it was recorded
    space: dict[str, Any] | None = None
    # where and in what state it was measured, and the verdict (predictors.latency.provenance);
    # None in tables built before it was recorded
    provenance: dict[str, Any] | None = None
    # the device record it was measured for (nas devices), which names its metric latency_ms@NAME;
    # None for a table of this machine's cpu / cuda
    device_name: str | None = None

    @property
    def metric_device(self) -> str:
        """What follows ``latency_ms@`` in the metric its predictions fill."""
        return self.device_name or self.device

    @property
    def reliable(self) -> bool:
        """False when its build found the machine too loaded or noisy (see ``provenance["reasons"]``);
        a table without provenance (built before it was recorded) counts as reliable."""
        return bool((self.provenance or {}).get("reliable", True))

    @property
    def usable(self) -> bool:
        """Whether a job may use it: reliable, or kept knowingly (``--accept-unreliable``)."""
        return self.reliable or bool((self.provenance or {}).get("accepted"))

    @property
    def reasons(self) -> str:
        """Why its build marked it unreliable, as one line."""
        return "; ".join((self.provenance or {}).get("reasons") or ["no reason recorded"])

    @property
    def backend(self) -> str:
        """The runtime the entries were measured on, for end-to-end measurements to match."""
        by_source = {latency_backend(name).source: name for name in backend_names()}
        return by_source.get(self.source, "torch")

    def _layers(self, space: SearchSpace, arch: Arch | Mapping[str, Any]) -> list[dict[str, Any]]:
        if space.space_id != self.space_id:
            raise ValueError(f"latency table is for space {self.space_id}, not {space.space_id}")
        return space.static_config(space.make(arch))

    def _entries(self, space: SearchSpace, arch: Arch | Mapping[str, Any]) -> list[dict[str, float]]:
        out = []
        for layer in self._layers(space, arch):
            entry = self.entries.get(signature(layer))
            if entry is None:
                raise KeyError(
                    f"op {signature(layer)} is not in the table; rebuild it with `nas latency build` for this space"
                )
            out.append(entry)
        return out

    def lookup(self, space: SearchSpace, arch: Arch | Mapping[str, Any]) -> float:
        """The arch's latency from its ops' entries (ms): their sum, or for a launch-bound runtime
        (``launch_ms`` set) the launch queue replayed over their GPU times and kernel counts."""
        entries = self._entries(space, arch)
        if self.launch_ms is None:
            return float(sum(e["mean_ms"] for e in entries))
        from predictors.latency.stream import stream_latency

        return stream_latency(
            [e.get("gpu_ms", e["mean_ms"]) for e in entries], [int(e.get("kernels", 1)) for e in entries],
            self.launch_ms,
        )  # fmt: skip

    def kernels(self, space: SearchSpace, arch: Arch | Mapping[str, Any]) -> int:
        """Kernels the arch launches in eager mode (entries without a count count as one)."""
        return int(sum(e.get("kernels", 1) for e in self._entries(space, arch)))

    # the correction's feature sets, tried in turn by leave-one-out cross-validation on the
    # calibration subnets; each needs two subnets per coefficient
    CORRECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("linear", ("table_sum_ms", "layers", "bias")),
        ("physics", ("table_sum_ms", "macs_m", "kernels", "bias")),
    )
    # tried too for a space with precision genes: each switch between float and int8 layers is a
    # (de)quantization the isolated ops did not time, and consecutive int8 layers share one
    PRECISION_CORRECTION: tuple[str, tuple[str, ...]] = (
        "precision",
        ("table_sum_ms", "layers", "precision_switches", "bias"),
    )

    def features(
        self, space: SearchSpace, arch: Arch | Mapping[str, Any], names: Sequence[str] | None = None
    ) -> list[float]:
        """Inputs of the correction (default: those of the fitted one, else the ``linear`` set):
        ``table_sum_ms`` (what :meth:`lookup` gives), ``layers`` (static-config layers: in every
        family the elastic ones plus a fixed count), ``macs_m`` (millions), ``kernels`` (eager
        launches), ``mbconv_blocks`` (what tables fitted before ``layers`` use),
        ``precision_switches`` (adjacent layers of different precision), ``bias``."""
        if names is None:
            names = (self.correction or {}).get("features") or self.CORRECTIONS[0][1]
        layers = self._layers(space, arch)
        values: dict[str, Callable[[], float]] = {
            "table_sum_ms": lambda: self.lookup(space, arch),
            "mbconv_blocks": lambda: float(sum(ly["op"] == "mbconv" for ly in layers)),
            "macs_m": lambda: _macs_m(layers),
            "kernels": lambda: float(self.kernels(space, arch)),
            "layers": lambda: float(len(layers)),
            "precision_switches": lambda: float(_switches(layers)),
            "bias": lambda: 1.0,
        }
        unknown = [n for n in names if n not in values]
        if unknown:
            raise ValueError(f"latency table correction: unknown features {unknown}; rebuild the table")
        return [values[n]() for n in names]

    def predict(self, space: SearchSpace, arch: Arch | Mapping[str, Any]) -> float:
        """Corrected latency (ms) when the table has a correction, else the plain sum."""
        if not self.correction:
            return self.lookup(space, arch)
        return float(np.dot(self.correction["coef"], self.features(space, arch)))

    def fit_correction(self, space: SearchSpace, archs: Sequence[Arch], measured: Sequence[float]) -> None:
        """Few-shot correction of the lookup from subnets measured end to end.

        Candidates: a scale factor of the sum; ``linear`` (sum, layers, bias) and
        ``physics`` (sum, MACs, kernel launches, bias), each least squares on relative error,
        kept only with two calibration subnets per coefficient and when it predicts a positive
        latency for every calibration subnet and the space's smallest and largest arch. The
        candidate with the lowest leave-one-out median relative error wins (the scale factor
        when nothing else qualifies). ``loo_median_rel_error`` records each candidate's score.
        """
        y = np.asarray(measured, dtype=float)
        corners = (space.min_arch(), space.max_arch())
        candidates: dict[str, tuple[tuple[str, ...], np.ndarray, np.ndarray]] = {}
        sums = np.array([[self.lookup(space, a)] for a in archs])
        candidates["scale"] = (("table_sum_ms",), sums, np.array([[self.lookup(space, a)] for a in corners]))
        corrections = list(self.CORRECTIONS)
        if len(getattr(space, "precision_choices", ())) > 1:
            corrections.append(self.PRECISION_CORRECTION)
        for kind, names in corrections:
            if len(archs) >= 2 * len(names):
                x = np.array([self.features(space, a, names) for a in archs])
                candidates[kind] = (names, x, np.array([self.features(space, a, names) for a in corners]))
        scores: dict[str, float] = {}
        coefs: dict[str, np.ndarray] = {}
        for kind, (_, x, corner_x) in candidates.items():
            coef = _relative_lstsq(x, y, kind)
            if kind != "scale" and not np.all(np.concatenate([x, corner_x]) @ coef > 0):
                continue
            coefs[kind] = coef
            if len(y) >= 3:
                errors = [
                    abs(float(x[i] @ _relative_lstsq(np.delete(x, i, 0), np.delete(y, i), kind)) - y[i]) / y[i]
                    for i in range(len(y))
                ]
                scores[kind] = float(np.median(errors))
        kind = min(scores, key=lambda k: scores[k]) if scores else "scale"
        self.correction = {
            "kind": kind,
            "features": list(candidates[kind][0]),
            "coef": coefs[kind].tolist(),
            "calibration_archs": len(archs),
            "loo_median_rel_error": scores,
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
            "launch_ms": self.launch_ms,
            "space": self.space,
            "provenance": self.provenance,
            "device_name": self.device_name,
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
    def from_dict(cls, data: Any, where: str = "latency table") -> LatencyTable:
        """A table from :meth:`to_dict`'s form (a file, a store row, a remote build's answer)."""
        if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
            raise ValueError(
                f"{where}: not a latency table of format {FORMAT_VERSION} (build one with `nas latency build`)"
            )
        missing = sorted({"space_id", "device", "dtype", "batch", "entries"} - set(data))
        if missing:
            raise ValueError(f"{where}: not a complete latency table (no {', '.join(missing)})")
        return cls(
            data["space_id"], data["device"], data["dtype"], int(data["batch"]), data["entries"],
            data.get("environment", {}), data.get("correction"), data.get("source", "torch-eager"),
            data.get("launch_ms"), data.get("space") if isinstance(data.get("space"), dict) else None,
            data.get("provenance") if isinstance(data.get("provenance"), dict) else None,
            data.get("device_name") if isinstance(data.get("device_name"), str) else None,
        )  # fmt: skip

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
        table = cls.from_dict(data, str(path))
        wanted = {"space_id": space_id, "device": device, "dtype": dtype, "batch": batch}
        for key, value in wanted.items():
            if value is not None and getattr(table, key) != value:
                raise ValueError(
                    f"{path}: table built for {key} {getattr(table, key)!r}, not {value!r}; build one with "
                    f"`nas latency build` for this {key.replace('_id', '')}"
                )
        if backend is not None and table.backend != backend:
            raise ValueError(
                f"{path}: table measured on the {table.backend} backend ({table.source}), not {backend}; "
                f"build one with `nas latency build --backend {backend}`"
            )
        return table


def _macs_m(layers: Sequence[Mapping[str, Any]]) -> float:
    from predictors.flops import count_cost

    return count_cost(layers).macs / 1e6


def _switches(layers: Sequence[Mapping[str, Any]]) -> int:
    precisions = [layer.get("precision", FLOAT) for layer in layers]
    return sum(a != b for a, b in itertools.pairwise(precisions))


def _relative_lstsq(x: np.ndarray, y: np.ndarray, kind: str) -> np.ndarray:
    """Coefficients minimising the squared relative error (rows weighted by 1/latency); a
    median ratio for the one-column scale."""
    if kind == "scale":
        return np.array([float(np.median(y / x[:, 0]))])
    w = 1.0 / y
    xw, yw = x * w[:, None], y * w
    alpha = 1e-10 * np.trace(xw.T @ xw) / x.shape[1]
    return np.asarray(np.linalg.solve(xw.T @ xw + alpha * np.eye(x.shape[1]), xw.T @ yw))
