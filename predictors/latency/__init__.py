"""Latency lookup tables measured on the target device, their validation and correction.

A table holds, for one (space, device, dtype, batch size), the measured latency of
every distinct op signature of the space: a static-config layer without its name
(op kind, shapes, kernel, stride, expand, SE, activation). ``lookup(arch)`` sums the
entries over ``static_config(arch)``. Ops run in isolation miss what a whole
network adds (framework overhead between layers, cache effects), so a build also
measures a few whole subnets and fits a small correction (ridge on the table sum
and layer counts); ``predict`` applies it, ``lookup`` does not, and validation
reports both.

Entries are measured with the runtime the model is deployed with (the table records
its ``source``): torch eager (inference mode; the CPU default), ONNX Runtime
(``onnxruntime``, CPU float32, each layer exported and run in its own session),
``torch-compile`` (Inductor, CPU or CUDA), and on CUDA our Triton kernels (``triton``,
the CUDA default: MBConv blocks and 1x1 convolutions; torch for the rest) and
``cuda-graph`` (the subnet captured in one CUDA graph, ops timed back to back in a graph
with warm L2). Eager torch on CUDA is launch-bound for small ops: its table stores each
op's GPU time and kernel count and replays the launch queue with the host's measured
launch cost (:mod:`predictors.latency.stream`) instead of summing. The correction is
chosen among a scale, ``linear`` and ``physics`` features (sum, MACs, kernel launches)
by leave-one-out on the calibration subnets; validation reports how many it needed.
"""

from predictors.latency.backends import (
    CudaGraphBackend,
    LatencyBackend,
    OnnxRuntimeBackend,
    TorchBackend,
    TorchCompileBackend,
    TritonBackend,
    backend_names,
    check_backend,
    default_backend,
    latency_backend,
    measure_arch,
    measure_layer,
    triton_module,
)
from predictors.latency.build import build_table, calibration_curve, latency_metrics, validate_table
from predictors.latency.ops import DTYPES, FORMAT_VERSION, cover_archs, layer_module, op_signatures, signature
from predictors.latency.stream import count_kernels, launch_cost_ms, stream_latency
from predictors.latency.table import ArchTimer, LatencyTable, LayerTimer
from predictors.latency.timers import combine_rounds, measure_module, measure_onnx

__all__ = [
    "DTYPES",
    "FORMAT_VERSION",
    "ArchTimer",
    "CudaGraphBackend",
    "LatencyBackend",
    "LatencyTable",
    "LayerTimer",
    "OnnxRuntimeBackend",
    "TorchBackend",
    "TorchCompileBackend",
    "TritonBackend",
    "backend_names",
    "build_table",
    "calibration_curve",
    "check_backend",
    "combine_rounds",
    "count_kernels",
    "cover_archs",
    "default_backend",
    "latency_backend",
    "latency_metrics",
    "launch_cost_ms",
    "layer_module",
    "measure_arch",
    "measure_layer",
    "measure_module",
    "measure_onnx",
    "op_signatures",
    "signature",
    "stream_latency",
    "triton_module",
    "validate_table",
]
