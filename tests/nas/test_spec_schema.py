"""The job spec's JSON Schema: generated from the parser's dataclasses, so it cannot drift from
what ``nas search`` accepts; `nas spec schema|check`; every CLI option documented."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from nas.cli import build_parser, main
from nas.core import registry
from nas.core.config import ConfigError
from nas.evaluators import PluginSpec, evaluator_kinds
from nas.job import BudgetSpec, ConstraintSpec, JobSpec, ObjectiveSpec, SearcherSpec, job_from_dict
from nas.searchers import searcher_class, searcher_kinds
from nas.spec_schema import job_schema, schema_fields

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    out = job_schema()
    jsonschema.Draft202012Validator.check_schema(out)
    return out


def _valid(schema: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(spec)]


def _toy() -> dict[str, Any]:
    return {
        "space": {"name": "nb201"},
        "evaluator": {"kind": "zero_cost", "proxy": "synflow"},
        "objectives": [{"metric": "synflow", "direction": "max"}, {"metric": "params"}],
        "searcher": {"kind": "nsga2", "settings": {"population": 8}},
        "budget": {"evaluations": 10},
    }


def test_schema_keys_are_the_parsers_keys(schema: dict[str, Any]) -> None:
    assert sorted(schema["properties"]) == sorted(schema_fields(JobSpec))
    for cls in (ObjectiveSpec, ConstraintSpec, SearcherSpec, BudgetSpec):
        assert sorted(schema["$defs"][cls.__name__]["properties"]) == sorted(schema_fields(cls)), cls
    by_kind = {e["properties"]["kind"]["const"]: e for e in schema["properties"]["evaluator"]["oneOf"]}
    assert set(by_kind) == set(evaluator_kinds())
    for kind, entry in by_kind.items():
        spec_cls = getattr(registry.load("evaluator", kind), "spec_class", PluginSpec)
        assert sorted(entry["properties"]) == sorted(schema_fields(spec_cls)), kind
    assert schema["$defs"]["SearcherSpec"]["properties"]["kind"]["enum"] == searcher_kinds()
    for clause in schema["$defs"]["SearcherSpec"]["allOf"]:
        kind = (clause["if"].get("properties") or clause["if"]["anyOf"][0]["properties"])["kind"]["const"]
        settings = clause["then"]["properties"]["settings"]
        assert {k: v["default"] for k, v in settings["properties"].items()} == searcher_class(kind).defaults()


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("nb201_*.yaml")), ids=lambda p: p.name)
def test_every_example_spec_meets_the_schema(schema: dict[str, Any], path: Path) -> None:
    assert _valid(schema, yaml.safe_load(path.read_text())) == []


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.update(budgt={"evaluations": 3}),  # a misspelt top-level key
        lambda s: s["searcher"]["settings"].update(populaton=3),  # a misspelt setting of this kind
        lambda s: s["evaluator"].update(proxi="snip"),  # a key the evaluator kind does not take
        lambda s: s["objectives"][0].update(direction="maximise"),
        lambda s: s.update(seed="zero"),
        lambda s: s["evaluator"].update(kind="no_such_kind"),
        lambda s: s.pop("objectives"),
    ],
)
def test_schema_and_parser_refuse_the_same_mistakes(schema: dict[str, Any], change: Any) -> None:
    spec = _toy()
    assert _valid(schema, spec) == []
    job_from_dict(spec)
    change(spec)
    assert _valid(schema, spec), spec
    from nas.admission import admit_job

    with pytest.raises(ConfigError):
        admit_job(spec)


def test_searcher_without_kind_takes_evolution_settings(schema: dict[str, Any]) -> None:
    spec = _toy()
    spec["searcher"] = {"settings": {"mutation_prob": 0.2}}
    assert _valid(schema, spec) == []
    spec["searcher"] = {"settings": {"n_startup_trials": 5}}  # TPE's, not evolution's
    assert _valid(schema, spec)


def test_spec_schema_command_prints_the_schema(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["spec", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == job_schema()
    assert main(["spec", "schema", "--out", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text()) == job_schema()


def test_spec_check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(_toy()))
    assert main(["spec", "check", str(good), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    bad = _toy()
    bad["searcher"]["settings"]["populaton"] = 3
    good.write_text(yaml.safe_dump(bad))
    assert main(["spec", "check", str(good)]) == 2
    err = capsys.readouterr().err
    assert "populaton" in err and "nas spec schema" in err
    assert not (tmp_path / "runs").exists()  # checking creates nothing


def _parsers(parser: argparse.ArgumentParser, prefix: str = "nas") -> list[tuple[str, argparse.ArgumentParser]]:
    out = [(prefix, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _parsers(sub, f"{prefix} {name}")
    return out


def test_every_option_has_help_and_shows_its_default() -> None:
    parsers = _parsers(build_parser())
    assert len(parsers) > 25
    for name, parser in parsers:
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            assert action.help, f"`{name}` {action.option_strings or action.dest} has no help"
        text = parser.format_help()
        for action in parser._actions:
            default = action.default
            if (
                action.option_strings
                and default not in (None, False, argparse.SUPPRESS)
                and not isinstance(default, bool)
            ):
                assert str(default) in text, f"`{name} {action.option_strings[0]}`: default {default!r} not shown"
