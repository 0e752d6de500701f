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

import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nas.core.evaluator import Evaluator
from nas.core.extras import require_extra
from nas.job import JobSpec, job_from_dict
from nas.optuna_study import StudyMirror, job_study_name, mirrored_by_searcher, study_name
from nas.searchers import Searcher, create_searcher
from nas.store import JobCancelled, LeaseLost, Store, TrialRecord
from nas.trials import (
    Budget,
    FrontTracker,
    LeaseKeeper,
    TrialRecorder,
    check_metrics,
    error_text,
    evaluate_safely,
    progress_bar,
    progress_output,
    reference_point,
)

__all__ = ["JobResult", "check_metrics", "evaluate_safely", "reference_point", "resolve_executor", "run_job"]

logger = logging.getLogger(__name__)


@dataclass
class JobResult:
    job_id: str
    state: str
    evaluations: int
    failed: int
    front: list[TrialRecord]
    hypervolume: float | None


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


LOOKUP_EVALUATORS = ("tabular", "predictor")  # evaluations that are table or model lookups


def resolve_executor(spec: JobSpec, override: str | None = None, ray_address: str | None = None) -> str:
    """``ray`` or ``local`` for a job. ``auto`` (the default) picks Ray when it can help: a Ray
    cluster address is given, or several trials run at once (``parallelism`` > 1) on an
    evaluator that does real work; lookups (``tabular``, ``predictor``, unless they also measure
    latency on a device) always run locally, where Ray's start-up would cost more than the whole
    search (17 s for 10 table lookups)."""
    choice = override or spec.executor
    if choice != "auto":
        return choice
    if spec.evaluator.get("kind") in LOOKUP_EVALUATORS and not spec.evaluator.get("latency_measure"):
        return "local"
    return "ray" if ray_address is not None or spec.parallelism > 1 else "local"


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
    continue_cancelled: bool = True,
    check_path: Callable[[str, str], str] | None = None,
) -> JobResult:
    """Runs (or resumes, with ``job_id``) a search job to its budget.

    Args:
        spec: The job; ``None`` when resuming (the stored spec is used).
        store: Where jobs and trials live.
        job_id: Resume this stored job instead of creating one.
        ray_address: Ray cluster address (default: start a local Ray).
        executor: Override the spec's executor (``ray``, ``local`` or ``auto``: :func:`resolve_executor`).
        progress: Show a progress bar.
        stop_after: Stop after this many new trials (for tests and stepwise runs).
        evaluator: Use this evaluator instead of building the spec's (tests, services).
        on_created: Called with the job id once the job exists.
        allow_code: Whether the spec may name code (``module:factory``, ``custom``); the
            HTTP service runs its jobs with ``False``.
        lease_ttl_s: Seconds this runner's lease on the job outlives its last heartbeat.
        continue_cancelled: Whether a cancelled job is run again (``nas resume``); the service's
            worker passes ``False``, so a cancel that lands before the runner starts is final.
        check_path: Applied to every file the evaluator reads, again at run time (the service's
            data roots; see :func:`nas.evaluators.build_evaluator`).

    Raises:
        JobBusy: when another runner holds the job (it is left untouched).
        LeaseLost: when another runner took the job over while this one ran.
        JobCancelled: when the job was cancelled while this runner ran it (``Store.cancel_job``).
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
                           evaluator, allow_code, continue_cancelled, check_path)  # fmt: skip


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
    continue_cancelled: bool,
    check_path: Callable[[str, str], str] | None,
) -> JobResult:
    from nas.device_measure import measure_resolver
    from nas.devices import DeviceCatalog, device_resolver
    from nas.evaluators import build_evaluator

    storage = store.connection_url if not store.url.endswith(":memory:") else None
    study = job_study_name(storage, job_id, spec.name) if storage else study_name(job_id, spec.name)
    try:
        evaluator = evaluator or build_evaluator(
            spec.evaluator,
            space,
            allow_code=allow_code,
            check_path=check_path,
            devices=device_resolver(store),
            measure=measure_resolver(DeviceCatalog(store), ray_address),
        )
        searcher = create_searcher(
            spec.searcher.kind, space, spec.objective_list, spec.constraint_list, spec.seed, spec.searcher.settings,
            allow_invalid=spec.allow_invalid, study_name=study, storage=storage,
            cheap=getattr(evaluator, "evaluate_cheap", None), cheap_metrics=getattr(evaluator, "cheap_metrics", ()),
        )  # fmt: skip
    except Exception as exc:
        store.transition_job(job_id, "failed", error=error_text(exc))
        raise
    searcher.stop_check = lease.check  # a cancel (lease revoked) stops the searcher inside long steps
    stored_trials = store.trials(job_id)
    searcher.restore([_as_observation(t) for t in stored_trials])
    tracker = FrontTracker(
        store, job_id, spec, _worst_cheap(evaluator, space, spec) if spec.reference is None else None
    )
    for t in stored_trials:
        if t.state != "running":
            tracker.evaluations += 1
            if t.state == "complete":
                tracker.points[t.trial_id] = _metrics(t)
    tracker.update()
    done = tracker.evaluations
    budget = Budget(spec, done, store.job(job_id).elapsed_s)
    bar = progress_bar(spec.budget.evaluations, done, progress)
    mirror = None
    if spec.optuna_study and storage is not None and not mirrored_by_searcher(searcher):
        mirror = StudyMirror(store, job_id, space, spec.objective_list, spec.constraint_list, name=study)
    recorder = TrialRecorder(store, job_id, searcher, tracker, budget, bar, lease, mirror)
    # one compare-and-set: a cancel stored before this point stays (the service never runs it again)
    if not store.transition_job(job_id, "running", unless=() if continue_cancelled else ("cancelled",), error=None):
        raise JobCancelled(f"job {job_id} was cancelled before it started; `nas resume {job_id}` runs it")
    # while the bar is drawn, log records (and warnings, routed to logging) are written above it
    quiet_bar = progress_output() if progress else contextlib.nullcontext()
    try:
        with quiet_bar:
            if resolve_executor(spec, executor, ray_address) == "ray":
                require_extra("ray", "executor: ray")
                from nas.ray_runner import run_with_ray  # loads Ray: only when a job asks for it

                run_with_ray(evaluator, searcher, recorder, spec, ray_address, stop_after)
            else:
                _run_local(evaluator, searcher, recorder, spec, stop_after)
            lease.check()
    except LeaseLost as exc:  # the job belongs to the runner that took it over: leave its state alone
        if store.job(job_id).state == "cancelled":
            raise JobCancelled(f"job {job_id} was cancelled; `nas resume {job_id}` continues it") from exc
        raise
    except KeyboardInterrupt:
        store.transition_job(job_id, "interrupted", elapsed_s=budget.elapsed)
        raise
    except Exception as exc:
        store.transition_job(job_id, "failed", error=error_text(exc), elapsed_s=budget.elapsed)
        raise
    finally:
        bar.close()
        if mirror is not None:
            mirror.sync()
    state = "done" if budget.exhausted() or stop_after is None else "interrupted"
    trials = {t.trial_id: t for t in store.trials(job_id)}
    error = None
    if state == "done" and trials and not any(t.state == "complete" for t in trials.values()):
        state, error = "failed", all_failed_reason(list(trials.values()))  # not a green "done" with nothing in it
    if not store.transition_job(job_id, state, elapsed_s=budget.elapsed, error=error):  # cancelled at the end
        raise JobCancelled(f"job {job_id} was cancelled; `nas resume {job_id}` continues it")
    return JobResult(
        job_id, state, tracker.evaluations, sum(t.state == "failed" for t in trials.values()),
        [trials[i] for i in tracker.front], tracker.hv,
    )  # fmt: skip


def _worst_cheap(evaluator: Evaluator, space: Any, spec: JobSpec) -> dict[str, float]:
    """Each cheap cost objective's worst value over the space (at its smallest and largest subnets): part
    of the job's fixed hypervolume reference. Empty where the evaluator computes none cheaply."""
    cheap = set(getattr(evaluator, "cheap_metrics", ()) or ())
    wanted = [o for o in spec.objective_list if o.metric in cheap and o.direction == "min"]  # costs: worst when largest
    if not wanted:
        return {}
    try:
        rows = evaluator.evaluate_cheap([space.min_arch(), space.max_arch()])  # type: ignore[attr-defined]
    except Exception as exc:  # the reference then comes from the first trials
        logger.warning("hypervolume reference: the cheap metrics of the extreme subnets failed: %s", error_text(exc))
        return {}
    out = {}
    for o in wanted:
        values = [float(r[o.metric]) for r in rows if o.metric in r]
        if values:
            out[o.metric] = max(values) if o.direction == "min" else min(values)
    return out


def all_failed_reason(trials: list[TrialRecord]) -> str:
    """Why a job whose every trial failed failed: its commonest error (first line) and how often."""
    import collections

    errors = collections.Counter((t.error or "no error recorded").splitlines()[0][:300] for t in trials)
    error, count = errors.most_common(1)[0]
    return (
        f"every trial failed ({len(trials)}); the commonest error ({count} of {len(trials)}): {error}. "
        "`nas trials JOB --state failed` lists them"
    )


def _metrics(t: TrialRecord) -> dict[str, float]:
    return {k: (math.nan if v is None else float(v)) for k, v in t.metrics.items()}


def _as_observation(t: TrialRecord) -> dict[str, Any]:
    return {"trial_id": t.trial_id, "arch": t.arch, "state": t.state, "metrics": _metrics(t), "error": t.error}
