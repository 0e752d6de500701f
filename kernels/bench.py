"""Timing harness: CUDA via ``triton.testing.do_bench``, CPU via ``time.perf_counter_ns`` loops.

Both return :class:`Timing` (milliseconds per call: mean, std, median, quantiles and
the number of samples). On CPU each sample times enough back-to-back calls to last
``min_sample_ms`` (so microsecond ops are not lost in timer noise) after
``warmup`` calls; the mean is taken over the middle 80% of samples. Nothing runs
at import.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    mean_ms: float
    std_ms: float
    median_ms: float
    p20_ms: float
    p80_ms: float
    count: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _summarise(samples: list[float]) -> Timing:
    ordered = sorted(samples)
    n = len(ordered)
    cut = n // 10
    core = ordered[cut : n - cut] or ordered
    mean = sum(core) / len(core)
    std = math.sqrt(sum((s - mean) ** 2 for s in core) / max(1, len(core) - 1))

    def q(p: float) -> float:
        return ordered[min(n - 1, max(0, round(p * (n - 1))))]

    return Timing(mean, std, q(0.5), q(0.2), q(0.8), n)


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_RETAINED = 1 << 30  # blocks up to 1 GiB come from the heap and stay there when freed


def retain_freed_memory() -> bool:
    """Make glibc's malloc keep freed blocks (up to 1 GiB) instead of handing them back to the OS.

    By default glibc serves blocks over 32 MiB with fresh ``mmap`` pages and unmaps them on
    free, so a model whose activations exceed that (the OFA nets at batch 64) page-faults
    every activation again on every call: measured here, millions of minor faults, about
    40% of the CPU time in the kernel, latency up to 2x and dependent on what the OS is
    doing. Tuned CPU deployments use an allocator that keeps memory (jemalloc, tcmalloc, as
    PyTorch's CPU performance guide advises); this gives glibc the same behaviour. It is a
    process-wide setting, idempotent, and reported by :func:`allocator`. Returns whether it
    applied (False off glibc).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if platform.system() != "Linux" or not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(_M_MMAP_THRESHOLD, _RETAINED) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2 * _RETAINED) == 1
    except (OSError, AttributeError):
        return False
    if not ok:
        logger.warning("mallopt refused the mmap/trim thresholds; CPU timings at large batch include page faults")
    return ok


def minor_faults() -> int:
    """Minor page faults of this process so far (0 where ``resource`` is unavailable)."""
    try:
        import resource
    except ImportError:
        return 0
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)


def measure_cpu(
    fn: Callable[[], Any], *, warmup: int = 5, repeats: int = 30, min_sample_ms: float = 2.0, retain_memory: bool = True
) -> Timing:
    """Wall time of ``fn()`` on the CPU (ms per call).

    ``retain_memory``: first apply :func:`retain_freed_memory`, so large-batch calls do not
    page-fault their buffers anew each time (how a tuned deployment runs).
    """
    if repeats < 1:
        raise ValueError(f"repeats: must be >= 1, got {repeats}")
    if retain_memory:
        retain_freed_memory()
    for _ in range(warmup):
        fn()
    start = time.perf_counter_ns()
    fn()
    single = max(1, time.perf_counter_ns() - start)
    inner = max(1, math.ceil(min_sample_ms * 1e6 / single))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter_ns() - start) / inner / 1e6)
    return _summarise(samples)


def measure_cuda(
    fn: Callable[[], Any], *, warmup_ms: float = 25.0, rep_ms: float = 100.0, graph: bool = False
) -> Timing:
    """Time of ``fn()`` on CUDA.

    ``graph=False``: Triton's ``do_bench`` (L2 flushed between calls), which includes the
    host's launch overhead whenever the host is slower than the GPU, as in deployment
    without graphs. ``graph=True``: ``do_bench_cudagraph`` replays ``fn`` captured in a CUDA
    graph, so only GPU time is counted (``fn`` must have run once before: autotuning and
    compilation cannot be captured).
    """
    from triton.testing import do_bench, do_bench_cudagraph

    if graph:
        times = do_bench_cudagraph(fn, rep=rep_ms, return_mode="all")
    else:
        times = do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="all")
    return _summarise([float(t) for t in times])


def environment(device: str = "cpu") -> dict[str, Any]:
    """Device, driver, library versions and threads, stored with every measurement."""
    import torch

    env: dict[str, Any] = {
        "device": device,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), None)
        env["cpu_model"] = model
    except OSError:
        pass
    if device == "cpu":  # measure_cpu applies this before timing; say so with the numbers
        env["allocator"] = "glibc, freed blocks kept (mallopt)" if retain_freed_memory() else "system default"
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        env["device_name"] = torch.cuda.get_device_name(index)
        env["cuda"] = torch.version.cuda
        env["driver"] = torch.cuda.driver_version() if hasattr(torch.cuda, "driver_version") else None
        try:
            import triton

            env["triton"] = triton.__version__
        except ImportError:
            env["triton"] = None
    return env
