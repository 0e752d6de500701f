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

from predictors.latency.backends import (
    LatencyBackend,
    OnnxRuntimeBackend,
    TorchBackend,
    TritonBackend,
    backend_names,
    check_backend,
    default_backend,
    latency_backend,
    measure_arch,
    measure_layer,
    triton_module,
)
from predictors.latency.build import build_table, latency_metrics, validate_table
from predictors.latency.ops import DTYPES, FORMAT_VERSION, cover_archs, layer_module, op_signatures, signature
from predictors.latency.table import ArchTimer, LatencyTable, LayerTimer
from predictors.latency.timers import combine_rounds, measure_module, measure_onnx

__all__ = [
    "DTYPES",
    "FORMAT_VERSION",
    "ArchTimer",
    "LatencyBackend",
    "LatencyTable",
    "LayerTimer",
    "OnnxRuntimeBackend",
    "TorchBackend",
    "TritonBackend",
    "backend_names",
    "build_table",
    "check_backend",
    "combine_rounds",
    "cover_archs",
    "default_backend",
    "latency_backend",
    "latency_metrics",
    "layer_module",
    "measure_arch",
    "measure_layer",
    "measure_module",
    "measure_onnx",
    "op_signatures",
    "signature",
    "triton_module",
    "validate_table",
]
