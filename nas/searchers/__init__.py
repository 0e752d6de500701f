"""Search algorithms behind one ask/tell interface (see :mod:`nas.searchers.base`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nas.core import registry
from nas.core.config import short_repr
from nas.core.pareto import Constraint, Objective
from nas.core.space import SearchSpace
from nas.searchers.base import Observation, Searcher, Trial


def searcher_kinds() -> list[str]:
    """Built-in searcher kinds, then those registered or installed as plug-ins (:mod:`nas.core.registry`)."""
    return registry.names("searcher")


def searcher_class(kind: str) -> type[Searcher]:
    """The class of a registered searcher kind."""
    if not registry.has("searcher", kind):
        raise ValueError(f"searcher: unknown kind {short_repr(kind)}; known: {', '.join(searcher_kinds())}")
    cls = registry.load("searcher", kind)
    if not (isinstance(cls, type) and issubclass(cls, Searcher)):
        raise ValueError(f"searcher {kind!r} is not a Searcher subclass")
    return cls


def create_searcher(
    kind: str,
    space: SearchSpace,
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint] = (),
    seed: int = 0,
    settings: Mapping[str, Any] | None = None,
    allow_invalid: bool = False,
    **context: Any,
) -> Searcher:
    """A searcher by kind with its settings.

    ``allow_invalid``: also propose archs the space marks invalid (``invalid_reason``).
    ``context`` holds what the runner can offer (``storage``, ``study_name``, ``cheap``,
    ``cheap_metrics``); each searcher gets the entries its constructor names.
    """
    cls = searcher_class(kind)
    accepted, _, _ = registry.accepted_settings(cls)
    offered = {k: v for k, v in context.items() if k in accepted}
    extra = {"allow_invalid": True} if allow_invalid else {}  # the default needs nothing of plug-ins
    return cls(space, objectives, constraints, seed, **extra, **offered, **dict(settings or {}))


__all__ = ["Observation", "Searcher", "Trial", "create_searcher", "searcher_class", "searcher_kinds"]
