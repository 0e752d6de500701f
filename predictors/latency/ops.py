"""The op cover of a space: layer signatures, the archs that hold every op, and one layer as a module."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from nas.core import registry
from nas.core.arch import Arch
from nas.core.capabilities import LatencyCoverSpace
from nas.core.space import SearchSpace

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


def _torch_dtype(dtype: str) -> Any:
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype: use one of {DTYPES}, got {dtype!r}")
    return getattr(torch, dtype)


def layer_module(layer: Mapping[str, Any]) -> tuple[Any, tuple[int, ...]]:
    """A module computing one static-config layer, and its input shape (without batch), from its registered kind."""
    op = layer["op"]
    if not isinstance(op, str) or not registry.has("layer", op):
        raise ValueError(f"op: no latency module for layer kind {op!r}")
    module, shape = registry.load("layer", op).module(layer)
    return module, tuple(shape)
