"""Bounded parsing of user documents (YAML, JSON) and bounded values inside them.

A job spec may come from a file a user wrote or from a request anyone on the network
sent, so parsing refuses instead of expanding: a YAML alias bomb or a document nested
thousands deep is rejected from its event stream before any Python object is built,
JSON's ``NaN``/``Infinity`` literals are refused, and :func:`check_values` bounds every
string, number, depth and node count with an error naming the key path. No torch import.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from nas.core.errors import ConfigError

# libyaml's parser where PyYAML was built with it (the wheels are): linear and about ten times
# faster than the pure-Python one, which stays the fallback. Same safe constructors either way.
_YAML_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DocumentSyntaxError(ConfigError):
    """The text is not valid YAML/JSON (as opposed to valid but out of bounds)."""


@dataclass(frozen=True)
class InputLimits:
    """Bounds on one submitted document (a job spec, a config file).

    Attributes:
        max_bytes: Size of the document's text.
        max_depth: Nesting of mappings and lists (after YAML aliases are expanded).
        max_nodes: Scalars, mappings and lists in the document (after alias expansion).
        max_aliases: YAML alias references (``*name``).
        max_string: Length of any string (keys included).
        max_int: Largest magnitude of any integer (JSON's exact-integer range).
    """

    max_bytes: int = 1 << 20
    max_depth: int = 32
    max_nodes: int = 20_000
    max_aliases: int = 100
    max_string: int = 4096
    max_int: int = 2**53


DEFAULT_LIMITS = InputLimits()


def _scan_yaml(text: str, limits: InputLimits) -> None:
    """Walks the YAML event stream (no objects built) and refuses documents past ``limits``.

    Aliases count as the subtree they stand for, so ``depth`` and ``nodes`` are those of the
    document a loader would build; an alias to a collection that is still open (a recursive
    document) is refused.
    """
    sizes: dict[str, tuple[int, int]] = {}  # anchor -> (nodes, depth) of its expanded subtree
    stack: list[list[Any]] = []  # [anchor, nodes so far, deepest child depth]
    open_anchors: set[str] = set()
    total = 0
    aliases = 0

    def add(nodes: int, depth: int) -> None:
        nonlocal total
        total += nodes
        if total > limits.max_nodes:
            raise ConfigError(f"document: more than {limits.max_nodes} values (YAML aliases count expanded)")
        if len(stack) + depth > limits.max_depth:
            raise ConfigError(f"document: nested deeper than {limits.max_depth} levels")
        if stack:
            stack[-1][1] += nodes
            stack[-1][2] = max(stack[-1][2], depth)

    for event in yaml.parse(text, Loader=_YAML_LOADER):
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > limits.max_aliases:
                raise ConfigError(f"document: more than {limits.max_aliases} YAML aliases")
            anchor = event.anchor
            if anchor in open_anchors:
                raise ConfigError(f"document: YAML alias *{anchor} refers to itself (a recursive document)")
            if anchor not in sizes:
                raise ConfigError(f"document: YAML alias *{anchor} has no anchor")
            add(*sizes[anchor])
        elif isinstance(event, yaml.ScalarEvent):
            if len(event.value) > limits.max_string:
                raise ConfigError(f"document: a value is longer than {limits.max_string} characters")
            add(1, 0)
            if event.anchor:
                sizes[event.anchor] = (1, 0)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(stack) + 1 > limits.max_depth:
                raise ConfigError(f"document: nested deeper than {limits.max_depth} levels")
            if event.anchor:
                open_anchors.add(event.anchor)
            stack.append([event.anchor, 1, 0])
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            anchor, nodes, child_depth = stack.pop()
            if anchor:
                open_anchors.discard(anchor)
                sizes[anchor] = (nodes, child_depth + 1)
            add(nodes, child_depth + 1)


def load_yaml_text(text: str, limits: InputLimits = DEFAULT_LIMITS, what: str = "document") -> Any:
    """``yaml.safe_load`` of ``text`` after checking it against ``limits``.

    Raises:
        ConfigError: naming what is wrong (too large, too deep, too many aliases, invalid YAML).
    """
    if len(text.encode("utf-8", errors="replace")) > limits.max_bytes:
        raise ConfigError(f"{what}: larger than {limits.max_bytes} bytes")
    try:
        _scan_yaml(text, limits)
        return yaml.load(text, Loader=_YAML_LOADER)  # a safe loader (C or Python)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("document", what, 1)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise DocumentSyntaxError(f"{what}: invalid YAML{where}: {problem}") from None


# A string, or the rest of the text after an unclosed quote: the optional closing quote means a
# match never fails once it has started, so stripping strings is one left-to-right pass (an
# unclosed string cannot make the engine retry from every later quote, which was quadratic).
_JSON_STRING = re.compile(r'"(?:[^"\\]+|\\.)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` outside strings in ``text``, in time linear in its length."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(itertools.accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)


def _refuse_constant(name: str) -> float:
    raise ConfigError(f"document: {name} is not a number JSON allows; use a finite number")


def load_json_text(text: str, limits: InputLimits = DEFAULT_LIMITS, what: str = "document") -> Any:
    """``json.loads`` of ``text`` after checking its size and nesting; ``NaN``/``Infinity`` refused."""
    if len(text.encode("utf-8", errors="replace")) > limits.max_bytes:
        raise ConfigError(f"{what}: larger than {limits.max_bytes} bytes")
    if json_depth(text) > limits.max_depth:
        raise ConfigError(f"{what}: nested deeper than {limits.max_depth} levels")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("document", what, 1)) from None
    except json.JSONDecodeError as exc:
        raise DocumentSyntaxError(f"{what}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def check_sizes(bounds: Mapping[str, float], values: Any, what: str = "") -> None:
    """Refuses an option that sizes a network past its bound: ``bounds`` maps an attribute of
    ``values`` (a number or a sequence of numbers) to its largest allowed value.

    Raises:
        ValueError: naming the option, its bound and the value given.
    """
    for name, high in bounds.items():
        value = getattr(values, name)
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(item, (int, float)) and not isinstance(item, bool) and item > high:
                raise ValueError(f"{what}{name}: at most {high:g} (got {item:g}); larger networks are not supported")


def check_values(data: Any, limits: InputLimits = DEFAULT_LIMITS, path: str = "") -> None:
    """Refuses values past ``limits`` anywhere in ``data``, naming the key path.

    Numbers must be finite and integers within ``max_int``; strings (keys too) at most
    ``max_string`` long; nesting and the number of values bounded. Iterative, so a deep
    document cannot exhaust the interpreter's stack.
    """
    todo: list[tuple[str, Any, int]] = [(path, data, 0)]
    nodes = 0
    while todo:
        where, value, depth = todo.pop()
        label = where or "document"
        nodes += 1
        if nodes > limits.max_nodes:
            raise ConfigError(f"{path or 'document'}: more than {limits.max_nodes} values")
        if depth > limits.max_depth:
            raise ConfigError(f"{label}: nested deeper than {limits.max_depth} levels")
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            if abs(value) > limits.max_int:
                raise ConfigError(f"{label}: integer out of range (|value| <= {limits.max_int})")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ConfigError(f"{label}: {value} is not a finite number")
        elif isinstance(value, str):
            if len(value) > limits.max_string:
                raise ConfigError(f"{label}: longer than {limits.max_string} characters")
        elif isinstance(value, Mapping):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise ConfigError(f"{label}: keys must be strings")
                if len(k) > limits.max_string:
                    raise ConfigError(f"{label}: a key is longer than {limits.max_string} characters")
                todo.append((f"{where}.{k}" if where else k, v, depth + 1))
        elif isinstance(value, (list, tuple)):
            todo.extend((f"{label}[{i}]", v, depth + 1) for i, v in enumerate(value))
        else:
            raise ConfigError(f"{label}: unsupported value of type {type(value).__name__}")


__all__ = [
    "DEFAULT_LIMITS", "DocumentSyntaxError", "InputLimits", "check_sizes", "check_values", "json_depth",
    "load_json_text", "load_yaml_text",
]  # fmt: skip
