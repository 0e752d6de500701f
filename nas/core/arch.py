"""Immutable, hashable description of one subnet.

An :class:`Arch` is what every other part of the system passes around: searchers
propose them, evaluators score them, the store keys trials by ``arch_id``. It
holds the *canonical* JSON form produced by its search space, so two dicts that
describe the same network (for example differing only in the settings of blocks
that depth skips) produce the same ``Arch`` and the same ``arch_id``.

This module imports nothing heavy (no torch): it is part of nas.core (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def canonical_json(data: Mapping[str, Any]) -> str:
    """Serialises a mapping deterministically (sorted keys, no whitespace)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Arch:
    """One architecture of a search space.

    Do not build this directly from user input: call ``space.make(dict)``, which
    validates and canonicalises. Equality and hashing use the space id and the
    canonical JSON.

    Attributes:
        space_id: Identifier of the space (and configuration) the arch belongs to,
            for example ``"ofa_mbv3/imagenet"``.
        json_str: Canonical JSON of the arch's values.
    """

    space_id: str
    json_str: str
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def from_canonical(cls, space_id: str, data: Mapping[str, Any]) -> Arch:
        """Wraps an already canonical mapping (used by search spaces)."""
        return cls(space_id=space_id, json_str=canonical_json(data))

    @property
    def arch_id(self) -> str:
        """Stable 16-hex-digit id: SHA-256 of the space id and canonical JSON."""
        if "id" not in self._cache:
            digest = hashlib.sha256(f"{self.space_id}|{self.json_str}".encode()).hexdigest()
            self._cache["id"] = digest[:16]
        return str(self._cache["id"])

    def to_dict(self) -> dict[str, Any]:
        """A fresh (mutable) copy of the arch's values."""
        data: dict[str, Any] = json.loads(self.json_str)
        return data

    def to_json(self) -> str:
        """The canonical JSON string."""
        return self.json_str

    def __getitem__(self, key: str) -> Any:
        if "dict" not in self._cache:
            self._cache["dict"] = json.loads(self.json_str)
        value = self._cache["dict"][key]
        return list(value) if isinstance(value, list) else value

    def __repr__(self) -> str:
        return f"Arch({self.space_id!r}, {self.json_str})"
