"""One runner per job: leases with heartbeats, takeover of a dead runner, and database locks retried."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from nas.queries import job_summaries
from nas.runner import run_job
from nas.store import JobBusy, Store, StoreError

ROOT = Path(__file__).resolve().parents[2]


def _spec(evaluations: int, sleep_s: float) -> dict:
    return {
        "name": "leased",
        "space": {"name": "nas.testing.toy:ToySpace"},
        "evaluator": {"kind": "custom", "target": "nas.testing.toy:ToyEvaluator", "options": {"sleep_s": sleep_s}},
        "objectives": [{"metric": "acc", "direction": "max"}, {"metric": "lat", "direction": "min"}],
        "searcher": {"kind": "random"},
        "budget": {"evaluations": evaluations},
        "executor": "local",
        "seed": 0,
    }


def _nas(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nas.cli", *args], env=env or _env(), cwd=ROOT, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def test_lease_is_exclusive_until_it_expires(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    job = store.create_job("j", {}, "toy/6x5")
    held = store.acquire_lease(job, "elsewhere:1:a", ttl_s=0.5)  # a runner on another host: no pid check
    assert held.live()
    with pytest.raises(JobBusy, match=r"is being run by elsewhere:1:a .*only one runner may run a job"):
        store.acquire_lease(job, "here:2:b", ttl_s=10)
    assert store.renew_lease(job, "elsewhere:1:a", ttl_s=0.5)
    assert not store.renew_lease(job, "here:2:b", ttl_s=10)  # not the holder
    time.sleep(0.7)  # no heartbeat: the lease expires and can be taken over
    store.acquire_lease(job, "here:2:b", ttl_s=10)
    assert store.lease(job).runner == "here:2:b"
    assert not store.renew_lease(job, "elsewhere:1:a", ttl_s=0.5)  # the old runner learns it lost the job
    store.release_lease(job, "elsewhere:1:a")  # not the holder: no effect
    assert store.lease(job).runner == "here:2:b"
    store.release_lease(job, "here:2:b")
    assert store.lease(job) is None


def test_racing_runners_get_the_lease_exactly_once(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    job = store.create_job("j", {}, "toy/6x5")
    winners, barrier = [], threading.Barrier(8)

    def race(i: int) -> None:
        mine = Store(store.connection_url)
        barrier.wait()
        try:
            mine.acquire_lease(job, f"elsewhere:{i}:x", ttl_s=30)
            winners.append(i)
        except JobBusy:
            pass

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and store.lease(job).runner == f"elsewhere:{winners[0]}:x"


def _second_runner_refused_then_dead_runner_taken_over(url: str, tmp_path: Path) -> None:
    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump(_spec(evaluations=40, sleep_s=0.1)))
    first = subprocess.Popen(
        [sys.executable, "-m", "nas.cli", "search", str(job_file), "--store", url, "--json"],
        env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    store = Store(url)
    deadline, job_id = time.monotonic() + 120, None
    while time.monotonic() < deadline and job_id is None:
        jobs = store.jobs()
        if jobs and store.counts(jobs[0].id)["complete"] >= 3:
            job_id = jobs[0].id
        time.sleep(0.05)
    assert job_id is not None, "the first runner did not start"
    try:
        second = _nas("resume", job_id, "--store", url)
        assert second.returncode == 2, second.stderr
        assert f"job {job_id} is being run by" in second.stderr and len(second.stderr.strip().splitlines()) == 1
        assert store.job(job_id).state == "running" and first.poll() is None  # the first runner goes on untouched
        assert job_summaries(store)[0]["state"] == "running"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # killed: its heartbeat stopped; the job shows as interrupted and `nas resume` takes it over
    assert store.job(job_id).state == "running"
    listed = _nas("jobs", "--store", url)
    assert listed.returncode == 0 and "interrupted" in listed.stdout.splitlines()[1]
    resumed = _nas("resume", job_id, "--store", url, "--json")
    assert resumed.returncode == 0, resumed.stderr
    trials = store.trials(job_id)
    assert [t.trial_id for t in trials] == list(range(40)) and all(t.state == "complete" for t in trials)
    assert store.job(job_id).state == "done" and store.lease(job_id) is None


def test_second_runner_is_refused_and_a_dead_one_taken_over_sqlite(tmp_path: Path) -> None:
    _second_runner_refused_then_dead_runner_taken_over(f"sqlite:///{tmp_path / 'nas.db'}", tmp_path)


def test_second_runner_is_refused_and_a_dead_one_taken_over_postgresql(tmp_path: Path, postgres_url: str) -> None:
    _second_runner_refused_then_dead_runner_taken_over(postgres_url, tmp_path)


def test_stalled_runner_loses_the_job_and_stops_writing(tmp_path: Path) -> None:
    """A runner whose heartbeats stop (here: its lease is taken after expiry) stops without touching the job."""
    from nas.job import job_from_dict
    from nas.testing.toy import ToyEvaluator

    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    spec = job_from_dict(_spec(evaluations=30, sleep_s=0.0))
    evaluator = ToyEvaluator(sleep_s=0.05)
    created: list[str] = []
    # One heartbeat every 0.05 s; the "stall" is another runner forcing the lease (as if it had expired).
    thief = threading.Timer(0.4, lambda: _steal(store, created[0]))
    thief.start()
    with pytest.raises(StoreError, match="another runner took the job over; this runner stopped"):
        run_job(spec, store, evaluator=evaluator, progress=False, on_created=created.append, lease_ttl_s=0.3)
    thief.join()
    job = store.job(created[0])
    assert job.state == "running"  # not marked failed or done by the runner that lost it
    assert store.lease(created[0]).runner == "elsewhere:9:thief"
    assert len(store.trials(created[0])) < 30


def _steal(store: Store, job_id: str) -> None:
    from nas.store import _Lease

    with store._session() as s:  # white-box: move the lease as a takeover after expiry would
        row = s.get(_Lease, job_id)
        row.runner = "elsewhere:9:thief"
        row.expires_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(seconds=60)


def test_database_lock_is_retried_and_the_search_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from nas.job import job_from_dict
    from nas.testing.toy import ToyEvaluator

    db = tmp_path / "nas.db"
    store = Store(f"sqlite:///{db}", lock_timeout_s=0.1, lock_retry_s=60)
    spec = job_from_dict(_spec(evaluations=12, sleep_s=0.0))
    holder = sqlite3.connect(db, timeout=5, isolation_level=None, check_same_thread=False)
    evaluator = ToyEvaluator(sleep_s=0.02)
    locked = threading.Event()

    def hold_lock() -> None:
        deadline = time.monotonic() + 60
        while len(evaluator.calls) < 2 and time.monotonic() < deadline:  # once trials are being recorded
            time.sleep(0.005)
        holder.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(1.5)  # much longer than one statement's lock timeout
        holder.execute("ROLLBACK")

    created: list[str] = []
    timer = threading.Timer(0.0, hold_lock)
    timer.start()
    with caplog.at_level(logging.WARNING, logger="nas.store"):
        result = run_job(spec, store, evaluator=evaluator, progress=False, on_created=created.append)
    timer.join()
    assert locked.is_set() and result.state == "done" and result.evaluations == 12
    retries = [r.getMessage() for r in caplog.records if "store busy" in r.getMessage()]
    assert retries and all("\n" not in m and "database is locked" in m for m in retries)

    short = Store(f"sqlite:///{db}", lock_timeout_s=0.1, lock_retry_s=0.5)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match=r"still locked after \d+ attempts over 0.5 s") as caught:
            short.update_job(created[0], elapsed_s=1.0)
        assert "\n" not in str(caught.value) and "Traceback" not in str(caught.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
