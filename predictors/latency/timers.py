"""Timing a module on the CPU (wall clock, repeats split over rounds) or CUDA, and in ONNX Runtime."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np

from predictors.latency.ops import _torch_dtype

CPU_REPEATS = 30  # samples per CPU measurement, split over the rounds of a build or validation


def _timer(device: str, rounds: int = 1, graph: bool = False) -> Callable[[Callable[[], Any]], Any]:
    from kernels.bench import measure_cpu, measure_cuda

    if device.startswith("cuda"):
        return lambda fn: measure_cuda(fn, graph=graph)
    repeats = max(5, CPU_REPEATS // max(1, rounds))
    return lambda fn: measure_cpu(fn, repeats=repeats)


def combine_rounds(samples: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """One timing from the same measurement repeated in ``len(samples)`` rounds spread over time.

    The median over rounds of each statistic; ``std_ms`` becomes the spread between
    rounds when there are several (how much the machine's speed drifted).
    """
    if not samples:
        raise ValueError("combine_rounds: no samples")
    if len(samples) == 1:
        return dict(samples[0])
    out = {key: float(np.median([s[key] for s in samples])) for key in samples[0]}
    out["std_ms"] = float(np.std([s["mean_ms"] for s in samples], ddof=1))
    out["rounds"] = len(samples)
    return out


def _in_rounds(
    items: Sequence[Any], timer: Callable[[Any], Mapping[str, float]], rounds: int, desc: str, progress: bool
) -> list[dict[str, float]]:
    """Times every item once per round, round after round (so slow drifts of the machine's
    speed hit every item alike), and combines each item's rounds."""
    from nas.core.progress import bar as progress_bar

    if rounds < 1:
        raise ValueError(f"rounds: must be >= 1, got {rounds}")
    samples: list[list[Mapping[str, float]]] = [[] for _ in items]
    with progress_bar(total=len(items) * rounds, desc=desc, disable=not progress) as bar:
        for _ in range(rounds):
            for i, item in enumerate(items):
                samples[i].append(timer(item))
                bar.update()
    return [combine_rounds(s) for s in samples]


def measure_module(
    module: Any,
    shape: tuple[int, ...],
    batch: int,
    device: str,
    dtype: str,
    rounds: int = 1,
    *,
    graph: bool = False,
    wrap: Callable[[Any], Any] | None = None,
    kernels: bool = False,
) -> dict[str, float]:
    """Times ``module`` on a random input of ``(batch, *shape)`` (inference mode).

    ``rounds``: how many rounds the caller spreads the measurement over; on CPU each
    round takes ``CPU_REPEATS / rounds`` samples (at least 5). ``graph``: on CUDA, replay the
    call captured in a CUDA graph, back to back with warm L2 (GPU time, no launch gaps).
    ``wrap``: what runs instead of the module once it is on the device (``torch.compile``).
    ``kernels``: also count the kernels one eager call launches (:func:`count_kernels`) and,
    on CUDA, time it in a graph (``gpu_ms``), for the launch-bound model.
    """
    import torch

    dt = _torch_dtype(dtype)
    module = module.to(device=device, dtype=dt).eval()
    x = torch.randn((batch, *shape), generator=torch.Generator().manual_seed(0)).to(device=device, dtype=dt)
    if x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
        if hasattr(module, "parameters"):
            module = module.to(memory_format=torch.channels_last)

    runner = wrap(module) if wrap is not None else module

    def run() -> Any:
        with torch.inference_mode():
            return runner(x)

    run()  # compilation, autotuning and lazy initialisation happen outside the timed calls
    out: dict[str, float] = _timer(device, rounds, graph)(run).to_dict()
    if kernels:
        from predictors.latency.stream import count_kernels

        out["kernels"] = float(count_kernels(module, x))
        out["gpu_ms"] = _timer(device, rounds, True)(run).mean_ms if device.startswith("cuda") else out["mean_ms"]
    return out


def measure_onnx(
    module: Any, shape: tuple[int, ...], batch: int, rounds: int = 1, int8: bool | Collection[str] = False,
    dynamic: bool = False,
) -> dict[str, float]:  # fmt: skip
    """Times ``module`` exported to ONNX and run by ONNX Runtime on the CPU: in float32, or
    quantized to int8 as deployed (``int8``: the whole module, or the named layers of a subnet;
    ``dynamic``: by ONNX Runtime's dynamic quantizer instead of static QDQ)."""
    import torch

    from predictors.onnx_backend import onnx_runner

    x = torch.randn((batch, *shape), generator=torch.Generator().manual_seed(0))
    if int8 is False:
        return _timer("cpu", rounds)(onnx_runner(module, x)).to_dict()
    from predictors.quantization import int8_runner

    layers = None if int8 is True else list(int8)
    return _timer("cpu", rounds)(int8_runner(module, x, layers, dynamic=dynamic)).to_dict()
