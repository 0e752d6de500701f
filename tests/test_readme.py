"""The README as a user runs it: every `nas ...` command in its shell blocks parses with the CLI
as written, every job spec in it passes the spec parser, every file it names exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from nas.cli import build_parser
from nas.job import job_from_dict

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "examples" / "README.md", ROOT / "benchmarks" / "README.md"]


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def _commands(path: Path) -> list[str]:
    out = []
    for block in _blocks(path.read_text(), "bash"):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("nas "):
                out.append(line)
    return out


COMMANDS = [(p.relative_to(ROOT).as_posix(), c) for p in DOCS for c in _commands(p)]


def test_the_readme_has_recipes() -> None:
    readme = [c for p, c in COMMANDS if p == "README.md"]
    assert len(readme) >= 20
    verbs = {c.split()[1] for c in readme}
    assert {"search", "pareto", "trials", "train", "latency", "export", "serve", "supernet", "spec"} <= verbs


@pytest.mark.parametrize(("doc", "command"), COMMANDS, ids=[f"{p}:{c[:60]}" for p, c in COMMANDS])
def test_command_parses(doc: str, command: str) -> None:
    argv = shlex.split(command)[1:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's error exit
        raise AssertionError(f"{doc}: `{command}` is not a valid command line") from exc
    assert callable(args.func)


def test_job_specs_in_the_readme_parse() -> None:
    specs = [yaml.safe_load(b) for b in _blocks((ROOT / "README.md").read_text(), "yaml")]
    jobs = [s for s in specs if isinstance(s, dict) and "objectives" in s]
    assert len(jobs) >= 2
    for spec in jobs:
        job_from_dict(spec)


def test_files_the_docs_name_exist() -> None:
    pattern = re.compile(
        r"`((?:examples|docs|tests|benchmarks|scripts|services|nas)/[\w./-]+\.(?:py|md|yaml|sh|json))`"
    )
    named = {m for p in [*DOCS, ROOT / "docs" / "REFERENCE.md"] for m in pattern.findall(p.read_text())}
    assert len(named) > 10
    missing = sorted(n for n in named if "*" not in n and not (ROOT / n).exists())
    assert not missing, missing
