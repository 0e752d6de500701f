"""Every job's trials as a multi-objective Optuna study in the store's database (whatever the
searcher), read back through Optuna and through optuna-dashboard's HTTP API."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import optuna
import pytest

from nas.cli import main
from nas.job import job_from_dict
from nas.optuna_study import TRIAL_KEY, StudyMirror, job_study_name, study_name
from nas.runner import run_job
from nas.store import Store
from nas.testing.toy import ToyEvaluator, ToySpace, toy_job_spec


def _check_study(store: Store, job_id: str) -> optuna.Study:
    name = job_study_name(store.connection_url, job_id)
    assert name == f"nas-{job_id}-{store.job(job_id).name}"  # the dashboard lists jobs by name (finding 10)
    study = optuna.load_study(study_name=name, storage=store.connection_url)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["acc", "lat"]
    trials = {t.trial_id: t for t in store.trials(job_id) if t.state != "running"}
    mine = [t for t in study.get_trials() if TRIAL_KEY in t.user_attrs]
    counts = Counter(int(t.user_attrs[TRIAL_KEY]) for t in mine)
    assert set(counts) == set(trials) and max(counts.values()) == 1  # each once, none missing
    space = ToySpace()
    for ot in mine:
        ours = trials[int(ot.user_attrs[TRIAL_KEY])]
        assert space.from_params(ot.params).arch_id == ours.arch_id
        if ours.state == "complete":
            assert ot.state == optuna.trial.TrialState.COMPLETE
            assert ot.values == [ours.metrics["acc"], ours.metrics["lat"]]
            # the list optuna-dashboard reads (issue 27, finding 10: it showed `constraints: []`)
            assert ot.system_attrs["constraints"] == [ours.metrics["lat"] - 6.0]
        else:
            assert ot.state == optuna.trial.TrialState.FAIL
    return study


def test_evolution_job_is_an_optuna_study_and_resuming_adds_no_duplicates(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    spec = job_from_dict(toy_job_spec(parallelism=1))
    first = run_job(spec, store, progress=False, evaluator=ToyEvaluator(fail_when=4), stop_after=10)
    assert first.state == "interrupted"
    study = _check_study(store, first.job_id)
    assert len(study.trials) == 10
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert all(set(t.constraints) == {"0"} for t in done)
    feasible = [t for t in done if t.constraints["0"] <= 0]
    assert feasible and all(t.values[1] <= 6.0 for t in feasible)  # constraint `lat <= 6` as g <= 0
    resumed = run_job(None, store, job_id=first.job_id, progress=False, evaluator=ToyEvaluator(fail_when=4))
    assert resumed.state == "done"
    study = _check_study(store, first.job_id)
    assert len(study.trials) == 24
    assert main(["delete", first.job_id, "--store", store.connection_url]) == 0
    assert not [n for n in optuna.get_all_study_names(store.connection_url) if first.job_id in n]


def test_optuna_searcher_keeps_the_study_itself(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    spec = job_from_dict(toy_job_spec(searcher={"kind": "tpe", "settings": {"n_startup_trials": 4}}, parallelism=1))
    result = run_job(spec, store, progress=False, evaluator=ToyEvaluator(fail_when=4))
    _check_study(store, result.job_id)  # every trial once: no second copy from the mirror


def test_a_failing_study_write_is_logged_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    result = run_job(job_from_dict(toy_job_spec()), store, progress=False, evaluator=ToyEvaluator())
    mirror = StudyMirror(store, result.job_id, ToySpace(), job_from_dict(toy_job_spec()).objective_list)
    mirror._study = type("Broken", (), {"get_trials": lambda *a, **k: (_ for _ in ()).throw(RuntimeError("down"))})()
    assert mirror.sync() == 0 and "not updated (down)" in caplog.text
    assert mirror.sync() == 0  # reopened: everything was already there


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def test_optuna_dashboard_lists_the_job(tmp_path: Path) -> None:
    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    result = run_job(job_from_dict(toy_job_spec()), store, progress=False, evaluator=ToyEvaluator(fail_when=4))
    server = make_server("127.0.0.1", 0, optuna_dashboard.wsgi(store.connection_url), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        studies = httpx.get(f"{base}/api/studies", timeout=30).json()["study_summaries"]
        ours = next(s for s in studies if s["study_name"] == f"nas-{result.job_id}-{spec_name()}")
        assert [d for d in ours["directions"]] == ["maximize", "minimize"]
        detail = httpx.get(f"{base}/api/studies/{ours['study_id']}", timeout=30).json()
        assert len(detail["trials"]) == 24 and detail["best_trials"]
    finally:
        server.shutdown()


def test_spec_can_turn_the_study_off(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    result = run_job(job_from_dict(toy_job_spec(optuna_study=False)), store, progress=False, evaluator=ToyEvaluator())
    assert result.state == "done"
    assert not [n for n in optuna.get_all_study_names(store.connection_url) if result.job_id in n]


def spec_name() -> str:
    return job_from_dict(toy_job_spec()).name


def test_a_job_made_before_studies_had_names_keeps_its_study(tmp_path: Path) -> None:
    """A job whose study is ``nas-<id>`` (made before the name was added) resumes into that study
    and is deleted with it; no second study appears."""
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    spec = job_from_dict(toy_job_spec(parallelism=1))
    first = run_job(spec, store, progress=False, evaluator=ToyEvaluator(), stop_after=6)
    named = job_study_name(store.connection_url, first.job_id)
    optuna.copy_study(from_study_name=named, from_storage=store.connection_url, to_storage=store.connection_url,
                      to_study_name=study_name(first.job_id))  # fmt: skip
    optuna.delete_study(study_name=named, storage=store.connection_url)
    run_job(None, store, job_id=first.job_id, progress=False, evaluator=ToyEvaluator())
    ours = [n for n in optuna.get_all_study_names(store.connection_url) if first.job_id in n]
    assert ours == [f"nas-{first.job_id}"]
    assert len(optuna.load_study(study_name=ours[0], storage=store.connection_url).trials) == 24
    assert main(["delete", first.job_id, "--store", store.connection_url]) == 0
    assert not [n for n in optuna.get_all_study_names(store.connection_url) if first.job_id in n]
