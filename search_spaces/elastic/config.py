"""The config side of an elastic family: a frozen dataclass of macro-architecture and elastic
choices, serialised as JSON-friendly dicts, identified by a short fingerprint, and looked up by
preset name with overrides."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

C = TypeVar("C", bound="ElasticConfig")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Rounds a channel count to a multiple of ``divisor`` (never more than 10% down).

    Same rule as once-for-all's and timm's ``make_divisible`` (a test checks against timm's);
    kept here so that space definitions do not import torch.
    """
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def positive_ints(name: str, values: tuple[int, ...]) -> None:
    """Raises unless ``values`` is a non-empty tuple of positive integers."""
    if not values or any(not isinstance(v, int) or isinstance(v, bool) or v <= 0 for v in values):
        raise ValueError(f"{name}: expected positive integers, got {list(values)}")


def positive_int(name: str, value: Any) -> None:
    """Raises unless ``value`` is a positive integer."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name}: must be a positive integer, got {value!r}")


def ascending(name: str, values: tuple[Any, ...], minimum: float, *, integer: bool = False) -> None:
    """Raises unless ``values`` is non-empty, strictly ascending, and every entry a number (an
    integer with ``integer``) of at least ``minimum``."""
    if not values:
        raise ValueError(f"{name}: must not be empty")
    kinds = (int,) if integer else (int, float)
    if any(isinstance(v, bool) or not isinstance(v, kinds) or v < minimum for v in values):
        what = "integers" if integer else "numbers"
        raise ValueError(f"{name}: entries must be {what} >= {minimum}, got {list(values)}")
    if list(values) != sorted(set(values)):
        raise ValueError(f"{name}: entries must be strictly ascending, got {list(values)}")


class ElasticConfig:
    """Serialisation of a family's frozen config dataclass (mixed into it).

    ``family`` names the space in error messages; ``later_fields`` are fields added after the
    family's first release, hashed into :meth:`fingerprint` only when they differ from their
    default, so that the space ids of runs made before stay as they were.
    """

    family: ClassVar[str] = ""
    later_fields: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.family} config keys {unknown}; known keys: {sorted(known)}")
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)

    def fingerprint(self) -> str:
        """Short hash of everything but the name."""
        data = self.to_dict()
        data.pop("name")
        defaults = type(self)().to_dict()
        for later in self.later_fields:
            if data[later] == defaults[later]:
                data.pop(later)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]


class StagedConfig(ElasticConfig):
    """A config of stages of blocks (the convolutional families): offsets and counts derived from
    ``stage_blocks``, the blocks built per stage."""

    @property
    def stage_blocks(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def stage_offsets(self) -> tuple[int, ...]:
        """Index of each stage's first block among all elastic blocks."""
        offsets, total = [], 0
        for blocks in self.stage_blocks:
            offsets.append(total)
            total += blocks
        return tuple(offsets)

    @property
    def num_blocks(self) -> int:
        return sum(self.stage_blocks)


def resolve_config(cls: type[C], presets: Mapping[str, C], config: str | C | Mapping[str, Any], **overrides: Any) -> C:
    """A preset by name (or a config / dict), with keyword overrides applied.

    Raises:
        ValueError: for an unknown preset or an unknown / invalid field.
    """
    if isinstance(config, cls):
        base = config
    elif isinstance(config, str):
        if config not in presets:
            raise ValueError(f"config: unknown {cls.family} preset {config!r}; choose one of {sorted(presets)}")
        base = presets[config]
    elif isinstance(config, Mapping):
        base = cls.from_dict(config)
    else:
        raise ValueError(f"config: expected a preset name or a mapping, got {type(config).__name__}")
    if not overrides:
        return base
    data = base.to_dict()
    data.update({k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()})
    return cls.from_dict(data)
