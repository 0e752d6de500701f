"""A search through Ray Tune on a local 2-CPU Ray cluster, with failing trials recorded as failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.job import job_from_dict
from nas.runner import run_job
from nas.store import Store
from nas.testing.toy import toy_job_spec as spec_dict

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
    )  # fmt: skip
    yield ray
    ray.shutdown()


def test_ray_tune_job_records_failed_trials_and_resumes(local_ray, tmp_path, capsys) -> None:
    spec = spec_dict(executor="ray", parallelism=2, budget={"evaluations": 10}, searcher={"kind": "random"}, seed=1)
    spec["evaluator"]["options"] = {"fail_when": 4}
    store = Store(f"sqlite:///{tmp_path / 'jobs.db'}")
    first = run_job(job_from_dict(spec), store, progress=False, stop_after=6)
    trials = store.trials(first.job_id)
    assert first.state == "interrupted" and len(trials) == 6
    result = run_job(None, store, job_id=first.job_id, progress=False)
    trials = store.trials(result.job_id)
    assert result.state == "done" and [t.trial_id for t in trials] == list(range(10))
    assert len({t.arch_id for t in trials}) == 10
    failed = [t for t in trials if t.state == "failed"]
    complete = [t for t in trials if t.state == "complete"]
    assert failed, "seed 1 proposes archs with x0 = 4, which the evaluator refuses"
    assert all("cannot evaluate arch with x0=4" in t.error for t in failed)
    assert all(t.arch["x"][0] != 4 for t in complete) and complete
    workers = {t.worker for t in trials}
    assert all(w and ":" in w for w in workers)  # host:pid of the Ray worker that evaluated it
    assert (tmp_path / "ray" / f"job-{first.job_id}").is_dir()  # Ray's own results beside the store
    printed = capsys.readouterr().out
    assert "Configuration for experiment" not in printed and "tensorboard" not in printed.lower()  # only with -v


def test_ray_results_folder(tmp_path, monkeypatch) -> None:
    from nas.ray_runner import RAY_RESULTS_ENV, ray_results_dir

    monkeypatch.delenv(RAY_RESULTS_ENV, raising=False)
    assert ray_results_dir(f"sqlite:///{tmp_path / 'a' / 'nas.db'}") == tmp_path / "a" / "ray"
    monkeypatch.chdir(tmp_path)
    assert ray_results_dir("sqlite:///runs/nas.db") == tmp_path / "runs" / "ray"
    assert ray_results_dir("postgresql://u@db/nas") == tmp_path / "runs" / "ray"
    monkeypatch.setenv(RAY_RESULTS_ENV, "elsewhere")
    assert ray_results_dir("sqlite:///runs/nas.db") == tmp_path / "elsewhere"
