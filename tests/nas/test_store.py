"""Job store round trips on a real SQLite file and a real PostgreSQL server (pgserver, or NAS_TEST_POSTGRES_URL)."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from nas.store import Store, StoreError, database_url
from nas.testing.toy import ToySpace


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> Store:
    url = f"sqlite:///{tmp_path / 'jobs.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    s = Store(url)
    yield s
    s.close()


def test_job_trial_front_and_artifact_round_trip(store: Store, tmp_path) -> None:
    space = ToySpace()
    archs = space.sample_unique(3, np.random.default_rng(0))
    job = store.create_job("j", {"objectives": [{"metric": "acc", "direction": "max"}]}, space.space_id, budget=3)
    assert store.job(job).state == "created" and store.job(job).budget == 3
    for i, arch in enumerate(archs):
        store.add_trial(job, i, arch, worker="w1")
    store.add_trial(job, 0, archs[0], worker="w2")  # re-dispatch of a running trial is idempotent
    store.finish_trial(job, 0, {"acc": 0.5, "lat": math.nan})
    store.finish_trial(job, 1, None, error="RuntimeError: boom")
    trials = store.trials(job)
    assert [t.trial_id for t in trials] == [0, 1, 2]
    assert trials[0].state == "complete" and trials[0].metrics == {"acc": 0.5, "lat": None}
    assert trials[0].worker == "w2" and trials[0].finished_at is not None
    assert space.make(trials[0].arch) == archs[0] and trials[0].arch_id == archs[0].arch_id
    assert trials[1].state == "failed" and trials[1].error == "RuntimeError: boom" and trials[1].metrics == {}
    assert trials[2].state == "running"
    assert [t.trial_id for t in store.trials(job, ["running"])] == [2]
    assert store.counts(job) == {"running": 1, "complete": 1, "failed": 1}
    with pytest.raises(StoreError, match="already finished"):
        store.add_trial(job, 0, archs[0])
    with pytest.raises(StoreError, match="no trial 7"):
        store.finish_trial(job, 7, {"acc": 1.0})

    store.save_front(job, 2, [0], 0.25)
    store.save_front(job, 3, [0, 2], 0.5)
    fronts = store.fronts(job)
    assert [(f.evaluations, f.trial_ids, f.hypervolume) for f in fronts] == [(2, [0], 0.25), (3, [0, 2], 0.5)]

    blob = tmp_path / "table.json"
    blob.write_bytes(b"{}")
    record = store.add_artifact("latency_table", blob, job_id=job, meta={"device": "cpu"})
    assert record.sha256 == "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    assert store.artifacts(job)[0].meta == {"device": "cpu"}
    blob.write_bytes(b"[]")  # the same file written again: one record, with the new checksum
    store.add_artifact("latency_table", blob, job_id=job, meta={"device": "cpu", "round": 2})
    (only,) = store.artifacts(job)
    assert only.sha256 == hashlib.sha256(b"[]").hexdigest() and only.meta["round"] == 2
    with pytest.raises(StoreError, match="not a file"):
        store.add_artifact("x", tmp_path / "missing")

    store.update_job(job, state="done", elapsed_s=1.5)
    again = Store(store.connection_url)  # a second connection sees the same data
    assert again.job(job).state == "done" and again.job(job).elapsed_s == 1.5
    assert [j.id for j in again.jobs()] == [job]


def test_bad_urls_and_requests_are_clear_errors(tmp_path) -> None:
    with pytest.raises(StoreError, match="not a database URL"):
        Store("runs/nas.db")
    with pytest.raises(StoreError, match="cannot open"):
        Store("nosuchdb://x/y")
    # PostgreSQL URLs as its tools write them use the installed driver (psycopg 3)
    assert database_url("postgres://u:p%40w@h:5433/db") == "postgresql+psycopg://u:p%40w@h:5433/db"
    assert database_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    with pytest.raises(StoreError, match=r"cannot open postgresql\+psycopg://u:\*\*\*@127.0.0.1:1/db"):
        Store("postgresql://u:secret@127.0.0.1:1/db")  # no server there; the password is not shown
    store = Store(f"sqlite:///{tmp_path / 'sub' / 'dir' / 'a.db'}")  # parent folders are created
    with pytest.raises(StoreError, match="job 'nope' not found"):
        store.job("nope")
    with pytest.raises(StoreError, match="state must be one of"):
        job = store.create_job("j", {}, "toy", None)
        store.update_job(job, state="paused")


def test_delete_job_removes_its_rows_and_optuna_study(tmp_path) -> None:
    import optuna

    from nas.store import Store

    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    keep, gone = store.create_job("keep", {"a": 1}, "toy"), store.create_job("gone", {"a": 1}, "toy")
    arch = ToySpace().sample(np.random.default_rng(0))
    for job in (keep, gone):
        store.add_trial(job, 0, arch)
        store.save_front(job, 1, [0], 1.0)
    optuna.create_study(study_name=f"nas-{gone}", storage=store.connection_url)
    store.delete_job(gone)
    assert [j.id for j in store.jobs()] == [keep] and store.trials(gone) == [] and store.fronts(gone) == []
    assert len(store.trials(keep)) == 1 and store.lease(gone) is None
    assert f"nas-{gone}" not in {s.study_name for s in optuna.get_all_study_summaries(storage=store.connection_url)}
    with pytest.raises(StoreError, match="not found"):
        store.delete_job(gone)
