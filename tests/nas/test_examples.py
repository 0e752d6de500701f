"""Every search spec in examples/ runs as written (its own relative paths), with a small budget."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from nas.core.config import ConfigError
from nas.job import job_from_dict, load_job
from nas.runner import run_job
from nas.store import Store

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("nb201_*.yaml"))
SPECS = sorted(p for p in (ROOT / "examples").glob("*.yaml") if "objectives" in yaml.safe_load(p.read_text()))


def test_there_is_an_example_for_every_searcher_family_and_evaluator_kind() -> None:
    kinds = {yaml.safe_load(p.read_text())["searcher"]["kind"] for p in SPECS}
    evaluators = {yaml.safe_load(p.read_text())["evaluator"]["kind"] for p in SPECS}
    assert {"evolution", "nsga2", "tpe", "optuna-nsga2", "predictor", "random"} <= kinds
    assert {"tabular", "zero_cost", "predictor", "supernet"} <= evaluators  # `custom` names a user's code


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_from_any_working_directory(path: Path, tmp_path: Path, monkeypatch) -> None:
    data = yaml.safe_load(path.read_text())  # (the NAS-Bench-201 tables ship with the package: no skip)
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


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_admitted_as_nas_search_admits_it(path: Path) -> None:
    """`nas search` checks a spec with the same admission the service uses (evaluator files, the
    searcher's settings against what the evaluator offers) before any job exists."""
    from nas.admission import admit_job

    spec, _space = admit_job(load_job(path).to_dict())
    assert spec.searcher.kind == yaml.safe_load(path.read_text())["searcher"]["kind"]


def test_missing_data_path_is_an_error_naming_where_it_was_looked_for(tmp_path: Path) -> None:
    spec = yaml.safe_load((ROOT / "examples" / "nb201_evolution.yaml").read_text())
    moved = tmp_path / "elsewhere" / "spec.yaml"
    moved.parent.mkdir()
    moved.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=r"evaluator.accuracy_csv: no file or folder .*resolve against the spec"):
        load_job(moved)
    shutil.rmtree(moved.parent)


def test_the_shipped_predictor_is_what_its_command_fits(tmp_path: Path) -> None:
    """examples/data/nb201_cifar10_gp.json is reproduced by the command in the spec's comment."""
    from nas.cli import main
    from predictors.learned import Predictor
    from search_spaces.nb201.space import NB201Space

    data = ROOT / "examples" / "data"
    out = tmp_path / "gp.json"
    assert main(["predictor", "fit", "--data", str(data / "nb201_cifar10_100archs.csv"), "--space", "nb201",
                 "--kind", "gp", "--target", "accuracy", "--out", str(out)]) == 0  # fmt: skip
    space = NB201Space()
    archs = space.sample_unique(50, np.random.default_rng(1))
    shipped, refitted = Predictor.load(data / "nb201_cifar10_gp.json", space), Predictor.load(out, space)
    assert shipped.predict(archs)[0] == pytest.approx(refitted.predict(archs)[0], rel=1e-6, abs=1e-9)


def test_supernet_example_runs_on_a_run_laid_out_as_the_demo_leaves_it(tmp_path: Path) -> None:
    """examples/demo_supernet.yaml as written, on a briefly trained ofa_mbv3/mnist supernet in
    ../runs/demo and a latency table of its space (op times from a stand-in timer)."""
    from nas.testing.tiny_train import tiny
    from predictors.latency import build_table
    from search_spaces.training.checkpoint import load_supernet
    from search_spaces.training.config import load_train_config
    from search_spaces.training.trainer import SupernetTrainer

    examples = tmp_path / "examples"
    examples.mkdir()
    shutil.copy(ROOT / "examples" / "demo_supernet.yaml", examples)
    run = tmp_path / "runs" / "demo"
    config = tiny(
        space={"name": "ofa_mbv3", "config": "mnist", "options": {}},
        phases=[{"name": "full", "epochs": 1, "lr": 0.05, "open": {"r": "all"}}],
        data={"synthetic_samples": 128},
    )
    SupernetTrainer(load_train_config(config), run).run()
    space = load_supernet(run)[0].space

    def layer_ms(layer: dict) -> dict[str, float]:  # a stand-in for measured op latency
        return {"mean_ms": 0.01 + 1e-6 * layer.get("out_channels", 1), "std_ms": 0.0}

    table = build_table(space, layer_timer=layer_ms, calibration_archs=0, progress=False, judge=False)
    table.save(run / "latency_cpu_b1.json")
    spec = load_job(examples / "demo_supernet.yaml")
    small = job_from_dict({**spec.to_dict(), "budget": {"evaluations": 6}})
    small.evaluator = spec.evaluator
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    result = run_job(small, store, progress=False)
    trials = store.trials(result.job_id, ["complete"])
    assert result.state == "done" and len(trials) == 6 and result.front
    assert all(0.0 <= t.metrics["accuracy"] <= 1.0 and t.metrics["latency_ms@cpu"] > 0 for t in trials)


@pytest.mark.parametrize(
    "path",
    sorted(p for p in (ROOT / "examples").glob("*.yaml") if "phases" in yaml.safe_load(p.read_text())),
    ids=lambda p: p.name,
)
def test_every_training_config_loads_and_opens_its_spaces_dimensions(path: Path) -> None:
    """Each training config of examples/ validates (space, data settings, every phase's open
    dimensions against the space), whether or not its data is on this machine."""
    from search_spaces.training.config import load_train_config

    config = load_train_config(path)
    dims = set(config.space.build().elastic_choices())
    for phase in config.phases:
        assert set(phase.open) <= dims, (path.name, phase.name, phase.open)
    assert set(config.phases[-1].open) | {"r"} >= dims  # the last phase opens every dimension
