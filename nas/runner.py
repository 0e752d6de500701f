"""``run_job``: the one execution path of a search (CLI, HTTP service and tests all call it).

A job is space + evaluator + searcher + store. Trials are recorded in the store
before they run and finished with their metrics or error, so a killed job
resumes (``run_job(..., job_id=...)``) without re-evaluating finished trials: the
searcher is rebuilt from the stored trials and trials left running are evaluated
again. Evaluation runs in this process (``executor: local``) or in Ray workers
through Ray Tune (``executor: ray``; local Ray by default, ``ray_address`` for a
cluster). A failing evaluation is recorded as a failed trial and the job goes on.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nas.core.arch import Arch
from nas.core.evaluator import Evaluator
from nas.core.pareto import Constraint, Objective, hypervolume, pareto_front
from nas.job import JobSpec, job_from_dict
from nas.searchers import Searcher, Trial, create_searcher
from nas.store import LeaseLost, Store, TrialRecord, runner_id

logger = logging.getLogger(__name__)

Outcome = tuple[dict[str, float] | None, str | None]


@dataclass
class JobResult:
    job_id: str
    state: str
    evaluations: int
    failed: int
    front: list[TrialRecord]
    hypervolume: float | None


def _error_text(exc: BaseException) -> str:
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return last[:2000]


def check_metrics(metrics: Mapping[str, Any], objectives: Sequence[Objective]) -> Outcome:
    """Metrics as floats, or a failure when an objective is missing or not finite."""
    try:
        clean = {str(k): float(v) for k, v in metrics.items()}
    except (TypeError, ValueError) as exc:
        return None, f"evaluator returned a non-numeric metric: {exc}"
    bad = [o.metric for o in objectives if not math.isfinite(clean.get(o.metric, math.nan))]
    if bad:
        return None, f"objectives {bad} missing or not finite in {sorted(clean)}"
    return clean, None


def evaluate_safely(evaluator: Evaluator, archs: Sequence[Arch], objectives: Sequence[Objective]) -> list[Outcome]:
    """Evaluates a batch; if it raises, evaluates one by one so only the bad archs fail."""
    try:
        results = evaluator.evaluate(list(archs))
        if len(results) != len(archs):
            raise RuntimeError(f"evaluator returned {len(results)} results for {len(archs)} archs")
        return [check_metrics(r, objectives) for r in results]
    except Exception as exc:
        if len(archs) == 1:
            logger.warning("trial failed: %s", _error_text(exc))
            return [(None, _error_text(exc))]
    return [evaluate_safely(evaluator, [a], objectives)[0] for a in archs]


def reference_point(
    points: Sequence[Mapping[str, float]], objectives: Sequence[Objective], given: Mapping[str, float] | None
) -> dict[str, float] | None:
    """The spec's reference, or the worst observed value of each objective (nadir)."""
    if given is not None:
        return dict(given)
    if not points:
        return None
    ref = {}
    for o in objectives:
        values = [p[o.metric] for p in points if math.isfinite(p.get(o.metric, math.nan))]
        if not values:
            return None
        ref[o.metric] = min(values) if o.direction == "max" else max(values)
    return ref


class FrontTracker:
    """Recomputes the job's Pareto front and hypervolume as trials land; stores each change."""

    def __init__(self, store: Store, job_id: str, spec: JobSpec) -> None:
        self.store, self.job_id = store, job_id
        self.objectives: list[Objective] = spec.objective_list
        self.constraints: list[Constraint] = spec.constraint_list
        self.reference = spec.reference
        self.points: dict[int, dict[str, float]] = {}
        self.evaluations = 0
        self.front: list[int] = []
        self.hv: float | None = None

    def add(self, trial_id: int, metrics: Mapping[str, float] | None) -> None:
        self.evaluations += 1
        if metrics is not None:
            self.points[trial_id] = dict(metrics)
        self.update()

    def update(self) -> None:
        ids = list(self.points)
        rows = [self.points[i] for i in ids]
        front = [ids[i] for i in pareto_front(rows, self.objectives, self.constraints)] if rows else []
        ref = reference_point(rows, self.objectives, self.reference)
        hv = hypervolume(rows, self.objectives, ref, self.constraints) if ref is not None else None
        if front != self.front or hv != self.hv:
            self.front, self.hv = front, hv
            self.store.save_front(self.job_id, self.evaluations, front, hv)

    def best(self) -> dict[str, float]:
        out = {}
        for o in self.objectives:
            values = [self.points[i][o.metric] for i in self.front]
            if values:
                out[o.metric] = max(values) if o.direction == "max" else min(values)
        return out


def _progress(total: int | None, initial: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="search", unit="eval", disable=not enabled, mininterval=1.0)


class _Budget:
    def __init__(self, spec: JobSpec, done: int, elapsed_before: float) -> None:
        self.evaluations = spec.budget.evaluations
        self.wall = spec.budget.wall_time_s
        self.done = done
        self.elapsed_before = elapsed_before
        self.start = time.monotonic()

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.start

    def remaining_evaluations(self) -> int | None:
        return None if self.evaluations is None else max(0, self.evaluations - self.done)

    def remaining_time(self) -> float | None:
        return None if self.wall is None else max(0.0, self.wall - self.elapsed)

    def exhausted(self) -> bool:
        r, t = self.remaining_evaluations(), self.remaining_time()
        return (r is not None and r <= 0) or (t is not None and t <= 0)


def default_lease_ttl() -> float:
    """Seconds a runner's lease outlives its last heartbeat (``$NAS_LEASE_TTL_S``, default 60)."""
    return float(os.environ.get("NAS_LEASE_TTL_S") or 60)


class LeaseKeeper:
    """Holds a job's lease for one runner: acquires it, renews it from a daemon thread, releases it.

    Heartbeats come every ``ttl_s / 6`` seconds; if a renewal finds the lease taken over
    (this process stalled past the TTL and another runner resumed the job), ``lost`` is
    set and the runner stops writing to the job.
    """

    def __init__(self, store: Store, job_id: str, ttl_s: float | None = None) -> None:
        self.store, self.job_id = store, job_id
        self.ttl_s = ttl_s if ttl_s is not None else default_lease_ttl()
        self.runner = runner_id()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LeaseKeeper:
        self.store.acquire_lease(self.job_id, self.runner, self.ttl_s)
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.job_id}", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 6):
            try:
                if not self.store.renew_lease(self.job_id, self.runner, self.ttl_s):
                    logger.error("job %s: lease lost to another runner; this runner stops", self.job_id)
                    self.lost.set()
                    return
            except Exception as exc:  # a missed heartbeat is retried at the next beat
                logger.warning("job %s: heartbeat failed: %s", self.job_id, _error_text(exc))

    def check(self) -> None:
        if self.lost.is_set():
            raise LeaseLost(f"job {self.job_id}: another runner took the job over; this runner stopped")

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not self.lost.is_set():
            try:
                self.store.release_lease(self.job_id, self.runner)
            except Exception as error:  # the lease then simply expires
                logger.warning("job %s: could not release the lease: %s", self.job_id, _error_text(error))


class TrialRecorder:
    """Store + searcher + front + progress bar updates for each finished trial (local and Ray executors)."""

    def __init__(self, store: Store, job_id: str, searcher: Searcher, tracker: FrontTracker, budget: _Budget,
                 bar: Any, lease: LeaseKeeper | None = None) -> None:  # fmt: skip
        self.store, self.job_id, self.searcher = store, job_id, searcher
        self.tracker, self.budget, self.bar = tracker, budget, bar
        self.lease = lease
        self.failed = 0

    @property
    def lease_lost(self) -> bool:
        return self.lease is not None and self.lease.lost.is_set()

    def started(self, trials: Sequence[Trial], worker: str) -> None:
        if self.lease is not None:
            self.lease.check()
        for t in trials:
            self.store.add_trial(self.job_id, t.trial_id, t.arch, worker=worker)

    def finished(self, trial_id: int, outcome: Outcome, worker: str | None = None) -> None:
        if self.lease_lost:  # the job is another runner's now: it re-evaluates this trial
            return
        metrics, error = outcome
        self.store.finish_trial(self.job_id, trial_id, metrics, error, worker=worker)
        self.searcher.tell(trial_id, metrics, error)
        self.tracker.add(trial_id, metrics)
        self.budget.done += 1
        self.failed += metrics is None
        self.store.update_job(self.job_id, elapsed_s=self.budget.elapsed)
        best = {k: round(v, 4) for k, v in self.tracker.best().items()}
        hv = self.tracker.hv
        self.bar.set_postfix({**best, "hv": f"{hv:.4g}" if hv is not None else "-", "failed": self.failed})
        self.bar.update(1)


def _run_local(evaluator: Evaluator, searcher: Searcher, recorder: TrialRecorder, spec: JobSpec,
               stop_after: int | None) -> None:  # fmt: skip
    budget = recorder.budget
    queue = sorted(searcher.pending(), key=lambda t: t.trial_id)
    started = 0
    while not budget.exhausted() and (stop_after is None or started < stop_after):
        room = budget.remaining_evaluations()
        n = spec.parallelism if room is None else min(spec.parallelism, room)
        if stop_after is not None:
            n = min(n, stop_after - started)
        trials, queue = queue[:n], queue[n:]
        if len(trials) < n:
            trials += searcher.ask(n - len(trials))
        if not trials:
            logger.info("search space exhausted")
            break
        recorder.started(trials, worker="local")
        outcomes = evaluate_safely(evaluator, [t.arch for t in trials], spec.objective_list)
        for trial, outcome in zip(trials, outcomes):
            recorder.finished(trial.trial_id, outcome, worker="local")
        started += len(trials)


def run_job(
    spec: JobSpec | None,
    store: Store,
    *,
    job_id: str | None = None,
    ray_address: str | None = None,
    executor: str | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    evaluator: Evaluator | None = None,
    on_created: Callable[[str], None] | None = None,
    allow_code: bool = True,
    lease_ttl_s: float | None = None,
) -> JobResult:
    """Runs (or resumes, with ``job_id``) a search job to its budget.

    Args:
        spec: The job; ``None`` when resuming (the stored spec is used).
        store: Where jobs and trials live.
        job_id: Resume this stored job instead of creating one.
        ray_address: Ray cluster address (default: start a local Ray).
        executor: Override the spec's executor (``ray`` or ``local``).
        progress: Show a progress bar.
        stop_after: Stop after this many new trials (for tests and stepwise runs).
        evaluator: Use this evaluator instead of building the spec's (tests, services).
        on_created: Called with the job id once the job exists.
        allow_code: Whether the spec may name code (``module:factory``, ``custom``); the
            HTTP service runs its jobs with ``False``.
        lease_ttl_s: Seconds this runner's lease on the job outlives its last heartbeat.

    Raises:
        JobBusy: when another runner holds the job (it is left untouched).
        LeaseLost: when another runner took the job over while this one ran.
    """
    if job_id is not None:
        record = store.job(job_id)
        stored = job_from_dict(record.spec)
        spec = stored if spec is None else spec
    elif spec is None:
        raise ValueError("run_job: give a spec, or a job_id to resume")
    assert spec is not None
    space = spec.space.build(allow_code=allow_code)
    if job_id is None:
        job_id = store.create_job(spec.name, spec.to_dict(), space.space_id, spec.budget.evaluations)
    elif store.job(job_id).space_id != space.space_id:
        raise ValueError(f"job {job_id} searched space {store.job(job_id).space_id}, not {space.space_id}")
    if on_created is not None:
        on_created(job_id)
    with LeaseKeeper(store, job_id, lease_ttl_s) as lease:
        return _run_leased(spec, space, store, job_id, lease, ray_address, executor, progress, stop_after,
                           evaluator, allow_code)  # fmt: skip


def _run_leased(
    spec: JobSpec,
    space: Any,
    store: Store,
    job_id: str,
    lease: LeaseKeeper,
    ray_address: str | None,
    executor: str | None,
    progress: bool,
    stop_after: int | None,
    evaluator: Evaluator | None,
    allow_code: bool,
) -> JobResult:
    from nas.evaluators import build_evaluator

    try:
        evaluator = evaluator or build_evaluator(spec.evaluator, space, allow_code=allow_code)
        searcher = create_searcher(
            spec.searcher.kind, space, spec.objective_list, spec.constraint_list, spec.seed, spec.searcher.settings,
            storage=store.url if not store.url.endswith(":memory:") else None, study_name=f"nas-{job_id}",
            cheap=getattr(evaluator, "evaluate_cheap", None), cheap_metrics=getattr(evaluator, "cheap_metrics", ()),
        )  # fmt: skip
    except Exception as exc:
        store.update_job(job_id, state="failed", error=_error_text(exc))
        raise
    stored_trials = store.trials(job_id)
    searcher.restore([_as_observation(t) for t in stored_trials])
    tracker = FrontTracker(store, job_id, spec)
    for t in stored_trials:
        if t.state != "running":
            tracker.evaluations += 1
            if t.state == "complete":
                tracker.points[t.trial_id] = _metrics(t)
    tracker.update()
    done = tracker.evaluations
    budget = _Budget(spec, done, store.job(job_id).elapsed_s)
    bar = _progress(spec.budget.evaluations, done, progress)
    recorder = TrialRecorder(store, job_id, searcher, tracker, budget, bar, lease)
    store.update_job(job_id, state="running", error=None)
    try:
        if (executor or spec.executor) == "ray":
            from nas.ray_runner import run_with_ray

            run_with_ray(evaluator, searcher, recorder, spec, ray_address, stop_after)
        else:
            _run_local(evaluator, searcher, recorder, spec, stop_after)
        lease.check()
    except LeaseLost:  # the job belongs to the runner that took it over: leave its state alone
        raise
    except KeyboardInterrupt:
        store.update_job(job_id, state="interrupted", elapsed_s=budget.elapsed)
        raise
    except Exception as exc:
        store.update_job(job_id, state="failed", error=_error_text(exc), elapsed_s=budget.elapsed)
        raise
    finally:
        bar.close()
    state = "done" if budget.exhausted() or stop_after is None else "interrupted"
    store.update_job(job_id, state=state, elapsed_s=budget.elapsed)
    trials = {t.trial_id: t for t in store.trials(job_id)}
    return JobResult(
        job_id, state, tracker.evaluations, sum(t.state == "failed" for t in trials.values()),
        [trials[i] for i in tracker.front], tracker.hv,
    )  # fmt: skip


def _metrics(t: TrialRecord) -> dict[str, float]:
    return {k: (math.nan if v is None else float(v)) for k, v in t.metrics.items()}


def _as_observation(t: TrialRecord) -> dict[str, Any]:
    return {"trial_id": t.trial_id, "arch": t.arch, "state": t.state, "metrics": _metrics(t), "error": t.error}
