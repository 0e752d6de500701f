"""Latency lookup tables measured on the target device, their validation and correction.

A table holds, for one (space, device, dtype, batch size), the measured latency of
every distinct op signature of the space: a static-config layer without its name
(op kind, shapes, kernel, stride, expand, SE, activation). ``lookup(arch)`` sums the
entries over ``static_config(arch)``. Ops run in isolation miss what a whole
network adds (framework overhead between layers, cache effects), so a build also
measures a few whole subnets and fits a small correction (ridge on the table sum
and layer counts); ``predict`` applies it, ``lookup`` does not, and validation
reports both.

On CPU the entries are measured with the runtime the model is deployed with:
torch eager (inference mode) by default, or ONNX Runtime (``backend="onnxruntime"``)
for models deployed as ONNX, each layer exported and run in its own session; on
CUDA, MBConv blocks and 1x1 convolutions run on our Triton kernels
(``backend="triton"``), the stem's full convolution and pooling on torch. The table
records its ``source``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.core import registry
from nas.core.arch import Arch
from nas.core.capabilities import LatencyCoverSpace, SupernetSpace
from nas.core.space import SearchSpace

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
INFERENCE_IGNORED = ("name", "dropout")
DTYPES = ("float32", "float16", "bfloat16")


def signature(layer: Mapping[str, Any]) -> str:
    """Canonical key of a static-config layer (its name and training-only fields dropped)."""
    return json.dumps({k: v for k, v in layer.items() if k not in INFERENCE_IGNORED}, sort_keys=True)


def cover_archs(space: SearchSpace) -> list[Arch]:
    """Archs whose static configs together hold every op signature of the space (its op cover)."""
    if not isinstance(space, LatencyCoverSpace):
        raise NotImplementedError(f"latency tables: space {space.space_id} has no op cover (LatencyCoverSpace)")
    return space.latency_cover_archs()


def op_signatures(space: SearchSpace) -> dict[str, dict[str, Any]]:
    """Every distinct op signature of the space with one example layer."""
    out: dict[str, dict[str, Any]] = {}
    for arch in cover_archs(space):
        for layer in space.static_config(arch):
            out.setdefault(signature(layer), dict(layer))
    return out


# ------------------------------------------------------------------ measuring
def _torch_dtype(dtype: str) -> Any:
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype: use one of {DTYPES}, got {dtype!r}")
    return getattr(torch, dtype)


def layer_module(layer: Mapping[str, Any]) -> tuple[Any, tuple[int, ...]]:
    """A module computing one static-config layer, and its input shape (without batch)."""
    from torch import nn

    from search_spaces.ofa_mbv3.static import block_from_config, conv_from_config

    op = layer["op"]
    if op == "conv":
        return conv_from_config(layer), (layer["in_ch"], layer["in_hw"], layer["in_hw"])
    if op == "mbconv":
        return block_from_config(layer), (layer["in_ch"], layer["in_hw"], layer["in_hw"])
    if op == "pool":
        return _GlobalPool(), (layer["in_ch"], layer["in_hw"], layer["in_hw"])
    if op == "linear":
        return nn.Linear(layer["in_features"], layer["out_features"], bias=layer["bias"]), (layer["in_features"],)
    raise ValueError(f"op: no latency module for layer kind {op!r}")


class _GlobalPool:
    """Global average pooling exactly as the static network computes it."""

    def __call__(self, x: Any) -> Any:
        return x.mean((2, 3), keepdim=True)

    def to(self, *args: Any, **kwargs: Any) -> _GlobalPool:
        return self

    def eval(self) -> _GlobalPool:
        return self


CPU_REPEATS = 30  # samples per CPU measurement, split over the rounds of a build or validation


def _timer(device: str, rounds: int = 1) -> Callable[[Callable[[], Any]], Any]:
    from kernels.bench import measure_cpu, measure_cuda

    if device.startswith("cuda"):
        return measure_cuda
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
    from tqdm import tqdm

    if rounds < 1:
        raise ValueError(f"rounds: must be >= 1, got {rounds}")
    samples: list[list[Mapping[str, float]]] = [[] for _ in items]
    with tqdm(total=len(items) * rounds, desc=desc, disable=not progress) as bar:
        for _ in range(rounds):
            for i, item in enumerate(items):
                samples[i].append(timer(item))
                bar.update()
    return [combine_rounds(s) for s in samples]


def measure_module(
    module: Any, shape: tuple[int, ...], batch: int, device: str, dtype: str, rounds: int = 1
) -> dict[str, float]:
    """Times ``module`` on a random input of ``(batch, *shape)`` (inference mode).

    ``rounds``: how many rounds the caller spreads the measurement over; on CPU each
    round takes ``CPU_REPEATS / rounds`` samples (at least 5).
    """
    import torch

    dt = _torch_dtype(dtype)
    module = module.to(device=device, dtype=dt).eval()
    x = torch.randn((batch, *shape), generator=torch.Generator().manual_seed(0)).to(device=device, dtype=dt)
    if x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
        if hasattr(module, "parameters"):
            module = module.to(memory_format=torch.channels_last)

    def run() -> Any:
        with torch.inference_mode():
            return module(x)

    return _timer(device, rounds)(run).to_dict()


def backend_names() -> list[str]:
    """Latency backends: built-ins, then plug-ins (:mod:`nas.core.registry`, group ``hwnas.latency_backends``)."""
    return registry.names("latency_backend")


def latency_backend(name: str) -> LatencyBackend:
    """The backend ``name`` (a :class:`LatencyBackend`)."""
    try:
        backend = registry.create("latency_backend", name)
    except registry.RegistryError:
        raise ValueError(f"backend: use one of {backend_names()}, got {name[:80]!r}") from None
    return backend


def check_backend(backend: str, device: str, dtype: str) -> None:
    """Clear errors for a backend that cannot run on ``device``/``dtype``."""
    latency_backend(backend).check(device, dtype)


class LatencyBackend:
    """A runtime that times layers and whole networks the same way (one per deployment target).

    ``source`` names it in a table's metadata so end-to-end checks use the same runtime.
    The default times torch eager.
    """

    source = "torch-eager"

    def check(self, device: str, dtype: str) -> None:
        """Raises ValueError when this runtime cannot run on ``device``/``dtype``."""

    def measure_layer(self, layer: Mapping[str, Any], module: Any, shape: tuple[int, ...], batch: int, device: str,
                      dtype: str, rounds: int) -> dict[str, float]:  # fmt: skip
        return measure_module(module, shape, batch, device, dtype, rounds)

    def measure_network(self, net: Any, shape: tuple[int, ...], batch: int, device: str, dtype: str,
                        rounds: int) -> dict[str, float]:  # fmt: skip
        return measure_module(net, shape, batch, device, dtype, rounds)


class TorchBackend(LatencyBackend):
    """torch eager, the modules as they are."""


class TritonBackend(LatencyBackend):
    """Our Triton kernels (MBConv blocks, 1x1 convs, whole networks); torch for other layers."""

    source = "triton"

    def measure_layer(self, layer: Mapping[str, Any], module: Any, shape: tuple[int, ...], batch: int, device: str,
                      dtype: str, rounds: int) -> dict[str, float]:  # fmt: skip
        fast = triton_module(layer, device, dtype)
        return measure_module(_Callable(fast) if fast is not None else module, shape, batch, device, dtype, rounds)

    def measure_network(self, net: Any, shape: tuple[int, ...], batch: int, device: str, dtype: str,
                        rounds: int) -> dict[str, float]:  # fmt: skip
        from kernels.network import NetworkRunner

        return measure_module(NetworkRunner(net, _torch_dtype(dtype), device), shape, batch, device, dtype, rounds)


class OnnxRuntimeBackend(LatencyBackend):
    """Each layer and network exported to ONNX and run by ONNX Runtime (CPU, float32)."""

    source = "onnxruntime"

    def check(self, device: str, dtype: str) -> None:
        if device != "cpu" or dtype != "float32":
            raise ValueError(
                f"backend onnxruntime measures on the CPU in float32, not {device}/{dtype}; "
                "use --device cpu --dtype float32"
            )

    def measure_layer(self, layer: Mapping[str, Any], module: Any, shape: tuple[int, ...], batch: int, device: str,
                      dtype: str, rounds: int) -> dict[str, float]:  # fmt: skip
        return measure_onnx(module, shape, batch, rounds)

    def measure_network(self, net: Any, shape: tuple[int, ...], batch: int, device: str, dtype: str,
                        rounds: int) -> dict[str, float]:  # fmt: skip
        return measure_onnx(net, shape, batch, rounds)


def measure_onnx(module: Any, shape: tuple[int, ...], batch: int, rounds: int = 1) -> dict[str, float]:
    """Times ``module`` exported to ONNX and run by ONNX Runtime on the CPU (float32)."""
    import torch

    from predictors.onnx_backend import onnx_runner

    x = torch.randn((batch, *shape), generator=torch.Generator().manual_seed(0))
    return _timer("cpu", rounds)(onnx_runner(module, x)).to_dict()


def default_backend(device: str) -> str:
    """Triton kernels on CUDA (when they can run), the deployment runtime (torch eager) on CPU."""
    if device.startswith("cuda"):
        from kernels import available

        return "triton" if available() else "torch"
    return "torch"


def triton_module(layer: Mapping[str, Any], device: str, dtype: str, module: Any | None = None) -> Any | None:
    """The layer on our Triton kernels (MBConv blocks and 1x1 convs), or None for torch-only layers.

    Args:
        layer: one static-config layer.
        device: where the kernels run.
        dtype: compute dtype name.
        module: the torch module of ``layer`` whose weights the kernels use; a fresh
            :func:`layer_module` (random weights) when omitted.
    """
    import torch

    from kernels.mbconv import MBConvRunner, fold_conv

    if module is None:
        module, _ = layer_module(layer)
    dt = _torch_dtype(dtype)
    if layer["op"] == "mbconv":
        return MBConvRunner(module.eval(), dt, device)
    if layer["op"] == "conv" and layer["kernel"] == 1 and layer.get("groups", 1) == 1:
        from kernels.pointwise.op import pointwise_conv

        conv = fold_conv(module, dt, device)

        def run(x: torch.Tensor) -> torch.Tensor:
            return pointwise_conv(x, conv.weight, conv.scale, conv.shift, conv.act)

        return run
    return None


class _Callable:
    """Adapts a function to the ``.to`` / ``.eval`` calls :func:`measure_module` makes."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, x: Any) -> Any:
        return self.fn(x)

    def to(self, *args: Any, **kwargs: Any) -> _Callable:
        return self

    def eval(self) -> _Callable:
        return self


def measure_layer(
    layer: Mapping[str, Any], batch: int, device: str, dtype: str, backend: str = "torch", rounds: int = 1
) -> dict[str, float]:
    runtime = latency_backend(backend)
    runtime.check(device, dtype)
    module, shape = layer_module(layer)
    return runtime.measure_layer(layer, module, shape, batch, device, dtype, rounds)


def measure_arch(
    space: SearchSpace, arch: Arch, batch: int, device: str, dtype: str, backend: str = "torch", rounds: int = 1
) -> dict[str, float]:
    """End-to-end latency of the static subnet of ``arch`` (random weights: latency does not depend on them).

    ``backend="triton"`` runs the network on our kernels (:class:`kernels.network.NetworkRunner`),
    the runtime a Triton-built table's entries were measured on; ``backend="onnxruntime"``
    exports it to ONNX and times ONNX Runtime.
    """
    if not isinstance(space, SupernetSpace):
        raise NotImplementedError(f"latency: space {space.space_id} builds no static networks (SupernetSpace)")
    runtime = latency_backend(backend)
    runtime.check(device, dtype)
    arch = space.make(arch)
    net: Any = space.build_static(arch)
    first = space.static_config(arch)[0]  # the input layer: the subnet's input channels and resolution
    shape = (first["in_ch"], first["in_hw"], first["in_hw"])
    return runtime.measure_network(net, shape, batch, device, dtype, rounds)


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
        """Least-squares correction of the sums on relative error (ridge-regularised)."""
        x = np.array([self.features(space, a) for a in archs])
        y = np.asarray(measured, dtype=float)
        w = 1.0 / y  # weight rows by 1/latency: minimises relative, not absolute, error
        xw, yw = x * w[:, None], y * w
        alpha = 1e-10 * np.trace(xw.T @ xw) / x.shape[1]
        coef = np.linalg.solve(xw.T @ xw + alpha * np.eye(x.shape[1]), xw.T @ yw)
        self.correction = {
            "kind": "linear",
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
    ) -> LatencyTable:
        """Reads a table; refuses one built for another space, device, dtype or batch size."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: latency table not found; build one with `nas latency build`")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a latency table ({type(exc).__name__})") from None
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
        return cls(
            data["space_id"], data["device"], data["dtype"], int(data["batch"]), data["entries"],
            data.get("environment", {}), data.get("correction"), data.get("source", "torch-eager"),
        )  # fmt: skip


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
) -> LatencyTable:
    """Measures every op signature of the space, then fits the correction on random subnets.

    ``backend``: ``torch`` (eager, the CPU default), ``triton`` (our kernels, the CUDA default)
    or ``onnxruntime`` (CPU, float32: each op exported to ONNX and run by ONNX Runtime).
    ``rounds``: every op (and calibration subnet) is timed once per round, all of them
    round after round, and the median kept: a shared machine's speed drifts over minutes,
    and spreading each measurement over the whole build keeps the drift out of the ratios
    between entries.
    """
    from kernels.bench import environment

    if batch < 1:
        raise ValueError(f"batch: must be >= 1, got {batch}")
    _torch_dtype(dtype)
    backend = backend or default_backend(device)
    check_backend(backend, device, dtype)
    layer_timer = layer_timer or (lambda layer: measure_layer(layer, batch, device, dtype, backend, rounds))
    arch_timer = arch_timer or (lambda arch: measure_arch(space, arch, batch, device, dtype, backend, rounds))
    signatures = op_signatures(space)
    timings = _in_rounds(list(signatures.values()), layer_timer, rounds, "op latency", progress)
    entries = dict(zip(signatures, timings))
    table = LatencyTable(
        space.space_id, device, dtype, batch, entries, environment(device),
        source=latency_backend(backend).source,
    )  # fmt: skip
    if calibration_archs > 0:
        archs = space.sample_unique(calibration_archs, np.random.default_rng([seed, 1]))
        measured = [t["mean_ms"] for t in _in_rounds(archs, arch_timer, rounds, "calibration", progress)]
        table.fit_correction(space, archs, measured)
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
        lambda arch: measure_arch(space, arch, table.batch, table.device, table.dtype, backend, rounds)
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
