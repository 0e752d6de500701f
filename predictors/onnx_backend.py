"""Latency on ONNX Runtime: a module exported to ONNX and run by an ORT CPU session.

For models deployed as ONNX files, the runtime that serves them is ONNX Runtime, whose graph
optimisations (conv + BN + activation fusion, layout choices) make its per-layer costs differ
from torch eager's; a table for such a deployment has to be measured on it. Nothing is
imported at module import (onnx, onnxruntime and the exporter load on first use).
"""

from __future__ import annotations

import io
import logging
import warnings
from typing import Any

from nas.core.extras import import_extra, require_extra

logger = logging.getLogger(__name__)


def _as_module(fn: Any) -> Any:
    from torch import nn

    if isinstance(fn, nn.Module):
        return fn

    class _Call(nn.Module):
        def forward(self, x: Any) -> Any:
            return fn(x)

    return _Call()


def export_onnx(module: Any, example: Any, dynamic_batch: bool = False) -> bytes:
    """``module`` (an ``nn.Module`` or a callable of one tensor) as an ONNX model with input ``x``, output ``y``.

    Uses the TorchScript exporter (fast: ~0.3 s for a whole subnet) and falls back to the
    ``dynamo`` exporter where this torch no longer has it. ``dynamic_batch``: the first axis
    of ``x`` and ``y`` is left free (for deployment); otherwise shapes are those of ``example``.
    """
    import torch

    require_extra("export", "ONNX export")

    model = _as_module(module).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            axes = {"x": {0: "batch"}, "y": {0: "batch"}} if dynamic_batch else None
            torch.onnx.export(  # the stubs omit file objects, which export writes to as to files
                model, (example,), buf, dynamo=False, dynamic_axes=axes, input_names=["x"],
                output_names=["y"],
            )  # fmt: skip
        except (TypeError, RuntimeError, NotImplementedError) as err:
            logger.info("TorchScript ONNX export unavailable (%s); using the dynamo exporter", err)
            buf = io.BytesIO()
            shapes = {"x": {0: torch.export.Dim("batch")}} if dynamic_batch else None
            torch.onnx.export(
                model, (example,), buf, dynamo=True, dynamic_shapes=shapes, input_names=["x"],
                output_names=["y"],
            )  # fmt: skip
    return buf.getvalue()


def ort_session(model: bytes, threads: int) -> Any:
    """An ONNX Runtime CPU session with all graph optimisations and ``threads`` intra-op threads."""
    try:
        ort = import_extra("onnxruntime", "export", "ONNX Runtime timing and export checks")
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise RuntimeError("backend onnxruntime needs the onnxruntime package: pip install onnxruntime") from err
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def onnx_runner(module: Any, example: Any, model: bytes | None = None) -> Any:
    """A zero-argument callable running ``module`` (or its already exported ``model``) on
    ``example`` in ONNX Runtime (same threads as torch)."""
    import torch

    session = ort_session(model if model is not None else export_onnx(module, example), torch.get_num_threads())
    feed = {"x": example.detach().cpu().numpy()}
    return lambda: session.run(None, feed)
