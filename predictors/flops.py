"""MACs and parameter counts of a subnet from its static config (no torch).

Each layer's cost comes from its registered layer kind (``op``); the built-in kinds follow
once-for-all's counting convention (:mod:`search_spaces.ofa_mbv3.layers`), so numbers
compare with published ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nas.core import registry


@dataclass(frozen=True)
class Cost:
    """Multiply-accumulates (per sample) and trainable parameters."""

    macs: int = 0
    params: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.macs + other.macs, self.params + other.params)


def layer_cost(layer: Mapping[str, Any]) -> Cost:
    """Cost of one static-config entry, from its registered layer kind (``registry`` kind ``layer``).

    Raises:
        ValueError: for an unknown ``op``.
    """
    op = layer["op"]
    if not isinstance(op, str) or not registry.has("layer", op):
        raise ValueError(f"op: unknown layer kind {op!r} in static config")
    macs, params = registry.load("layer", op).cost(layer)
    return Cost(int(macs), int(params))


def arch_cost(space: Any, arch: Any) -> Cost | None:
    """MACs and parameters of ``arch``, or ``None`` for a space without a static layer description."""
    try:
        config = space.static_config(arch)
    except NotImplementedError:
        return None
    return count_cost(config)


def count_cost(static_config: Iterable[Mapping[str, Any]]) -> Cost:
    """Total MACs (per sample) and parameters of a static config."""
    total = Cost()
    for layer in static_config:
        total += layer_cost(layer)
    return total
