"""The launch-bound regime of eager GPU inference, modelled explicitly.

An eager runtime issues one kernel after another from the host; the GPU runs them in order.
When the kernels are short, the GPU waits for the host (each launch costs ``launch_ms`` of
host time), and a network's latency is about ``kernels x launch_ms``; when they are long, the
host runs ahead and the latency is the sum of the kernels' GPU times. Between the two, which
ops wait depends on their order. :func:`stream_latency` replays that queue: op by op, each
kernel starts when the host has issued it and the GPU has finished the previous one.

A table measured on such a runtime stores per op its GPU time (back to back in a CUDA graph,
warm L2, so without launch gaps) and its kernel count, and once per table the host's launch
cost; :meth:`LatencyTable.lookup` then replays the queue instead of summing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

# aten ops that only reinterpret a tensor's metadata: no kernel runs for them
_METADATA_OPS = frozenset(
    {
        "view", "_unsafe_view", "reshape", "expand", "as_strided", "permute", "transpose", "t", "squeeze",
        "unsqueeze", "flatten", "alias", "detach", "slice", "select", "split", "chunk", "unbind",
        "_reshape_alias", "empty", "empty_like", "empty_strided", "size", "stride", "sym_size", "sym_stride",
        "is_contiguous", "lift_fresh", "_to_copy_noop",
    }
)  # fmt: skip


def count_kernels(module: Callable[[Any], Any], x: Any) -> int:
    """How many kernels one call of ``module(x)`` launches in eager mode: the aten ops it
    dispatches, less those that only change metadata (views, reshapes, allocations).

    Counted by the dispatcher, so it works on any device; on CUDA each such op is one kernel
    launch (a few launch two, which the table's correction absorbs).
    """
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Counter(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.kernels = 0

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            name = func.overloadpacket.__name__.rstrip("_")
            if name not in _METADATA_OPS:
                self.kernels += 1
            return func(*args, **(kwargs or {}))

    counter = _Counter()
    with torch.inference_mode(), counter:
        module(x)
    return counter.kernels


def stream_latency(gpu_ms: Sequence[float], kernels: Sequence[int], launch_ms: float) -> float:
    """End-to-end latency (ms) of ops issued in order from one host thread onto one GPU stream.

    Op ``i`` launches ``kernels[i]`` kernels that together take ``gpu_ms[i]`` on the GPU (split
    evenly); every launch costs the host ``launch_ms``. A kernel starts when it has been issued
    and the previous kernel has finished. ``launch_ms = 0`` gives the plain sum of GPU times;
    GPU times of 0 give ``sum(kernels) * launch_ms``.
    """
    if len(gpu_ms) != len(kernels):
        raise ValueError(f"stream_latency: {len(gpu_ms)} GPU times but {len(kernels)} kernel counts")
    if launch_ms < 0:
        raise ValueError(f"stream_latency: launch_ms must be >= 0, got {launch_ms}")
    host = gpu_free = 0.0
    for time_ms, count in zip(gpu_ms, kernels):
        count = max(1, int(count))
        each = float(time_ms) / count
        for _ in range(count):
            host += launch_ms
            gpu_free = max(gpu_free, host) + each
    return gpu_free


def launch_cost_ms(device: str, timer: Callable[[Callable[[], Any]], Any] | None = None, launches: int = 200) -> float:
    """Host time (ms) to issue one small kernel on ``device``: ``launches`` tiny in-place adds
    issued back to back, timed together (without synchronising between them), divided by
    ``launches``. ``timer`` times a callable and returns an object with ``median_ms``
    (default: the device's timer, :func:`kernels.bench.measure_cpu` or ``measure_cuda``)."""
    import torch

    from kernels.bench import measure_cpu, measure_cuda

    if launches < 1:
        raise ValueError(f"launches: must be >= 1, got {launches}")
    x = torch.zeros(1, device=device)

    def issue() -> None:
        for _ in range(launches):
            x.add_(1.0)

    if timer is None:
        timer = measure_cuda if device.startswith("cuda") else (lambda fn: measure_cpu(fn, repeats=10))
    return float(timer(issue).median_ms) / launches
