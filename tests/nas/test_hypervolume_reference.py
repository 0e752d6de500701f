"""The hypervolume's reference is fixed for a job (issue 27, finding 5): it never decreases, and jobs
with the same objectives and bounds are measured against the same point."""

from __future__ import annotations

from pathlib import Path

from nas.core.pareto import Objective
from nas.job import job_from_dict
from nas.runner import run_job
from nas.store import Store
from nas.testing.toy import ToyEvaluator, ToySpace, toy_job_spec, toy_metrics
from nas.trials import REFERENCE_AFTER, data_reference, known_reference


def _run(store: Store, **overrides: object) -> str:
    spec = job_from_dict(toy_job_spec(reference=None, **overrides))
    return run_job(spec, store, progress=False, evaluator=ToyEvaluator(ToySpace())).job_id


def test_the_reference_is_fixed_recorded_and_the_hypervolume_never_decreases(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    job_id = _run(store, budget={"evaluations": 40})
    fronts = store.fronts(job_id)
    reference = store.job(job_id).spec["reference"]
    # lat is bounded by its constraint (max 6); acc, which nothing bounds, by the first 10 trials
    assert reference["lat"] == 6.0
    first = [t.metrics["acc"] for t in store.trials(job_id, ["complete"])[:REFERENCE_AFTER]]
    assert reference["acc"] == data_reference([{"acc": a} for a in first], Objective("acc", "max"))
    hvs = [f.hypervolume for f in fronts if f.hypervolume is not None]
    assert hvs and hvs == sorted(hvs) and hvs[-1] > 0
    assert all(f.hypervolume is None for f in fronts if f.evaluations < REFERENCE_AFTER)
    # a resumed job keeps it: the recorded spec names it
    again = run_job(None, store, job_id=job_id, progress=False, evaluator=ToyEvaluator(ToySpace()))
    assert store.job(job_id).spec["reference"] == reference and again.hypervolume == hvs[-1]


def test_jobs_with_the_same_objectives_and_bounds_share_a_reference(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    # both objectives bounded before any trial: one by its constraint, one by the space (lat is cheap)
    objectives = [{"metric": "lat", "direction": "min"}, {"metric": "acc", "direction": "max"}]
    constraints = [{"metric": "acc", "min": 2.0}]
    a = _run(store, objectives=objectives, constraints=constraints, budget={"evaluations": 20})
    b = _run(store, objectives=objectives, constraints=constraints, budget={"evaluations": 20},
             searcher={"kind": "random", "settings": {}}, seed=3)  # fmt: skip
    space = ToySpace()
    worst_lat = max(toy_metrics(space.max_arch())["lat"], toy_metrics(space.min_arch())["lat"])
    assert store.job(a).spec["reference"] == store.job(b).spec["reference"] == {"lat": worst_lat, "acc": 2.0}


def test_reference_parts() -> None:
    acc, lat = Objective("accuracy", "max"), Objective("latency_ms", "min")
    from nas.core.pareto import Constraint

    assert known_reference([acc, lat], [Constraint("latency_ms", max=20.0)], {"latency_ms": 55.0}) == {
        "latency_ms": 20.0
    }
    assert known_reference([acc, lat], [], {"latency_ms": 55.0}) == {"latency_ms": 55.0}
    assert data_reference([{"accuracy": 0.7}, {"accuracy": 0.9}], acc) == 0.0  # a fraction: 0 for every job
    assert data_reference([{"latency_ms": 10.0}, {"latency_ms": 20.0}], lat) == 21.0
    assert data_reference([], lat) is None
