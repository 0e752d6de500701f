"""Every search spec in examples/ runs as written (its own relative paths), with a small budget."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from nas.core.config import ConfigError
from nas.job import job_from_dict, load_job
from nas.runner import run_job
from nas.store import Store

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("nb201_*.yaml"))
SHARED = ROOT.parent / "shared" / "data" / "nb201"


def test_there_is_an_example_for_every_searcher_family() -> None:
    kinds = {yaml.safe_load(p.read_text())["searcher"]["kind"] for p in EXAMPLES}
    evaluators = {yaml.safe_load(p.read_text())["evaluator"]["kind"] for p in EXAMPLES}
    assert {"evolution", "nsga2", "tpe", "predictor", "random"} <= kinds
    assert {"tabular", "zero_cost"} <= evaluators


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_from_any_working_directory(path: Path, tmp_path: Path, monkeypatch) -> None:
    data = yaml.safe_load(path.read_text())
    if data["evaluator"]["kind"] == "tabular" and not SHARED.exists():
        pytest.skip(f"needs the NAS-Bench-201 tables in {SHARED}")
    monkeypatch.chdir(tmp_path)  # relative paths must resolve against the spec, not here
    spec = load_job(path)
    assert spec.executor == "local"
    small = job_from_dict({**spec.to_dict(), "budget": {"evaluations": 12}})
    small.evaluator = spec.evaluator
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    result = run_job(small, store, progress=False)
    assert result.state == "done", result
    trials = store.trials(result.job_id, ["complete"])
    assert len(trials) == 12 and result.front
    assert all(set(o["metric"] for o in data["objectives"]) <= set(t.metrics) for t in trials)


def test_missing_data_path_is_an_error_naming_where_it_was_looked_for(tmp_path: Path) -> None:
    spec = yaml.safe_load((ROOT / "examples" / "nb201_evolution.yaml").read_text())
    moved = tmp_path / "elsewhere" / "spec.yaml"
    moved.parent.mkdir()
    moved.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=r"evaluator.accuracy_csv: no file or folder .*resolve against the spec"):
        load_job(moved)
    shutil.rmtree(moved.parent)
