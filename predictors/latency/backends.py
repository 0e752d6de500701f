"""Latency backends: the runtimes a table is measured on (registered as ``latency_backend`` plug-ins)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from types import MappingProxyType
from typing import Any

from nas.core import registry
from nas.core.arch import Arch
from nas.core.capabilities import SupernetSpace
from nas.core.config import short_repr
from nas.core.precision import DYNAMIC, FLOAT, PRECISIONS, layers_dynamic, quantized, quantized_layers
from nas.core.space import SearchSpace
from predictors.latency.ops import _torch_dtype, layer_module
from predictors.latency.timers import measure_module, measure_onnx


def backend_names() -> list[str]:
    """Latency backends: built-ins, then plug-ins (:mod:`nas.core.registry`, group ``hwnas.latency_backends``)."""
    return registry.names("latency_backend")


def latency_backend(name: str) -> LatencyBackend:
    """The backend ``name`` (a :class:`LatencyBackend`)."""
    try:
        backend = registry.create("latency_backend", name)
    except registry.RegistryError:
        raise ValueError(f"backend: use one of {backend_names()}, got {short_repr(name)}") from None
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
    # how :func:`measure_module` times layers and networks on this runtime (``graph``, ``wrap``)
    timing: Mapping[str, Any] = MappingProxyType({})
    # the layer precisions (:mod:`nas.core.precision`) this runtime runs
    precisions: tuple[str, ...] = (FLOAT,)

    def check(self, device: str, dtype: str) -> None:
        """Raises ValueError when this runtime cannot run on ``device``/``dtype``."""

    def check_precisions(self, name: str, precisions: Collection[str]) -> None:
        """Raises ValueError naming a layer precision this runtime (registered as ``name``) cannot run."""
        missing = sorted(set(precisions) - set(self.precisions))
        if missing:
            runs = [latency_backend(n) for n in backend_names()]
            able = [n for n, b in zip(backend_names(), runs) if set(precisions) <= set(b.precisions)]
            raise ValueError(
                f"backend {name} runs {', '.join(self.precisions)} layers, not {', '.join(missing)}; "
                f"measure this space with --backend {' or '.join(able) or '(none registered)'}"
            )

    def measure_mixed(self, net: Any, shape: tuple[int, ...], batch: int, rounds: int,
                      int8_layers: Collection[str], dynamic: bool = False) -> dict[str, float]:  # fmt: skip
        """A whole network with the named layers in int8 (runtimes whose ``precisions`` hold it),
        quantized statically or, with ``dynamic``, dynamically."""
        raise NotImplementedError(f"{type(self).__name__} runs no int8 layers")

    def launch_bound(self, device: str) -> bool:
        """Whether the host's kernel launches can hold the GPU back on ``device``: the table then
        stores GPU time and kernel count per op and replays the launch queue
        (:mod:`predictors.latency.stream`) instead of summing."""
        return False

    def measure_layer(self, layer: Mapping[str, Any], module: Any, shape: tuple[int, ...], batch: int, device: str,
                      dtype: str, rounds: int) -> dict[str, float]:  # fmt: skip
        return measure_module(module, shape, batch, device, dtype, rounds, **self.timing)

    def measure_network(self, net: Any, shape: tuple[int, ...], batch: int, device: str, dtype: str,
                        rounds: int) -> dict[str, float]:  # fmt: skip
        return measure_module(net, shape, batch, device, dtype, rounds, **self.timing)


class TorchBackend(LatencyBackend):
    """torch eager, the modules as they are. On CUDA the launch-bound model applies: each op's
    GPU time (graph replay, warm L2) and kernel count are stored, and the table replays the
    launch queue with the host's measured launch cost."""

    def launch_bound(self, device: str) -> bool:
        return device.startswith("cuda")

    def measure_layer(self, layer: Mapping[str, Any], module: Any, shape: tuple[int, ...], batch: int, device: str,
                      dtype: str, rounds: int) -> dict[str, float]:  # fmt: skip
        return measure_module(module, shape, batch, device, dtype, rounds, kernels=self.launch_bound(device))


def _require_cuda(name: str, device: str) -> None:
    if not device.startswith("cuda"):
        raise ValueError(f"backend {name} runs on CUDA, not {device}; use --device cuda or another backend")


class CudaGraphBackend(LatencyBackend):
    """The whole subnet captured in one CUDA graph and replayed (what inference servers do):
    no launch gaps, so each op is timed as it runs inside the network — replayed back to back
    in a graph with warm L2 — and the table sums them."""

    source = "torch-cudagraph"
    timing = MappingProxyType({"graph": True})

    def check(self, device: str, dtype: str) -> None:
        _require_cuda("cuda-graph", device)


def compiled(module: Any) -> Any:
    """``torch.compile`` of a module for inference: static shapes (one kernel set per
    signature, as a deployed model with a fixed input has), Inductor's default mode."""
    import torch

    return torch.compile(module, dynamic=False)


class TorchCompileBackend(LatencyBackend):
    """``torch.compile`` (Inductor: generated Triton kernels on CUDA, C++ on CPU): each op
    compiled on its own, the network compiled whole, the table's correction bridging the
    fusions across op boundaries that a whole-network compile finds. Compiled graphs are
    cached by Inductor across ops of the same shapes."""

    source = "torch-compile"
    timing = MappingProxyType({"wrap": compiled})


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
    """Each layer and network exported to ONNX and run by ONNX Runtime (CPU, float32).

    Layers whose static config says ``precision: int8`` run as deployed: the exported layer (or
    the subnet's int8 layers) quantized by ONNX Runtime's static QDQ quantizer, which its graph
    optimiser fuses into integer kernels (QLinearConv and friends); ``int8_dynamic`` layers by its
    dynamic quantizer (MatMulInteger / ConvInteger on activations quantized as they come)."""

    source = "onnxruntime"
    precisions = PRECISIONS

    def check(self, device: str, dtype: str) -> None:
        if device != "cpu" or dtype != "float32":
            raise ValueError(
                f"backend onnxruntime measures on the CPU in float32, not {device}/{dtype}; "
                "use --device cpu --dtype float32"
            )

    def measure_layer(self, layer: Mapping[str, Any], module: Any, shape: tuple[int, ...], batch: int, device: str,
                      dtype: str, rounds: int) -> dict[str, float]:  # fmt: skip
        precision = layer.get("precision", FLOAT)
        return measure_onnx(module, shape, batch, rounds, int8=quantized(precision), dynamic=precision == DYNAMIC)

    def measure_network(self, net: Any, shape: tuple[int, ...], batch: int, device: str, dtype: str,
                        rounds: int) -> dict[str, float]:  # fmt: skip
        return measure_onnx(net, shape, batch, rounds)

    def measure_mixed(self, net: Any, shape: tuple[int, ...], batch: int, rounds: int,
                      int8_layers: Collection[str], dynamic: bool = False) -> dict[str, float]:  # fmt: skip
        return measure_onnx(net, shape, batch, rounds, int8=list(int8_layers), dynamic=dynamic)


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
    runtime.check_precisions(backend, [layer.get("precision", FLOAT)])
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
    layers = space.static_config(arch)
    runtime.check_precisions(backend, {layer.get("precision", FLOAT) for layer in layers})
    net: Any = space.build_static(arch)
    first = layers[0]  # the input layer: the subnet's input channels and resolution
    shape = (first["in_ch"], first["in_hw"], first["in_hw"])
    int8 = quantized_layers(layers)
    if int8:
        return runtime.measure_mixed(net, shape, batch, rounds, int8, layers_dynamic(layers))
    return runtime.measure_network(net, shape, batch, device, dtype, rounds)
