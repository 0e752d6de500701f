"""Post-training static int8 quantization of an exported subnet, as ONNX Runtime deploys it.

The float ONNX model goes through ONNX Runtime's pre-processing (symbolic shape inference and
graph optimisation, which folds batch norms: without it the int8 model was 2.5x *slower* than
float at batch 1 on this CPU) and then :func:`onnxruntime.quantization.quantize_static` in the
QDQ format with the choices ONNX Runtime recommends for x86 CPUs: uint8 activations, int8
weights, per output channel by default. Calibration batches are held-out training images, never
the test split. Accuracy is measured by running the quantized model itself in ONNX Runtime, so
it is what the deployed file does, not a simulation.

Dynamic quantization (the ``int8_dynamic`` precision, :func:`quantize_dynamic_int8`) is ONNX
Runtime's other CPU path: int8 weights, activations quantized per batch as they come, no
calibration; the usual deployment of transformers' linear layers.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Collection, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.core.extras import import_extra

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


class QuantizationError(ValueError):
    """A quantization setting or input that cannot be used (the message says which and why)."""


@dataclass(frozen=True)
class QuantSettings:
    """How a float model becomes int8.

    Attributes:
        method: calibration of activation ranges: ``minmax`` (ONNX Runtime's default), ``entropy``
            or ``percentile`` (both slower, more robust to outliers).
        images: held-out training images the ranges are calibrated on.
        per_channel: one weight scale per output channel (per tensor otherwise; depthwise
            convolutions lose much more accuracy per tensor).
        batch_size: calibration batch size.
    """

    method: str = "minmax"
    images: int = 256
    per_channel: bool = True
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.method not in CALIBRATION_METHODS:
            raise QuantizationError(
                f"calibration method {self.method!r} is unknown; choose one of {', '.join(CALIBRATION_METHODS)}"
            )
        if not 1 <= self.images <= 100_000:
            raise QuantizationError(f"calibration images: {self.images} is outside 1..100000 (256 is usual)")
        if not 1 <= self.batch_size <= 4096:
            raise QuantizationError(f"calibration batch size: {self.batch_size} is outside 1..4096")

    def record(self, *, dynamic: bool = False) -> dict[str, Any]:
        """What a manifest records about the quantization (with the runtime's choices); dynamic
        quantization has no calibration settings to record."""
        weights = "int8 per channel" if self.per_channel else "int8 per tensor"
        runtime = f"onnxruntime {_ort().__version__}"
        if dynamic:
            return {"mode": "dynamic", "activations": "uint8, quantized per batch", "weights": weights,
                    "per_channel": self.per_channel, "runtime": runtime}  # fmt: skip
        return {**asdict(self), "mode": "static", "format": "QDQ", "activations": "uint8", "weights": weights,
                "runtime": runtime}  # fmt: skip


def _ort() -> Any:
    return import_extra("onnxruntime", "export", "int8 quantization")


class _Batches:
    """ONNX Runtime's ``CalibrationDataReader`` protocol over arrays (input name ``x``)."""

    def __init__(self, batches: Iterable[np.ndarray]) -> None:
        self._it: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {"x": np.ascontiguousarray(batch, dtype=np.float32)}

    def rewind(self) -> None:  # some calibrators call it; one pass is all they get
        pass


def module_names(net: Any, layers: Collection[str]) -> list[str]:
    """The module paths (the exporter's node scopes) of static-config layers of ``net``: the layer
    names themselves unless the network maps them (``module_name``, as ``ofa_resnet50``'s does)."""
    name_of = getattr(net, "module_name", None)
    return [name_of(layer) for layer in layers] if callable(name_of) else list(layers)


def layer_nodes(graph: Any, layers: Collection[str]) -> list[str]:
    """Names of the nodes of ``graph`` (an ONNX ``GraphProto``) that compute the named layers.

    The exporter names a node after the module path that made it (``/blocks/blocks.3/expand/conv/Conv``
    is module ``blocks.3.expand.conv``, so it belongs to layer ``blocks.3``, and
    ``/blocks/blocks.0/attn/qkv/MatMul`` to layer ``blocks.0.attn``); a node the pre-processing
    made without a name (a decomposed activation) gets one here, inheriting the layer of the node
    that feeds it.
    """
    wanted = set(layers)
    producer_layer: dict[str, str | None] = {}
    out: list[str] = []
    for i, node in enumerate(graph.node):
        layer = next((path for path in _module_paths(node.name) if path in wanted), None)
        if not node.name:
            node.name = f"hwnas_node_{i}"
            layer = next((producer_layer[x] for x in node.input if producer_layer.get(x)), None)
        for output in node.output:
            producer_layer[output] = layer
        if layer is not None:
            out.append(node.name)
    return out


def _module_paths(node_name: str) -> list[str]:
    """The module paths a node's name passes through, outermost first: ``/blocks/blocks.0/attn/qkv/MatMul``
    gives ``blocks``, ``blocks.0``, ``blocks.0.attn``, ``blocks.0.attn.qkv`` (a scope that
    extends the one before, ``blocks.0`` after ``blocks``, is a container's child, already qualified)."""
    paths: list[str] = []
    path, last = "", ""
    for part in node_name.split("/")[1:-1]:
        if last and part.startswith(last + "."):
            path = path[: len(path) - len(last)] + part
        else:
            path = f"{path}.{part}" if path else part
        last = part
        paths.append(path)
    return paths


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ONNX Runtime's quantizer logs a line per tensor at INFO, some through the root logger:
    kept out of the caller's log while it runs."""
    before = logging.root.manager.disable
    logging.disable(max(before, logging.INFO))
    try:
        yield
    finally:
        logging.disable(before)


def quantize_static_qdq(
    model: bytes,
    calibration: Iterable[np.ndarray],
    settings: QuantSettings,
    layers: Collection[str] | None = None,
) -> bytes:
    """The int8 (QDQ) version of the float ONNX model ``model`` (input ``x``), calibrated on ``calibration``.

    ``layers``: quantize only the nodes of these static-config layers (a mixed-precision subnet,
    the rest left in float; :func:`layer_nodes`); ``None``: the whole model.

    Raises:
        QuantizationError: when there is no calibration data, or no node of ``layers`` is in the model.
    """
    import_extra("onnx", "export", "int8 quantization")  # ONNX Runtime's quantizer edits models with it
    import_extra("onnxruntime.quantization", "export", "int8 quantization")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = [np.asarray(b, dtype=np.float32) for b in calibration]
    if not batches:
        raise QuantizationError("no calibration images: the held-out split is empty")
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[settings.method]
    with tempfile.TemporaryDirectory(prefix="hwnas-quant-") as tmp, _quiet():
        fp32, prepared, int8 = Path(tmp, "fp32.onnx"), Path(tmp, "prepared.onnx"), Path(tmp, "int8.onnx")
        fp32.write_bytes(model)
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=False)
        nodes = _select_nodes(prepared, layers)
        quantize_static(
            str(prepared),
            str(int8),
            _Batches(batches),
            quant_format=QuantFormat.QDQ,
            per_channel=settings.per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=method,
            nodes_to_quantize=nodes,
        )
        return int8.read_bytes()


def quantize_dynamic_int8(model: bytes, settings: QuantSettings, layers: Collection[str] | None = None) -> bytes:
    """The dynamically quantized version of the float ONNX model ``model``: ONNX Runtime's
    :func:`onnxruntime.quantization.quantize_dynamic` after the same pre-processing as the static
    path, int8 weights (per output channel unless ``settings.per_channel`` is off); linear layers
    (MatMul / Gemm) and convolutions become integer kernels fed by activations quantized per
    batch. ``layers``: only the nodes of these static-config layers; ``None``: the whole model.

    Raises:
        QuantizationError: when no node of ``layers`` is in the model.
    """
    import_extra("onnx", "export", "int8 quantization")
    import_extra("onnxruntime.quantization", "export", "int8 quantization")
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="hwnas-quant-") as tmp, _quiet():
        fp32, prepared, int8 = Path(tmp, "fp32.onnx"), Path(tmp, "prepared.onnx"), Path(tmp, "int8.onnx")
        fp32.write_bytes(model)
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=False)
        nodes = _select_nodes(prepared, layers)
        if nodes is not None:  # the dynamic quantizer first splits each Gemm into NAME_MatMul + NAME_Add,
            nodes += [f"{n}_MatMul" for n in nodes]  # then selects by the new names
        quantize_dynamic(str(prepared), str(int8), per_channel=settings.per_channel, weight_type=QuantType.QInt8,
                         nodes_to_quantize=nodes)  # fmt: skip
        return int8.read_bytes()


def _select_nodes(prepared: Path, layers: Collection[str] | None) -> list[str] | None:
    """The node names of ``layers`` in the pre-processed model at ``prepared`` (saved back with
    names given to unnamed nodes); ``None`` for the whole model."""
    if layers is None:
        return None
    onnx = import_extra("onnx", "export", "int8 quantization")
    proto = onnx.load(str(prepared))
    nodes = layer_nodes(proto.graph, layers)
    if not nodes:
        raise QuantizationError(f"no node of layers {sorted(layers)[:5]} in the model to quantize")
    onnx.save(proto, str(prepared))
    return nodes


def quantize(
    model: bytes, calibration: Iterable[np.ndarray], settings: QuantSettings, layers: Collection[str] | None = None,
    *, dynamic: bool = False,
) -> bytes:  # fmt: skip
    """``model`` quantized as deployed: static QDQ calibrated on ``calibration``
    (:func:`quantize_static_qdq`), or with ``dynamic`` ONNX Runtime's dynamic quantization
    (:func:`quantize_dynamic_int8`, which needs no calibration)."""
    if dynamic:
        return quantize_dynamic_int8(model, settings, layers)
    return quantize_static_qdq(model, calibration, settings, layers)


def count_quantized(model: bytes) -> dict[str, int]:
    """How many QuantizeLinear / DequantizeLinear nodes (static QDQ), DynamicQuantizeLinear nodes
    and integer kernels (dynamic), and nodes in all, a model has."""
    onnx = import_extra("onnx", "export", "reading an ONNX model")
    proto = onnx.load_from_string(model)
    ops = [n.op_type for n in proto.graph.node]
    return {
        "quantize": ops.count("QuantizeLinear"), "dequantize": ops.count("DequantizeLinear"),
        "dynamic_quantize": ops.count("DynamicQuantizeLinear"),
        "integer_kernels": ops.count("MatMulInteger") + ops.count("ConvInteger"), "nodes": len(ops),
    }  # fmt: skip


def onnx_logits(model: bytes, batches: Iterable[np.ndarray], threads: int = 1) -> np.ndarray:
    """The outputs of ONNX Runtime running ``model`` on every image of ``batches``."""
    from predictors.onnx_backend import ort_session

    session = ort_session(model, threads)
    out = [session.run(["y"], {"x": np.ascontiguousarray(b, dtype=np.float32)})[0] for b in batches]
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def onnx_predictions(model: bytes, batches: Iterable[np.ndarray], threads: int = 1) -> np.ndarray:
    """Top-1 class of every image of ``batches``, from ONNX Runtime running ``model``."""
    logits = onnx_logits(model, batches, threads)
    return logits.argmax(1) if len(logits) else np.zeros(0, dtype=np.int64)


def int8_model(module: Any, example: Any, layers: Collection[str] | None, *, dynamic: bool = False) -> bytes:
    """``module`` as an ONNX model quantized as deployed (default settings), for timing: the named
    static-config layers, or all when ``None``; statically, or with ``dynamic`` dynamically.
    Calibrated on random batches of ``example``'s shape: the ranges change the values, not the time."""
    from predictors.onnx_backend import export_onnx

    rng = np.random.default_rng(0)
    batches = [rng.standard_normal(tuple(example.shape)).astype(np.float32) for _ in range(2)]
    scopes = None if layers is None else module_names(module, list(layers))
    settings = QuantSettings(images=2 * len(example))
    return quantize(export_onnx(module, example), batches, settings, scopes, dynamic=dynamic)


def int8_runner(module: Any, example: Any, layers: Collection[str] | None, *, dynamic: bool = False) -> Any:
    """A zero-argument callable running :func:`int8_model` of ``module`` on ``example`` in ONNX Runtime."""
    from predictors.onnx_backend import onnx_runner

    return onnx_runner(module, example, int8_model(module, example, layers, dynamic=dynamic))


def split_batches(
    dataset: Any, split: str, resolution: int, limit: int | None, batch_size: int, *, shuffle: bool = False
) -> tuple[list[np.ndarray], np.ndarray]:
    """A split's images at ``resolution`` as float arrays in batches (the first ``limit``; with
    ``shuffle`` a seeded random subset), and their labels."""
    from search_spaces.bn import resize_batch

    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    n = 0
    loader = dataset.loader(split, batch_size, train=False, shuffle=shuffle, seed=0, resolutions=[resolution])
    for xb, yb in loader.epoch(0):
        keep = len(xb) if limit is None else min(len(xb), limit - n)
        xs.append(resize_batch(xb[:keep], resolution).numpy())
        ys.append(yb[:keep].numpy())
        n += keep
        if limit is not None and n >= limit:
            break
    return xs, np.concatenate(ys) if ys else np.zeros(0, dtype=np.int64)


def int8_accuracy(
    net: Any,
    dataset: Any,
    split: str,
    resolution: int,
    int8_layers: Collection[str] | None,
    settings: QuantSettings,
    *,
    calibration_split: str = "train",
    threads: int = 1,
    dynamic: bool = False,
) -> dict[str, float]:
    """Top-1 accuracy and mean loss on ``split`` of the static network ``net`` (BN already
    recalibrated) quantized as deployed, run by ONNX Runtime.

    ``int8_layers``: the static-config layers in int8 (``None``: all); the ranges are calibrated
    on ``settings.images`` seeded random images of ``calibration_split`` (the training split
    during search, so that the split scored is not the one calibrated on). ``dynamic``: ONNX
    Runtime's dynamic quantization instead (no calibration; one batch still fixes the export's
    input shape).
    """
    import torch

    from predictors.onnx_backend import export_onnx

    images = 1 if dynamic else settings.images
    calibration, _ = split_batches(dataset, calibration_split, resolution, images, settings.batch_size, shuffle=True)
    if not calibration:
        raise QuantizationError(f"no calibration images: the {calibration_split} split is empty")
    model = export_onnx(net, torch.from_numpy(calibration[0][:1]), dynamic_batch=True)
    scopes = None if int8_layers is None else module_names(net, int8_layers)
    int8 = quantize(model, calibration, settings, scopes, dynamic=dynamic)
    batches, labels = split_batches(dataset, split, resolution, None, 256)
    logits = onnx_logits(int8, batches, threads).astype(np.float64)
    if not len(labels):
        raise QuantizationError(f"the {split} split is empty: nothing to measure the int8 accuracy on")
    shifted = logits - logits.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    return {
        "accuracy": float((logits.argmax(1) == labels).mean()),
        "loss": float(-log_probs[np.arange(len(labels)), labels].mean()),
        "samples": len(labels),
    }


def deployed_accuracy(
    supernet: Any, space: Any, arch: Any, dataset: Any, split: str, settings: QuantSettings, *,
    recal_batches: int = 10, threads: int = 1,
) -> dict[str, float]:  # fmt: skip
    """Accuracy and loss on ``split`` of ``arch`` (of ``space``, which may have precision genes)
    as deployed: the float subnet of ``supernet`` with BN recalibrated, and, where the arch has
    int8 blocks, those quantized and run by ONNX Runtime (:func:`int8_accuracy`)."""
    import torch

    from nas.core.precision import float_arch, int8_layers, space_dynamic
    from search_spaces.training.evaluation import evaluate_subnet, recalibrated_subnet

    floated = float_arch(space, arch)
    layers = int8_layers(space, arch)
    if not layers:
        return evaluate_subnet(supernet, floated, dataset, split, recal_batches=recal_batches)
    net = recalibrated_subnet(supernet, floated, dataset, recal_batches=recal_batches, device=torch.device("cpu"))
    return int8_accuracy(net, dataset, split, supernet.space.resolution(floated), layers, settings, threads=threads,
                         dynamic=space_dynamic(space))  # fmt: skip


__all__ = [
    "CALIBRATION_METHODS",
    "QuantSettings",
    "QuantizationError",
    "count_quantized",
    "deployed_accuracy",
    "int8_accuracy",
    "int8_runner",
    "layer_nodes",
    "module_names",
    "onnx_logits",
    "onnx_predictions",
    "quantize",
    "quantize_dynamic_int8",
    "quantize_static_qdq",
    "split_batches",
]
