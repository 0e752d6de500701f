"""Plug-ins installed on this machine, found through Python entry points (one group per kind).

A package adds a space, evaluator or searcher by declaring an entry point, for example in
its ``pyproject.toml``::

    [project.entry-points."hwnas.spaces"]
    myspace = "mypkg.space:MySpace"

    [project.entry-points."hwnas.evaluators"]
    mylab = "mypkg.evaluate:make_evaluator"      # called as factory(space=..., **options)

    [project.entry-points."hwnas.searchers"]
    mysearch = "mypkg.search:MySearcher"

A job spec then names it like a built-in (``space: {name: myspace}``,
``evaluator: {kind: mylab, options: {...}}``, ``searcher: {kind: mysearch}``). This is the
only way the HTTP service runs code that is not ours: a request names an installed plug-in,
never a module. Built-in names always win over a plug-in of the same name.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

GROUPS = {
    "space": "hwnas.spaces",
    "evaluator": "hwnas.evaluators",
    "searcher": "hwnas.searchers",
}


class PluginError(ValueError):
    """A plug-in is unknown, or cannot be loaded."""


def _group(kind: str) -> str:
    if kind not in GROUPS:
        raise PluginError(f"plug-in kind {kind!r} is not one of {sorted(GROUPS)}")
    return GROUPS[kind]


def _entry_points(kind: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=_group(kind))}


def plugin_names(kind: str) -> list[str]:
    """Names of the installed plug-ins of ``kind`` (``space``, ``evaluator``, ``searcher``)."""
    return sorted(_entry_points(kind))


def has_plugin(kind: str, name: str) -> bool:
    return name in _entry_points(kind)


def load_plugin(kind: str, name: str) -> Any:
    """The object an installed entry point names.

    Raises:
        PluginError: when no plug-in of that name is installed, or its import fails.
    """
    found = _entry_points(kind).get(name)
    if found is None:
        raise PluginError(f"no {kind} plug-in {name!r} is installed (entry point group {GROUPS[kind]!r})")
    try:
        return found.load()
    except Exception as exc:  # an installed plug-in that is broken: say which
        raise PluginError(f"{kind} plug-in {name!r} ({found.value}) cannot be loaded: {type(exc).__name__}") from exc


__all__ = ["GROUPS", "PluginError", "has_plugin", "load_plugin", "plugin_names"]
