"""Cancelling a job: a queued one never starts, a running one stops at its runner's next
heartbeat (state ``cancelled``), and ``nas resume`` continues it without repeating a trial."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from nas.cli import main
from nas.job import job_from_dict
from nas.runner import run_job
from nas.store import JobBusy, JobCancelled, Store, StoreError
from nas.testing.toy import ToyEvaluator, toy_job_spec


def test_queued_and_finished_jobs(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    queued = store.create_job("q", toy_job_spec(), "toy/6x5")
    assert store.cancel_job(queued) == "created" and store.job(queued).state == "cancelled"
    with pytest.raises(JobBusy, match="cancelled: there is nothing to cancel"):
        store.cancel_job(queued)
    done = run_job(job_from_dict(toy_job_spec()), store, progress=False, evaluator=ToyEvaluator())
    with pytest.raises(JobBusy, match="is done"):
        store.cancel_job(done.job_id)
    with pytest.raises(StoreError, match="not found"):
        store.cancel_job("nope")


def test_running_job_stops_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    store = Store(url)
    spec = job_from_dict(toy_job_spec(parallelism=1, budget={"evaluations": 400}))
    created: list[str] = []
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(run_job(spec, store, progress=False, evaluator=ToyEvaluator(sleep_s=0.02),
                                   on_created=created.append, lease_ttl_s=0.6))  # fmt: skip
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while (not created or len(store.trials(created[0])) < 5) and time.monotonic() < deadline:
        time.sleep(0.05)
    job_id = created[0]
    assert main(["cancel", job_id, "--store", url]) == 0  # as another process would
    assert "was running" in capsys.readouterr().out
    thread.join(timeout=30)
    assert not thread.is_alive() and isinstance(outcome[0], JobCancelled)
    assert "nas resume" in str(outcome[0])
    assert store.job(job_id).state == "cancelled" and store.lease(job_id) is None
    stopped_at = len([t for t in store.trials(job_id) if t.state != "running"])
    assert 5 <= stopped_at < 400  # it stopped well before its budget
    result = run_job(None, store, job_id=job_id, progress=False, evaluator=ToyEvaluator())
    trials = store.trials(job_id)
    assert result.state == "done" and len(trials) == 400 and len({t.arch_id for t in trials}) == 400
