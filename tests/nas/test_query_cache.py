"""Cached fronts and hypervolume histories: reused until a trial completes (from any process),
recomputed then; the version read is one indexed query on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from sqlalchemy import inspect, text

from nas.core.pareto import Constraint, Objective, hypervolume, pareto_front
from nas.queries import QueryCache, front_query, job_summary
from nas.store import Store, StoreError
from nas.testing.toy import ToySpace

OBJECTIVES = [{"metric": "acc", "direction": "max"}, {"metric": "latency_ms", "direction": "min"}]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    url = f"sqlite:///{tmp_path / 'jobs.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    s = Store(url)
    yield s
    s.close()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _job(store: Store, n: int, seed: int = 0) -> tuple[str, list[Any]]:
    space = ToySpace()
    archs = space.sample_unique(n + 5, np.random.default_rng(seed))
    spec = {"objectives": OBJECTIVES, "constraints": [{"metric": "latency_ms", "max": 8.0}],
            "searcher": {"kind": "evolution"}}  # fmt: skip
    job = store.create_job("cached", spec, space.space_id, budget=n + 5)
    rng = np.random.default_rng(seed)
    for i in range(n):
        _finish(store, job, i, archs[i], rng)
    return job, archs


def _finish(store: Store, job: str, i: int, arch: Any, rng: np.random.Generator) -> dict[str, float]:
    metrics = {"acc": float(rng.uniform(0.5, 0.9)), "latency_ms": float(rng.uniform(1, 10))}
    store.add_trial(job, i, arch)
    store.finish_trial(job, i, metrics)
    return metrics


def test_front_is_reused_until_a_trial_completes(store: Store) -> None:
    job, archs = _job(store, 20)
    clock = Clock()
    cache = QueryCache(store, fresh_s=0.25, clock=clock)
    first = cache.get("front", job)
    assert first == front_query(store, job) and cache.computed == 1
    assert cache.peek("front", job) == first  # within fresh_s: no store access at all
    assert cache.peek("front", job, max_latency=5.0) is None  # another query is another entry
    clock.now = 1.0
    assert cache.peek("front", job) is None  # stale: the version must be read again
    assert cache.get("front", job) == first and cache.computed == 1  # ... and it had not changed
    store.add_trial(job, 20, archs[20])  # a running trial changes no front
    assert cache.get("front", job) == first and cache.computed == 1
    other = Store(store.connection_url)  # as another process would: its own engine
    metrics = _finish(other, job, 21, archs[21], np.random.default_rng(5))
    other.close()
    again = cache.get("front", job)
    assert cache.computed == 2 and again["evaluated"] == first["evaluated"] + 1
    assert again == front_query(store, job)
    rows = [{k: (math.nan if v is None else v) for k, v in t.metrics.items()} for t in store.trials(job, ["complete"])]
    assert metrics in rows


def test_state_is_read_with_the_version_not_cached_with_the_front(store: Store) -> None:
    job, _ = _job(store, 5)
    clock = Clock()
    cache = QueryCache(store, clock=clock)
    assert cache.get("front", job)["state"] == "created"
    store.update_job(job, state="done")
    assert cache.peek("front", job)["state"] == "created"  # within fresh_s
    clock.now = 1.0
    assert cache.get("front", job)["state"] == "done" and cache.computed == 1


def test_history_and_forget(store: Store) -> None:
    job, _ = _job(store, 6)
    objectives = [Objective("acc", "max"), Objective("latency_ms", "min")]
    points = [t.metrics for t in store.trials(job, ["complete"])]
    for k in (3, 6):
        front = pareto_front(points[:k], objectives, [Constraint("latency_ms", max=8.0)])
        store.save_front(job, k, front, hypervolume(points[:k], objectives, {"acc": 0.0, "latency_ms": 20.0}))
    cache = QueryCache(store)
    history = cache.get("history", job)
    assert history["evaluations"] == [3, 6] and len(history["hypervolume"]) == 2
    assert history["hypervolume"] == [f.hypervolume for f in store.fronts(job)]
    assert cache.peek("history", job) == history
    store.delete_job(job)
    cache.forget(job)
    assert cache.peek("history", job) is None
    with pytest.raises(StoreError, match="not found"):
        cache.get("history", job)


def test_size_bound_drops_the_least_recently_used(store: Store) -> None:
    job, _ = _job(store, 8)
    cache = QueryCache(store, size=2)
    for bound in (2.0, 4.0, 6.0):
        cache.get("front", job, max_latency=bound)
    assert cache.peek("front", job, max_latency=2.0) is None
    assert cache.peek("front", job, max_latency=6.0) is not None


def test_summary_reads_only_the_last_front(store: Store) -> None:
    job, _ = _job(store, 10)
    trials = store.trials(job, ["complete"])
    best = max(trials, key=lambda t: t.metrics["acc"])
    store.save_front(job, 5, [trials[0].trial_id], 1.0)
    store.save_front(job, 10, [best.trial_id, trials[1].trial_id], 2.0)
    summary = job_summary(store, store.job(job))
    assert summary["hypervolume"] == 2.0 and summary["best"]["acc"] == best.metrics["acc"]
    assert summary["done"] == 10 and store.counts(job) == {"running": 0, "complete": 10, "failed": 0}
    assert store.last_front(job).evaluations == 10 and store.last_front("nope") is None


def test_version_index_is_added_to_an_older_database(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    Store(url).close()
    store = Store(url)
    with store.engine.begin() as c:
        c.execute(text("DROP INDEX ix_nas_trials_job_state_finished"))
    store.close()
    reopened = Store(url)
    names = {i["name"] for i in inspect(reopened.engine).get_indexes("nas_trials")}
    assert "ix_nas_trials_job_state_finished" in names
    with reopened.engine.connect() as c:
        plan = " ".join(str(r) for r in c.execute(text(
            "EXPLAIN QUERY PLAN SELECT max(finished_at) FROM nas_trials WHERE job_id = 'x' AND state = 'complete'"
        )))  # fmt: skip
    assert "COVERING INDEX ix_nas_trials_job_state_finished" in plan
