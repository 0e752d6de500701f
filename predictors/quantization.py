"""Post-training static int8 quantization of an exported subnet, as ONNX Runtime deploys it.

The float ONNX model goes through ONNX Runtime's pre-processing (symbolic shape inference and
graph optimisation, which folds batch norms: without it the int8 model was 2.5x *slower* than
float at batch 1 on this CPU) and then :func:`onnxruntime.quantization.quantize_static` in the
QDQ format with the choices ONNX Runtime recommends for x86 CPUs: uint8 activations, int8
weights, per output channel by default. Calibration batches are held-out training images, never
the test split. Accuracy is measured by running the quantized model itself in ONNX Runtime, so
it is what the deployed file does, not a simulation.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
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

    def record(self) -> dict[str, Any]:
        """What a manifest records about the quantization (with the runtime's choices)."""
        return {
            **asdict(self),
            "format": "QDQ",
            "activations": "uint8",
            "weights": "int8 per channel" if self.per_channel else "int8 per tensor",
            "runtime": f"onnxruntime {_ort().__version__}",
        }


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


def quantize_static_qdq(model: bytes, calibration: Iterable[np.ndarray], settings: QuantSettings) -> bytes:
    """The int8 (QDQ) version of the float ONNX model ``model`` (input ``x``), calibrated on ``calibration``.

    Raises:
        QuantizationError: when there is no calibration data.
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
    with tempfile.TemporaryDirectory(prefix="hwnas-quant-") as tmp:
        fp32, prepared, int8 = Path(tmp, "fp32.onnx"), Path(tmp, "prepared.onnx"), Path(tmp, "int8.onnx")
        fp32.write_bytes(model)
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=False)
        quantize_static(
            str(prepared),
            str(int8),
            _Batches(batches),
            quant_format=QuantFormat.QDQ,
            per_channel=settings.per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=method,
        )
        return int8.read_bytes()


def count_quantized(model: bytes) -> dict[str, int]:
    """How many QuantizeLinear / DequantizeLinear nodes, and of all nodes, a model has."""
    onnx = import_extra("onnx", "export", "reading an ONNX model")
    proto = onnx.load_from_string(model)
    ops = [n.op_type for n in proto.graph.node]
    return {"quantize": ops.count("QuantizeLinear"), "dequantize": ops.count("DequantizeLinear"), "nodes": len(ops)}


def onnx_predictions(model: bytes, batches: Iterable[np.ndarray], threads: int = 1) -> np.ndarray:
    """Top-1 class of every image of ``batches``, from ONNX Runtime running ``model``."""
    from predictors.onnx_backend import ort_session

    session = ort_session(model, threads)
    out = [session.run(["y"], {"x": np.ascontiguousarray(b, dtype=np.float32)})[0].argmax(1) for b in batches]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


__all__ = [
    "CALIBRATION_METHODS",
    "QuantSettings",
    "QuantizationError",
    "count_quantized",
    "onnx_predictions",
    "quantize_static_qdq",
]
