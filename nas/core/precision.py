"""Numeric precision as part of an arch: the choices, their order, and the checks a space option needs.

A space with precision genes gives each elastic block a precision (``"q": [...]`` in the arch
JSON, one entry per block like ``ks`` and ``e``); an arch without ``q`` is at the largest choice
(``fp32`` where the space allows it). Precision changes no shape: the subnet is the float subnet
with some blocks run in int8, so weights, checkpoints and BN statistics are the float space's
(:meth:`float_space`), and the precision only decides how the exported model is quantized and
which latency entries it looks up (each static-config layer carries its ``precision``).

Choices, smallest (fastest where it pays, least accurate) first:

- ``int8``: ONNX Runtime static QDQ, uint8 activations, int8 weights with one scale per
  output channel (ONNX Runtime's recommendation for x86 CPUs); activation ranges calibrated.
- ``int8_dynamic``: ONNX Runtime dynamic quantization, int8 weights per output channel, the
  activations of each linear layer and convolution quantized as they come (no calibration): the
  usual CPU deployment of transformers (on the vit space's cifar preset it ran x0.63-0.95 of
  float at batch 1, where static QDQ ran x0.83-1.30). One int8 form per space: ``int8`` or
  ``int8_dynamic``, so that a subnet is quantized one way.
- ``fp32``: float32.

Layers outside the elastic blocks (stem, first block, head, classifier) stay in float32: the
first and last layers are the most sensitive to quantization and the cheapest to keep in float
(HAQ and APQ keep them at high precision too).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nas.core.arch import Arch
from nas.core.capabilities import PrecisionSpace, SupernetSpace
from nas.core.space import Gene

PRECISIONS = ("int8", "int8_dynamic", "fp32")
FLOAT = "fp32"
DYNAMIC = "int8_dynamic"
PRECISION_KEY = "q"


def check_precisions(values: Iterable[object], name: str = "precisions") -> tuple[str, ...]:
    """The precision choices of a space option in canonical order (smallest first).

    Raises:
        ValueError: for an unknown or repeated choice, naming the allowed ones.
    """
    if isinstance(values, str):
        raise ValueError(f"{name}: expected a list such as [int8, fp32], got the string {values!r}")
    given = list(values)
    unknown = [v for v in given if v not in PRECISIONS]
    if unknown:
        raise ValueError(f"{name}: unknown precision {unknown[0]!r}; choose among {list(PRECISIONS)}")
    if len(set(given)) != len(given):
        raise ValueError(f"{name}: each precision once, got {given}")
    if "int8" in given and DYNAMIC in given:
        raise ValueError(
            f"{name}: one int8 form per space, static (int8) or dynamic (int8_dynamic), got {given}; "
            "search each in its own job"
        )
    return tuple(p for p in PRECISIONS if p in given)


# ------------------------------------------------ what a space with per-block precision genes shares
def precision_genes(choices: Sequence[str], blocks: int) -> list[Gene]:
    """One ``q_<block>`` gene per elastic block (none for a float space)."""
    return [Gene(f"q_{i}", tuple(choices)) for i in range(blocks)] if choices else []


def arch_keys(keys: Sequence[str], choices: Sequence[str], data: Mapping[str, Any], space: str) -> None:
    """Refuses keys of ``data`` outside the space's ``keys`` (plus ``q`` with precision genes),
    naming the precision option when only ``q`` is extra."""
    allowed = [*keys, PRECISION_KEY] if choices else list(keys)
    extra = sorted(set(data) - set(allowed) - {"wid"})
    if extra == [PRECISION_KEY]:
        raise ValueError(
            "q: this space has no precision genes; give the space the option precisions: [int8, fp32] "
            "to search precision, or remove 'q' from the arch"
        )
    if extra:
        article = "an" if space[:1] in "aeiou" else "a"
        raise ValueError(f"unknown arch keys {extra}; {article} {space} arch has keys {allowed}")


def precision_indices(data: Mapping[str, Any], genes: Sequence[Gene], what: str) -> list[int]:
    """Gene indices of the arch's ``q`` list (``what`` describes its length); without ``q``, every
    block at the largest choice."""
    if not genes:
        return []
    qs = data.get(PRECISION_KEY, [genes[0].choices[-1]] * len(genes))
    if not isinstance(qs, (list, tuple)) or len(qs) != len(genes):
        raise ValueError(f"q: expected {len(genes)} precisions ({what}), got {qs!r}")
    return [gene.index(q, f"q[{i}] (precision)") for i, (gene, q) in enumerate(zip(genes, qs))]


class PrecisionGenes:
    """The :class:`~nas.core.capabilities.PrecisionSpace` methods of a space whose ``config`` is a
    frozen dataclass with a ``precisions`` field and whose constructor takes such a config."""

    config: Any

    @property
    def precision_choices(self) -> tuple[str, ...]:
        """The precision choices of every elastic block (empty: a float space)."""
        return tuple(self.config.precisions)

    def float_space(self) -> Any:
        """This space without precision genes: the space of the supernet and its checkpoints."""
        if not self.config.precisions:
            return self
        space_type: Any = type(self)  # a subclass whose constructor takes the config
        return space_type(dataclasses.replace(self.config, precisions=()))

    def float_arch(self, arch: Arch | Mapping[str, Any]) -> Arch:
        """The arch in :meth:`float_space` (its precisions dropped)."""
        data = self.make(arch).to_dict()  # type: ignore[attr-defined]
        data.pop(PRECISION_KEY, None)
        return self.float_space().make(data)  # type: ignore[no-any-return]


def label_layers(layers: Sequence[dict[str, Any]], precision_of: Mapping[str, str]) -> None:
    """Gives every static-config layer its ``precision`` (those not named: float), so that op
    signatures tell precisions apart."""
    for layer in layers:
        layer["precision"] = precision_of.get(layer["name"], FLOAT)


def quantized(precision: str) -> bool:
    """Whether a layer of this precision is run quantized."""
    return precision != FLOAT


def dynamic(precisions: Iterable[str]) -> bool:
    """Whether the quantized ones of these precisions are quantized dynamically (``int8_dynamic``);
    :func:`check_precisions` keeps one int8 form per space."""
    return DYNAMIC in set(precisions)


def layers_dynamic(layers: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the quantized static-config layers are quantized dynamically."""
    return dynamic(layer.get("precision", FLOAT) for layer in layers)


def space_dynamic(space: Any) -> bool:
    """Whether the int8 layers of ``space``'s archs are quantized dynamically (its one int8 form)."""
    return isinstance(space, PrecisionSpace) and dynamic(space.precision_choices)


def float_space(space: Any) -> Any:
    """The space whose supernet ``space``'s subnets take their weights from: ``space`` without
    precision genes (itself when it has none)."""
    return space.float_space() if isinstance(space, PrecisionSpace) else space


def float_arch(space: Any, arch: Arch) -> Arch:
    """``arch`` (of ``space``) in :func:`float_space`."""
    return space.float_arch(arch) if isinstance(space, PrecisionSpace) else arch


def int8_layers(space: Any, arch: Arch) -> list[str]:
    """Names of the static-config layers of ``arch`` that run quantized (none in a float space)."""
    if not isinstance(space, PrecisionSpace) or not space.precision_choices or not isinstance(space, SupernetSpace):
        return []
    return quantized_layers(space.static_config(arch))


def quantized_layers(layers: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the static-config layers that run quantized (a layer without ``precision`` is float)."""
    return [layer["name"] for layer in layers if quantized(layer.get("precision", FLOAT))]


__all__ = [
    "DYNAMIC",
    "FLOAT",
    "PRECISIONS",
    "PRECISION_KEY",
    "PrecisionGenes",
    "arch_keys",
    "check_precisions",
    "dynamic",
    "float_arch",
    "float_space",
    "int8_layers",
    "label_layers",
    "layers_dynamic",
    "precision_genes",
    "precision_indices",
    "quantized",
    "quantized_layers",
    "space_dynamic",
]
