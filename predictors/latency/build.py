"""Building a table (every op, a few whole subnets for the correction) and validating it end to end."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from nas.core.precision import FLOAT
from nas.core.space import SearchSpace, space_record
from predictors.latency import backends, provenance
from predictors.latency.backends import check_backend, default_backend, latency_backend, measure_layer
from predictors.latency.ops import _torch_dtype, op_signatures
from predictors.latency.table import ArchTimer, LatencyTable, LayerTimer
from predictors.latency.timers import _in_rounds

logger = logging.getLogger(__name__)


def build_table(
    space: SearchSpace,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    batch: int = 1,
    calibration_archs: int = 20,
    seed: int = 0,
    layer_timer: LayerTimer | None = None,
    arch_timer: ArchTimer | None = None,
    backend: str | None = None,
    rounds: int = 1,
    progress: bool = True,
    launch_ms: float | None = None,
    place: str = "local",
    judge: bool = True,
) -> LatencyTable:
    """Measures every op signature of the space, then fits the correction on random subnets.

    ``backend``: ``torch`` (eager, the CPU default), ``triton`` (our kernels, the CUDA default)
    or ``onnxruntime`` (CPU, float32: each op exported to ONNX and run by ONNX Runtime).
    ``rounds``: every op (and calibration subnet) is timed once per round, all of them
    round after round, and the median kept: a shared machine's speed drifts over minutes,
    and spreading each measurement over the whole build keeps the drift out of the ratios
    between entries.
    ``launch_ms``: the host's cost per kernel launch for the launch-bound model; ``None``:
    measured when the backend is launch-bound on ``device`` (torch eager on CUDA), else unused.
    A table with a launch cost replays the launch queue (:mod:`predictors.latency.stream`).
    The table's ``provenance`` records the machine, the load other processes put on it while it
    measured, the noise of a reference workload and of the ops between rounds, and the verdict
    (:mod:`predictors.latency.provenance`); ``place`` says where it was measured. ``judge=False``
    leaves the verdict out (the table counts as reliable) for timers that do not read this
    machine's clock: stand-in tables of tests and examples, replays of recorded timings.
    """
    from kernels.bench import environment
    from predictors.latency.stream import launch_cost_ms

    if batch < 1:
        raise ValueError(f"batch: must be >= 1, got {batch}")
    _torch_dtype(dtype)
    backend = backend or default_backend(device)
    check_backend(backend, device, dtype)
    signatures = op_signatures(space)
    if layer_timer is None:  # the runtime times every op: it has to run each op's precision
        latency_backend(backend).check_precisions(backend, {op.get("precision", FLOAT) for op in signatures.values()})
    layer_timer = layer_timer or (lambda layer: measure_layer(layer, batch, device, dtype, backend, rounds))
    arch_timer = arch_timer or (lambda arch: backends.measure_arch(space, arch, batch, device, dtype, backend, rounds))
    started = time.time()
    probe_before = provenance.noise_probe()
    runtime = latency_backend(backend)
    with provenance.LoadMonitor() as monitor:
        timings = _in_rounds(list(signatures.values()), layer_timer, rounds, "op latency", progress)
        entries = dict(zip(signatures, timings))
        if launch_ms is None and runtime.launch_bound(device):
            launch_ms = launch_cost_ms(device)
            logger.info("launch cost on %s: %.4f ms per kernel", device, launch_ms)
        table = LatencyTable(
            space.space_id, device, dtype, batch, entries, environment(device), source=runtime.source,
            launch_ms=launch_ms, space=space_record(space),
        )  # fmt: skip
        if calibration_archs > 0:
            archs = space.sample_unique(calibration_archs, np.random.default_rng([seed, 1]))
            measured = [t["mean_ms"] for t in _in_rounds(archs, arch_timer, rounds, "calibration", progress)]
            table.fit_correction(space, archs, measured)
    record: dict[str, Any] = {
        "place": place,
        "machine": provenance.machine(),
        "started_at": started,
        "finished_at": time.time(),
        "rounds": rounds,
        "load": monitor.result,
        "noise": {**provenance.summarise_probes(probe_before, provenance.noise_probe()),
                  "op_spread": provenance.op_spread(entries)},
    }  # fmt: skip
    reliable, reasons = provenance.verdict(record) if judge else (True, [])
    record["judged"] = judge
    table.provenance = {**record, "reliable": reliable, "reasons": reasons, "warnings": provenance.warnings(record)}
    if not reliable:
        logger.warning("latency table %s on %s is unreliable: %s", space.space_id, device, "; ".join(reasons))
    return table


def latency_metrics(predicted: Sequence[float], measured: Sequence[float], tolerance: float = 0.10) -> dict[str, float]:
    """Share within ``tolerance`` of measured, Spearman rho and mean absolute percentage error."""
    from scipy.stats import spearmanr

    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    rel = np.abs(p - m) / m
    return {
        "within_10pct": float(np.mean(rel <= tolerance)),
        "spearman": float(spearmanr(p, m).statistic) if len(p) > 2 else math.nan,
        "mape": float(np.mean(rel) * 100),
        "max_rel_error": float(rel.max()),
    }


def validate_table(
    table: LatencyTable,
    space: SearchSpace,
    num_archs: int = 100,
    *,
    seed: int = 1,
    arch_timer: ArchTimer | None = None,
    rounds: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Measures random subnets end to end and compares them with the table (plain and corrected).

    ``rounds`` as in :func:`build_table`. The report lists every subnet's measured and
    predicted latency (``per_arch``).
    """
    if space.space_id != table.space_id:
        raise ValueError(f"latency table is for space {table.space_id}, not {space.space_id}")
    backend = table.backend
    arch_timer = arch_timer or (
        lambda arch: backends.measure_arch(space, arch, table.batch, table.device, table.dtype, backend, rounds)
    )
    archs = space.sample_unique(num_archs, np.random.default_rng([seed, 2]))
    timings = _in_rounds(archs, arch_timer, rounds, "validate", progress)
    measured = [t["mean_ms"] for t in timings]
    out: dict[str, Any] = {
        "space_id": table.space_id, "device": table.device, "dtype": table.dtype, "batch": table.batch,
        "archs": len(archs), "table_sum": latency_metrics([table.lookup(space, a) for a in archs], measured),
    }  # fmt: skip
    if table.correction:
        out["corrected"] = latency_metrics([table.predict(space, a) for a in archs], measured)
    out["calibration_curve"] = calibration_curve(table, space, archs, measured)
    out["measured_ms"] = {"min": float(min(measured)), "max": float(max(measured))}
    out["rounds"] = rounds
    out["per_arch"] = [
        {
            "arch": a.to_dict(),
            "measured_ms": t["mean_ms"],
            "rounds_std_ms": t.get("std_ms"),
            "table_sum_ms": table.lookup(space, a),
            "predicted_ms": table.predict(space, a),
        }
        for a, t in zip(archs, timings)
    ]
    return out


def calibration_curve(
    table: LatencyTable, space: SearchSpace, archs: Sequence[Any], measured: Sequence[float],
    sizes: Sequence[int] = (3, 5, 10, 20, 40),
) -> dict[str, Any]:  # fmt: skip
    """How many measured subnets the correction needs: refitted on the first ``k`` of the
    validation subnets and scored on the rest, for each ``k`` that leaves at least 10 to score.
    ``needed``: the smallest ``k`` within 2 points (share within ±10%) of the largest ``k``'s.
    The table itself is left as it was."""
    import copy

    points: dict[str, dict[str, Any]] = {}
    for k in sizes:
        if len(archs) - k < 10:
            break
        trial = copy.copy(table)
        trial.fit_correction(space, list(archs[:k]), list(measured[:k]))
        predicted = [trial.predict(space, a) for a in archs[k:]]
        points[str(k)] = {**latency_metrics(predicted, measured[k:]), "kind": (trial.correction or {}).get("kind")}
    needed = None
    if points:
        best = points[list(points)[-1]]["within_10pct"]
        needed = next(int(k) for k, p in points.items() if p["within_10pct"] >= best - 0.02)
    return {"points": points, "needed": needed}
