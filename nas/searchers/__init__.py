"""Search algorithms behind one ask/tell interface (see :mod:`nas.searchers.base`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from nas.core.pareto import Constraint, Objective
from nas.core.plugins import has_plugin, load_plugin, plugin_names
from nas.core.space import SearchSpace
from nas.searchers.base import Observation, Searcher, Trial

# kind -> "module:class"; imported on use so that pymoo/optuna load only when needed.
SEARCHERS: Mapping[str, str] = MappingProxyType(
    {
        "random": "nas.searchers.simple:RandomSearcher",
        "evolution": "nas.searchers.simple:EvolutionSearcher",
        "nsga2": "nas.searchers.pymoo_nsga2:PymooNSGA2Searcher",
        "tpe": "nas.searchers.optuna_searcher:OptunaTPESearcher",
        "gp": "nas.searchers.optuna_searcher:OptunaGPSearcher",
        "optuna-nsga2": "nas.searchers.optuna_searcher:OptunaNSGA2Searcher",
        "predictor": "nas.searchers.predictor_loop:PredictorLoopSearcher",
    }
)
# Extra constructor arguments each kind accepts from the job runner (not user settings).
CONTEXT_ARGS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "tpe": ("storage", "study_name"),
        "gp": ("storage", "study_name"),
        "optuna-nsga2": ("storage", "study_name"),
        "predictor": ("cheap", "cheap_metrics"),
    }
)


def searcher_kinds() -> list[str]:
    """Built-in searcher kinds, then the ``hwnas.searchers`` plug-ins installed here."""
    return [*SEARCHERS, *(k for k in plugin_names("searcher") if k not in SEARCHERS)]


def searcher_class(kind: str) -> type[Searcher]:
    """The class of a built-in searcher kind or of an installed searcher plug-in."""
    import importlib

    if kind in SEARCHERS:
        module, name = SEARCHERS[kind].split(":")
        return getattr(importlib.import_module(module), name)
    if has_plugin("searcher", kind):
        cls = load_plugin("searcher", kind)
        if not (isinstance(cls, type) and issubclass(cls, Searcher)):
            raise ValueError(f"searcher plug-in {kind!r} is not a Searcher subclass")
        return cls
    raise ValueError(f"searcher: unknown kind {kind[:80]!r}; known: {', '.join(searcher_kinds())}")


def create_searcher(
    kind: str,
    space: SearchSpace,
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint] = (),
    seed: int = 0,
    settings: Mapping[str, Any] | None = None,
    **context: Any,
) -> Searcher:
    """A searcher by kind; ``context`` entries the kind does not take are ignored."""
    cls = searcher_class(kind)
    accepted = {k: v for k, v in context.items() if k in CONTEXT_ARGS.get(kind, ())}
    return cls(space, objectives, constraints, seed, **accepted, **dict(settings or {}))


__all__ = ["SEARCHERS", "Observation", "Searcher", "Trial", "create_searcher", "searcher_class", "searcher_kinds"]
