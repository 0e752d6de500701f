"""run_job end to end on the toy problem: budgets, failures, fronts, stop/kill and resume, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nas.core.config import ConfigError
from nas.core.pareto import hypervolume, pareto_front
from nas.job import job_from_dict, load_job
from nas.runner import run_job
from nas.store import Store
from nas.testing.toy import ToyEvaluator, toy_job_spec

ROOT = Path(__file__).resolve().parents[2]


def spec_dict(**overrides) -> dict:
    return toy_job_spec(**overrides)


def test_local_job_records_failures_and_the_front(tmp_path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'jobs.db'}")
    evaluator = ToyEvaluator(fail_when=4)
    result = run_job(job_from_dict(spec_dict()), store, progress=False, evaluator=evaluator)
    trials = store.trials(result.job_id)
    assert result.state == "done" and store.job(result.job_id).state == "done"
    assert result.evaluations == len(trials) == 24
    failed = [t for t in trials if t.state == "failed"]
    assert failed and result.failed == len(failed)
    assert all("cannot evaluate arch with x0=4" in t.error for t in failed)
    assert all(t.arch["x"][0] == 4 for t in failed)
    assert all(t.arch["x"][0] != 4 for t in trials if t.state == "complete")
    # the stored front is the front of the stored metrics, under the job's constraint
    complete = [t for t in trials if t.state == "complete"]
    spec = job_from_dict(spec_dict())
    points = [t.metrics for t in complete]
    expected = sorted(complete[i].trial_id for i in pareto_front(points, spec.objective_list, spec.constraint_list))
    assert sorted(t.trial_id for t in result.front) == expected
    assert all(t.metrics["lat"] <= 6.0 for t in result.front)
    fronts = store.fronts(result.job_id)
    assert fronts[-1].hypervolume == pytest.approx(
        hypervolume(points, spec.objective_list, spec.reference, spec.constraint_list)
    )
    hvs = [f.hypervolume for f in fronts]
    assert hvs == sorted(hvs)  # fixed reference: hypervolume never decreases


@pytest.mark.parametrize(
    ("kind", "database"), [("evolution", "sqlite"), ("tpe", "sqlite"), ("predictor", "sqlite"), ("tpe", "postgresql")]
)
def test_stop_and_resume_evaluates_each_arch_once(tmp_path, request, kind: str, database: str) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}" if database == "sqlite" else request.getfixturevalue("postgres_url")
    store = Store(url)
    evaluator = ToyEvaluator()
    spec = job_from_dict(spec_dict(searcher={"kind": kind, "settings": {}}))
    first = run_job(spec, store, progress=False, evaluator=evaluator, stop_after=10)
    assert first.state == "interrupted" and first.evaluations == 10
    second = run_job(None, store, job_id=first.job_id, progress=False, evaluator=evaluator)
    assert second.state == "done" and second.evaluations == 24
    assert len(evaluator.calls) == len(set(evaluator.calls)) == 24
    assert [t.trial_id for t in store.trials(first.job_id)] == list(range(24))
    if kind == "tpe":  # Optuna's study lives in the same database, one trial per evaluation
        import optuna

        from nas.optuna_study import job_study_name

        name = job_study_name(store.connection_url, first.job_id)
        assert name == f"nas-{first.job_id}-{spec.name}"
        study = optuna.load_study(study_name=name, storage=store.connection_url)
        finished = [t for t in study.trials if t.state.name == "COMPLETE" and "nas_trial_id" in t.user_attrs]
        assert sorted(t.user_attrs["nas_trial_id"] for t in finished) == list(range(24))


def test_budget_and_spec_errors_are_clear(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"searcher\.kind: unknown searcher 'bayes'"):
        job_from_dict(spec_dict(searcher={"kind": "bayes"}))
    with pytest.raises(ConfigError, match="budget: give evaluations and/or wall_time_s"):
        job_from_dict(spec_dict(budget={"evaluations": None}))
    with pytest.raises(ConfigError, match=r"constraints\[0\]: give min and/or max"):
        job_from_dict(spec_dict(constraints=[{"metric": "lat"}]))
    with pytest.raises(ConfigError, match="reference: no value for objectives \\['lat'\\]"):
        job_from_dict(spec_dict(reference={"acc": 0}))
    with pytest.raises(ConfigError, match=r"unknown key objectives\[0\]\.sense"):
        job_from_dict(spec_dict(objectives=[{"metric": "acc", "sense": "max"}]))
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec_dict(evaluator={"kind": "tabular", "accuracy_csv": "missing.csv"})))
    store = Store(f"sqlite:///{tmp_path / 'jobs.db'}")
    # a spec file naming a missing file is refused on reading, before any job row exists
    with pytest.raises(ConfigError, match=r"evaluator\.accuracy_csv: no file or folder 'missing\.csv'.*spec's folder"):
        load_job(path)
    assert store.jobs() == []
    # a spec built in code reaches the runner: the failed start is recorded
    spec = job_from_dict(spec_dict(evaluator={"kind": "tabular", "accuracy_csv": "missing.csv"}))
    with pytest.raises(ConfigError, match=r"evaluator\.accuracy_csv: missing\.csv not found"):
        run_job(spec, store, progress=False)
    assert store.jobs()[-1].state == "failed"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "NAS_STORE": ""}


def _nas(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nas.cli", *args], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=300
    )


def test_cli_search_jobs_pareto(tmp_path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(spec_dict(budget={"evaluations": 12})))
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    out = _nas("search", str(job), "--store", url, "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["state"] == "done" and payload["evaluations"] == 12 and payload["front"]
    jobs = json.loads(_nas("jobs", "--store", url, "--json").stdout)
    assert jobs[0]["job_id"] == payload["job_id"] and jobs[0]["done"] == 12 and jobs[0]["state"] == "done"
    plot = tmp_path / "front.png"
    front = _nas("pareto", payload["job_id"], "--store", url, "--json", "--max-latency", "4",
                 "--latency-metric", "lat", "--plot", str(plot))  # fmt: skip
    assert front.returncode == 0, front.stderr
    data = json.loads(front.stdout)
    assert all(r["metrics"]["lat"] <= 4 for r in data["front"])
    assert len(data["front"]) <= len(payload["front"]) + 1
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = _nas("pareto", "no-such-job", "--store", url)
    assert bad.returncode == 2 and "job 'no-such-job' not found" in bad.stderr


def test_killed_search_resumes_without_lost_or_repeated_trials(tmp_path) -> None:
    spec = spec_dict(budget={"evaluations": 30}, parallelism=1)
    spec["evaluator"]["options"] = {"sleep_s": 0.15}
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(spec))
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nas.cli", "search", str(job), "--store", url, "--json"],
        env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    store = Store(url)
    deadline = time.monotonic() + 120
    job_id = None
    while time.monotonic() < deadline:
        jobs = store.jobs()
        if jobs and store.counts(jobs[0].id)["complete"] >= 8:
            job_id = jobs[0].id
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert job_id is not None, "the search did not start"
    before = {t.trial_id: t for t in store.trials(job_id)}
    assert store.job(job_id).state == "running"  # killed: nobody marked it
    assert len(before) < 30
    out = _nas("resume", job_id, "--store", url, "--json")
    assert out.returncode == 0, out.stderr
    after = store.trials(job_id)
    assert [t.trial_id for t in after] == list(range(30))
    assert all(t.state == "complete" for t in after)
    assert len({t.arch_id for t in after}) == 30
    for t in after:  # trials finished before the kill were not evaluated again
        if before.get(t.trial_id) is not None and before[t.trial_id].state == "complete":
            assert t.finished_at == before[t.trial_id].finished_at and t.metrics == before[t.trial_id].metrics
    assert store.job(job_id).state == "done"


def test_auto_executor_keeps_lookups_local_and_parallel_work_on_ray() -> None:
    from nas.runner import resolve_executor

    def spec(kind: str, parallelism: int = 1, executor: str = "auto"):
        return job_from_dict({
            "space": {"name": "nb201"}, "evaluator": {"kind": kind, "accuracy_csv": "a.csv", "path": "p.json",
                                                     "checkpoint": "run"},
            "objectives": [{"metric": "accuracy", "direction": "max"}], "parallelism": parallelism,
            "executor": executor,
        })  # fmt: skip

    assert spec("tabular").executor == "auto"
    assert resolve_executor(spec("tabular", 8)) == "local"
    assert resolve_executor(spec("tabular", 8), ray_address="ray://head:10001") == "local"
    assert resolve_executor(spec("supernet")) == "local"
    assert resolve_executor(spec("supernet", 4)) == "ray"
    assert resolve_executor(spec("supernet"), ray_address="ray://head:10001") == "ray"
    assert resolve_executor(spec("tabular", executor="ray")) == "ray"
    assert resolve_executor(spec("supernet", 4), override="local") == "local"
