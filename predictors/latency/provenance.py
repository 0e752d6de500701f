"""Where and in what state a latency table was measured, and whether its numbers can be trusted.

A table measured while another process used the CPU is silently wrong (the cifar preset's CPU
table: 96-100% of subnets within ±10% when built on an idle machine, 28% when built beside
another job). A build therefore records the machine (host, CPU model, cores, clock governor,
library versions, threads), watches the CPU time other processes take while it measures
(:class:`LoadMonitor`, from ``/proc/stat`` against this process's own time), times a fixed
reference workload at its start and end (:func:`noise_probe`: the machine's own noise and drift)
and reads the spread between rounds of every op. :func:`verdict` turns these into ``reliable``
and the reasons it is not, each with what to do about it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Above these a table's errors can hide the ±10% it is validated against. Half a core of other
# work is a competing job (a browser, a compile, a second build), not the background of an idle
# machine; a spread of the ops between rounds of 10% is the whole tolerance. The reference
# workload is a coarser signal (15 samples at each end of the build; on an idle 2-core VM here
# its spread was 2-30% from minute to minute), so only a machine far off steady trips it.
MAX_OTHER_CORES = 0.5  # average CPU cores other processes used during the build
MAX_PROBE_SPREAD = 0.25  # relative spread (IQR / median) of the reference workload's timings
MAX_PROBE_DRIFT = 0.25  # relative change of the reference workload between the build's start and end
MAX_OP_SPREAD = 0.10  # median over ops of the spread between rounds (std / mean)
HINTS = {
    "load": "run the build on an idle machine (stop other jobs; `top` shows what runs)",
    "noise": "pin the build's threads (--threads N, `taskset -c 0-N`), use more --rounds, or a quieter machine",
    "governor": "set the performance governor (`sudo cpupower frequency-set -g performance`)",
}


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def machine() -> dict[str, Any]:
    """The measuring machine: what every measurement records (:func:`kernels.bench.environment`:
    platform, CPU model, cores, torch and its threads) and the host, clock governors, load
    average and the other runtimes' versions."""
    import numpy

    from kernels.bench import environment

    info = {k: v for k, v in environment("host").items() if k != "device"}
    info.update(host=socket.gethostname(), numpy=numpy.__version__)
    governors = sorted(
        {g for p in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_governor") if (g := _read(str(p)))}
    )
    info["governor"] = governors or None  # None: not exposed (a VM, a container, macOS)
    if hasattr(os, "getloadavg"):
        info["loadavg"] = list(os.getloadavg())
    for name in ("onnxruntime", "triton"):
        try:
            module = __import__(name)
            info[name] = getattr(module, "__version__", "?")
        except ImportError:
            continue
    return info


def _cpu_seconds() -> tuple[float, float, float] | None:
    """(wall, CPU seconds the whole machine was busy, CPU seconds of this process and its waited
    children) or None where ``/proc`` is not there."""
    stat = _read("/proc/stat")
    own = _read("/proc/self/stat")
    if stat is None or own is None:
        return None
    fields = [float(v) for v in stat.splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    busy = (sum(fields[:8]) - idle) / tick  # user..steal; guest time is inside user already
    mine = own.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    own_s = sum(float(v) for v in mine[11:15]) / tick  # utime, stime, cutime, cstime
    return time.monotonic(), busy, own_s


@dataclass
class LoadMonitor:
    """CPU time other processes took while a build measured (``with LoadMonitor() as m: ...``)."""

    start: tuple[float, float, float] | None = None
    result: dict[str, float] | None = None

    def __enter__(self) -> LoadMonitor:
        self.start = _cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        end = _cpu_seconds()
        if self.start is None or end is None:
            return
        wall = max(end[0] - self.start[0], 1e-9)
        total, own = end[1] - self.start[1], end[2] - self.start[2]
        self.result = {
            "wall_s": wall,
            "own_cores": own / wall,
            "other_cores": max(0.0, total - own) / wall,
        }


@dataclass
class _Reference:
    """A fixed, single-threaded CPU workload: sorting the same million numbers in place (no
    allocation, no BLAS threads, so its time is the core's speed and not a thread pool's)."""

    data: np.ndarray
    buffer: np.ndarray

    @classmethod
    def make(cls) -> _Reference:
        data = np.random.default_rng(0).standard_normal(1_000_000)
        return cls(data, np.empty_like(data))

    def __call__(self) -> float:
        """Milliseconds of one run."""
        started = time.perf_counter()
        self.buffer[:] = self.data
        self.buffer.sort()
        return (time.perf_counter() - started) * 1000.0


def noise_probe(samples: int = 15) -> list[float]:
    """Timings (ms) of the reference workload, ``samples`` times back to back (after a warm-up)."""
    run = _Reference.make()
    run()
    return [run() for _ in range(samples)]


def spread(values: Sequence[float]) -> float:
    """Interquartile range over the median: robust relative spread of repeated timings."""
    q1, median, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float((q3 - q1) / median) if median > 0 else 0.0


def summarise_probes(before: Sequence[float], after: Sequence[float]) -> dict[str, float]:
    """The reference workload's spread (both probes together) and drift (end against start)."""
    return {
        "probe_ms": float(np.median([*before, *after])),
        "probe_spread": max(spread(before), spread(after)),
        "probe_drift": abs(float(np.median(after)) / float(np.median(before)) - 1.0),
    }


def op_spread(entries: Mapping[str, Mapping[str, float]]) -> float | None:
    """Median over ops of the spread between rounds (``std_ms / mean_ms``); None with one round."""
    ratios = [e["std_ms"] / e["mean_ms"] for e in entries.values() if e.get("rounds", 1) > 1 and e.get("mean_ms")]
    return float(np.median(ratios)) if ratios else None


def verdict(provenance: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """``(reliable, reasons)`` of a build's provenance; each reason says what to do."""
    reasons: list[str] = []
    load = provenance.get("load") or {}
    if load.get("other_cores", 0.0) > MAX_OTHER_CORES:
        reasons.append(
            f"other processes used {load['other_cores']:.2f} CPU cores on average while it measured "
            f"(at most {MAX_OTHER_CORES} keeps ±10% honest): {HINTS['load']}"
        )
    noise = provenance.get("noise") or {}
    if noise.get("probe_spread", 0.0) > MAX_PROBE_SPREAD:
        reasons.append(
            f"a fixed reference workload varied by {noise['probe_spread']:.0%} between repeats "
            f"(at most {MAX_PROBE_SPREAD:.0%}): {HINTS['noise']}"
        )
    if noise.get("probe_drift", 0.0) > MAX_PROBE_DRIFT:
        reasons.append(
            f"the machine's speed drifted by {noise['probe_drift']:.0%} between the build's start and end "
            f"(at most {MAX_PROBE_DRIFT:.0%}): {HINTS['load']}; {HINTS['noise']}"
        )
    ops = noise.get("op_spread")
    if ops is not None and ops > MAX_OP_SPREAD:
        reasons.append(
            f"ops varied by {ops:.0%} (median) between rounds (at most {MAX_OP_SPREAD:.0%}): {HINTS['noise']}"
        )
    return not reasons, reasons


def warnings(provenance: Mapping[str, Any]) -> list[str]:
    """What does not make a table unreliable but is worth saying (a power-saving governor)."""
    governors = (provenance.get("machine") or {}).get("governor") or []
    slow = [g for g in governors if g != "performance"]
    return [f"CPU frequency governor {', '.join(slow)}: {HINTS['governor']}"] if slow else []
