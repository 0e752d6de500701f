"""The job spec's JSON Schema, generated from the dataclasses that parse it (:mod:`nas.job`).

The dataclasses stay the one source of truth: pydantic derives the schema from their type hints,
and this module adds what the types do not say — descriptions, closed key sets, the evaluator
block of each registered kind, and each searcher kind's settings with their defaults. ``nas spec
schema`` prints it and the service's ``/docs`` shows it as ``POST /api/jobs``'s request body.
Value checks beyond the types (ranges, a constraint's min <= max) stay in the dataclasses'
``validate`` methods; the schema documents them in the descriptions.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from typing import Any

from nas.core import registry
from nas.evaluators import PluginSpec, evaluator_kinds
from nas.job import MAX_BUDGET, MAX_NAME, MAX_PARALLELISM, JobSpec
from nas.searchers import searcher_class, searcher_kinds

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

DESCRIPTIONS: dict[str, dict[str, str]] = {
    "JobSpec": {
        "name": f"a label for the job (1 to {MAX_NAME} characters)",
        "space": "the search space: a registered name (`nas spaces` lists them), a preset and options",
        "evaluator": "how an arch gets its metrics; `kind` picks the evaluator, the other keys are its own",
        "objectives": "metrics to optimise, each min or max (at least one; each metric once)",
        "constraints": "bounds an arch must meet to be feasible (min and/or max per metric)",
        "searcher": "the search algorithm and its settings",
        "budget": "when the search stops: a number of evaluations and/or a wall time",
        "seed": "seeds every random choice of the search (0 <= seed < 2**32)",
        "parallelism": f"evaluations in flight at once (1 to {MAX_PARALLELISM})",
        "executor": "auto (in-process for table lookups, Ray for parallel jobs that do real work), ray or local",
        "reference": "the hypervolume's reference point, one value per objective metric; default: fixed for the "
        "job from each objective's constraint bound, else its worst value over the space where the evaluator "
        "computes it cheaply (MACs, table latency), else the first 10 trials (0 for a fraction to maximise); "
        "recorded in the job, so its hypervolume never decreases",
        "allow_invalid": "also propose archs the space marks invalid (NB201 cells with no input-to-output path)",
        "cpus_per_trial": "CPUs Ray reserves per evaluation (0 < x <= 1024)",
        "optuna_study": "copy every trial into the Optuna study nas-<job id> in the store's database, so "
        "optuna-dashboard shows the job (about 10 ms per trial on SQLite)",
    },
    "SpaceRef": {
        "name": "registered space name (`nas spaces`)",
        "config": "the space's preset, e.g. `imagenet` or `cifar` for ofa_mbv3",
        "options": "keyword options of the space's factory",
    },
    "ObjectiveSpec": {
        "metric": "metric name: accuracy, macs, params, or latency_ms@<device>",
        "direction": "max to maximise, min to minimise",
    },
    "ConstraintSpec": {"metric": "metric name", "min": "lower bound (inclusive)", "max": "upper bound (inclusive)"},
    "SearcherSpec": {"kind": "searcher kind", "settings": "the kind's settings; unknown keys are errors"},
    "BudgetSpec": {
        "evaluations": f"stop after this many evaluations (1 to {MAX_BUDGET:.0e})",
        "wall_time_s": "stop after this many seconds",
    },
}


def _json_type(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, dict):
        return {"type": "object"}
    if isinstance(value, (list, tuple)):
        return {"type": "array"}
    return {}


def _close(schema: dict[str, Any]) -> None:
    """Every object with listed properties refuses other keys, as the parser does."""
    if (
        schema.get("type") == "object"
        and isinstance(schema.get("properties"), dict)
        and "additionalProperties" not in schema
    ):
        schema["additionalProperties"] = False
    for value in schema.values():
        if isinstance(value, dict):
            _close(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    _close(item)


def _dataclass_schema(cls: type) -> dict[str, Any]:
    from pydantic import TypeAdapter

    schema: dict[str, Any] = TypeAdapter(cls).json_schema()
    for name, text in DESCRIPTIONS.get(cls.__name__, {}).items():
        if name in schema.get("properties", {}):
            schema["properties"][name]["description"] = text
    return schema


def _evaluator_schemas() -> list[dict[str, Any]]:
    """One schema per registered evaluator kind, told apart by ``kind``."""
    out = []
    for kind in evaluator_kinds():
        try:
            factory = registry.load("evaluator", kind)
        except registry.RegistryError:
            continue  # an installed plug-in that does not import: `nas search` names the error
        spec_cls = getattr(factory, "spec_class", PluginSpec)
        one = _dataclass_schema(spec_cls)
        one["properties"]["kind"] = {"const": kind}
        one["title"] = f"evaluator {kind}"
        doc = inspect.getdoc(factory)
        if doc:
            one["description"] = doc.split("\n\n")[0]
        if getattr(factory, "names_code", False):
            one["description"] = one.get("description", "") + " (names code to import: the CLI only, not the service)"
        paths = getattr(spec_cls, "paths", ())
        for name in paths:
            if name in one["properties"]:
                one["properties"][name]["description"] = (
                    "a file or folder; relative paths resolve against the spec file's folder"
                )
        out.append(one)
    return out


def _settings(kind: str) -> dict[str, Any]:
    """The settings a searcher kind takes, typed by their defaults; open if the kind cannot say."""
    try:
        cls = searcher_class(kind)
        defaults = cls.defaults()
    except Exception:
        return {"type": "object"}
    properties = {name: {**_json_type(value), "default": value} for name, value in defaults.items()}
    for name, (low, high) in cls.setting_bounds().items():
        properties[name].update(minimum=low, maximum=high)
    return {"type": "object", "properties": properties, "additionalProperties": False}


def _size_bounds_text() -> str:
    """The bounds on the built-in spaces' options that size a network, as one sentence."""
    from search_spaces.ofa_mbv3.config import SIZE_BOUNDS as MBV3
    from search_spaces.ofa_resnet50.config import SIZE_BOUNDS as RESNET
    from search_spaces.vit.config import SIZE_BOUNDS as VIT

    def listed(bounds: dict[str, float]) -> str:
        return ", ".join(f"{name} <= {high:g}" for name, high in bounds.items())

    return (
        f"; options that size a network are bounded (each entry of a list): ofa_mbv3 {listed(MBV3)}; "
        f"ofa_resnet50 {listed(RESNET)}; vit {listed(VIT)}; the HTTP service also bounds the largest "
        "subnet's parameters "
        "and MACs (`nas serve --max-params/--max-macs`)"
    )


def _kind_is(kind: str, default: bool) -> dict[str, Any]:
    """``if`` clause: the block's kind is ``kind`` (or, for the default kind, not given)."""
    given = {"properties": {"kind": {"const": kind}}, "required": ["kind"]}
    return {"anyOf": [given, {"not": {"required": ["kind"]}}]} if default else given


def job_schema() -> dict[str, Any]:
    """The JSON Schema of a job spec (YAML or JSON), for editors, ``nas spec schema`` and ``/docs``."""
    schema = _dataclass_schema(JobSpec)
    defs = schema.setdefault("$defs", {})
    for name, entry in defs.items():
        for field_name, text in DESCRIPTIONS.get(name, {}).items():
            if field_name in entry.get("properties", {}):
                entry["properties"][field_name]["description"] = text
    evaluators = _evaluator_schemas()
    for one in evaluators:  # lift each kind's own $defs (none today) into the document's
        defs.update(one.pop("$defs", {}))
    schema["properties"]["evaluator"] = {
        "description": DESCRIPTIONS["JobSpec"]["evaluator"],
        "oneOf": evaluators,
    }
    defs["SpaceRef"]["properties"]["options"]["description"] += _size_bounds_text()
    searcher = defs["SearcherSpec"]
    kinds = searcher_kinds()
    searcher["properties"]["kind"]["enum"] = kinds
    searcher["allOf"] = [
        {
            "if": _kind_is(kind, default=kind == "evolution"),
            "then": {"properties": {"settings": _settings(kind)}},
        }
        for kind in kinds
    ]
    _close(schema)
    schema["$schema"] = SCHEMA_DIALECT
    schema["title"] = "hwnas job spec"
    schema["description"] = (
        "A search job for `nas search SPEC.yaml` and `POST /api/jobs`: the space, how archs are evaluated, "
        "the objectives and constraints, the searcher and the budget."
    )
    return copy.deepcopy(schema)


def schema_fields(cls: type) -> list[str]:
    """The keys the parser takes for dataclass ``cls`` (for checking the schema never drifts)."""
    return [f.name for f in dataclasses.fields(cls) if f.init]


__all__ = ["job_schema", "schema_fields"]
