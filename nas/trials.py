"""What both executors share while a job runs: safe evaluation, the front, the budget, the
trial recorder and the job's lease (local and Ray executors use the same public pieces)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from nas.core.arch import Arch
from nas.core.evaluator import Evaluator
from nas.core.pareto import Constraint, Objective, hypervolume, pareto_front
from nas.job import JobSpec
from nas.searchers import Searcher, Trial
from nas.store import LeaseLost, Store, runner_id

logger = logging.getLogger(__name__)

Outcome = tuple[dict[str, float] | None, str | None]


def error_text(exc: BaseException) -> str:
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
            logger.warning("trial failed: %s", error_text(exc))
            return [(None, error_text(exc))]
    return [evaluate_safely(evaluator, [a], objectives)[0] for a in archs]


def reference_point(
    points: Sequence[Mapping[str, float]], objectives: Sequence[Objective], given: Mapping[str, float] | None
) -> dict[str, float] | None:
    """The spec's reference, or a robust nadir: per objective, the worst observed value once
    the worst 5% of the points (at least one, from 3 points on) are set aside.

    With the plain nadir one degenerate arch (an NB201 cell with no path: 10% accuracy) sets
    the reference alone and its near-zero latency buys it most of the hypervolume (a search's
    hypervolume jumped from 90 to 1,467 when one landed). Set aside, such an outlier lies
    outside the reference box and adds nothing; the archs a front is made of stay inside.
    """
    if given is not None:
        return dict(given)
    if not points:
        return None
    ref = {}
    for o in objectives:
        values = sorted(
            (p[o.metric] for p in points if math.isfinite(p.get(o.metric, math.nan))), reverse=o.direction == "min"
        )  # worst first
        if not values:
            return None
        drop = math.ceil(0.05 * len(values)) if len(values) >= 3 else 0
        ref[o.metric] = values[drop]
    return ref


REFERENCE_AFTER = 10  # completed trials that fix the reference of objectives nothing else bounds


def known_reference(
    objectives: Sequence[Objective], constraints: Sequence[Constraint], worst_cheap: Mapping[str, float]
) -> dict[str, float]:
    """The parts of a job's hypervolume reference known before any trial: per objective, the bound
    of a constraint on its worse side (a latency limit for a latency to minimise), else its worst
    value over the space where the evaluator computes it cheaply (``worst_cheap``: MACs, table
    latency, parameters of the largest subnet)."""
    ref: dict[str, float] = {}
    for o in objectives:
        sides = [c.max if o.direction == "min" else c.min for c in constraints if c.metric == o.metric]
        bounds = [float(b) for b in sides if b is not None]
        if bounds:
            ref[o.metric] = min(bounds) if o.direction == "min" else max(bounds)
        elif o.metric in worst_cheap and math.isfinite(worst_cheap[o.metric]):
            ref[o.metric] = float(worst_cheap[o.metric])
    return ref


def data_reference(points: Sequence[Mapping[str, float]], objective: Objective) -> float | None:
    """The reference of an objective nothing else bounds, from the first completed trials: 0 for a
    fraction to maximise (accuracy), else their worst value moved out by a tenth of their range."""
    values = [p[objective.metric] for p in points if math.isfinite(p.get(objective.metric, math.nan))]
    if not values:
        return None
    if objective.direction == "max" and min(values) >= 0 and max(values) <= 1:
        return 0.0  # the same for every job that maximises a fraction: comparable hypervolumes
    worst = max(values) if objective.direction == "min" else min(values)
    margin = 0.1 * ((max(values) - min(values)) or abs(worst) or 1.0)
    return worst + margin if objective.direction == "min" else worst - margin


class FrontTracker:
    """Recomputes the job's Pareto front and hypervolume as trials land; stores each change.

    The hypervolume's reference point is fixed for the job: the spec's, else one made of each
    objective's constraint bound or worst value over the space (:func:`known_reference`) and, for
    objectives nothing bounds, the first :data:`REFERENCE_AFTER` completed trials
    (:func:`data_reference`), recorded in the job's spec once complete. Against a fixed reference
    the hypervolume never decreases; until it is complete it is not reported (``None``).
    """

    def __init__(
        self, store: Store, job_id: str, spec: JobSpec, worst_cheap: Mapping[str, float] | None = None
    ) -> None:
        self.store, self.job_id = store, job_id
        self.objectives: list[Objective] = spec.objective_list
        self.constraints: list[Constraint] = spec.constraint_list
        self.reference: dict[str, float] | None = dict(spec.reference) if spec.reference is not None else None
        self._known = known_reference(self.objectives, self.constraints, worst_cheap or {})
        self._after = (
            REFERENCE_AFTER if spec.budget.evaluations is None else min(REFERENCE_AFTER, spec.budget.evaluations)
        )
        self.points: dict[int, dict[str, float]] = {}
        self.evaluations = 0
        self.front: list[int] = []
        self.hv: float | None = None

    def add(self, trial_id: int, metrics: Mapping[str, float] | None) -> None:
        self.evaluations += 1
        if metrics is not None:
            self.points[trial_id] = dict(metrics)
        self.update()

    def _fix_reference(self, rows: list[dict[str, float]]) -> None:
        """Completes and records the reference once enough trials completed (or all are known)."""
        ref = dict(self._known)
        missing = [o for o in self.objectives if o.metric not in ref]
        if missing and len(rows) < self._after:
            return
        for o in missing:
            value = data_reference(rows, o)
            if value is None:
                return
            ref[o.metric] = value
        self.reference = ref
        self.store.set_reference(self.job_id, ref)
        logger.info("job %s: hypervolume reference fixed at %s", self.job_id, ref)

    def update(self) -> None:
        ids = list(self.points)
        rows = [self.points[i] for i in ids]
        front = [ids[i] for i in pareto_front(rows, self.objectives, self.constraints)] if rows else []
        if self.reference is None:
            self._fix_reference(rows)
        ref = self.reference
        hv = hypervolume(rows, self.objectives, ref, self.constraints) if ref is not None and rows else None
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


@contextlib.contextmanager
def progress_output() -> Iterator[None]:
    """While a progress bar is drawn: warnings go to logging, and log records are written above
    the bar (``tqdm.write``) instead of through it."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    logging.captureWarnings(True)
    try:
        with logging_redirect_tqdm():
            yield
    finally:
        logging.captureWarnings(False)


def progress_bar(total: int | None, initial: int, enabled: bool) -> Any:
    from nas.core.progress import bar

    return bar(total=total, initial=initial, desc="search", unit="eval", disable=not enabled)


class Budget:
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
                    if self.store.job(self.job_id).state == "cancelled":
                        logger.info("job %s: cancelled; this runner stops", self.job_id)
                    else:
                        logger.error("job %s: lease lost to another runner; this runner stops", self.job_id)
                    self.lost.set()
                    return
            except Exception as exc:  # a missed heartbeat is retried at the next beat
                logger.warning("job %s: heartbeat failed: %s", self.job_id, error_text(exc))

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
                logger.warning("job %s: could not release the lease: %s", self.job_id, error_text(error))


class TrialRecorder:
    """Store + searcher + front + progress bar updates for each finished trial (local and Ray executors)."""

    def __init__(self, store: Store, job_id: str, searcher: Searcher, tracker: FrontTracker, budget: Budget,
                 bar: Any, lease: LeaseKeeper | None = None, mirror: Any = None) -> None:  # fmt: skip
        self.store, self.job_id, self.searcher = store, job_id, searcher
        self.tracker, self.budget, self.bar = tracker, budget, bar
        self.lease = lease
        self.mirror = mirror  # the job's Optuna study copy (nas.optuna_study.StudyMirror), if kept
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
        if not self.store.record_elapsed(self.job_id, self.budget.elapsed):  # cancelled: drop it and stop
            if self.lease is not None:
                self.lease.lost.set()
            raise LeaseLost(f"job {self.job_id} is no longer running (cancelled); this runner stops")
        metrics, error = outcome
        self.store.finish_trial(self.job_id, trial_id, metrics, error, worker=worker)
        self.searcher.tell(trial_id, metrics, error)
        self.tracker.add(trial_id, metrics)
        self.budget.done += 1
        self.failed += metrics is None
        best = {f"best {k}": round(v, 4) for k, v in self.tracker.best().items()}  # per objective
        hv = self.tracker.hv
        postfix = {**best, "hv": f"{hv:.4g}" if hv is not None else "-", "failed": self.failed}
        self.bar.set_postfix(postfix, refresh=False)  # drawn with the update: at most every interval
        self.bar.update(1)
        if self.mirror is not None:
            self.mirror.maybe_sync()
