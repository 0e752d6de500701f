"""Every job's trials as a multi-objective Optuna study in the job store's own database.

So that ``optuna-dashboard <store URL>`` (and any Optuna tool: ``optuna.load_study``, its plots)
shows a job whatever its searcher: the study ``nas-<job id>-<job name>`` (jobs made before
names were added keep ``nas-<job id>``; :func:`job_study_name` finds either) has the job's objectives as its
directions, one Optuna trial per finished trial (params: the arch's genes; values: the
objectives; constraints: ``g <= 0`` when met; user attributes: our trial id, the arch id, every
metric, the error of a failed trial). Optuna searchers (TPE, GP, NSGA-II) keep that study
themselves; for the others :class:`StudyMirror` copies the store's trials in, in batches while
the job runs and completely when it stops, skipping those already there, so a resumed job never
duplicates one. ``nas delete JOB`` / ``DELETE /api/jobs/{id}`` removes the study with the job.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from nas.core.pareto import Constraint, Objective
from nas.core.space import SearchSpace
from nas.searchers.base import constraint_values
from nas.store import Store, TrialRecord, is_job_study

logger = logging.getLogger(__name__)

TRIAL_KEY = "nas_trial_id"  # the same user attribute the Optuna searcher writes


DASHBOARD_CONSTRAINTS = "constraints"  # the system attribute optuna-dashboard reads: a list, g <= 0 when met


def study_name(job_id: str, job_name: str = "") -> str:
    """The name a new Optuna study of job ``job_id`` gets: the id, then the job's name, so that
    Optuna's dashboard lists jobs by name (issue 27, finding 10)."""
    return f"nas-{job_id}-{job_name}" if job_name else f"nas-{job_id}"


def job_study_name(storage: str, job_id: str, job_name: str = "") -> str:
    """The study of job ``job_id`` in ``storage``: the existing one (whatever name it was given
    when made) or the name a new one gets."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        names = optuna.get_all_study_names(storage=storage)
    except Exception:  # no Optuna tables yet, or an unreachable store: a new study's name
        names = []
    return next((n for n in names if is_job_study(n, job_id)), study_name(job_id, job_name))


def mirrored_by_searcher(searcher: Any) -> bool:
    """Whether the searcher keeps the job's Optuna study itself (the Optuna samplers do)."""
    return bool(getattr(searcher, "keeps_optuna_study", False))


class StudyMirror:
    """Copies a job's finished trials from the store into its Optuna study.

    ``sync()`` adds what the study lacks; ``maybe_sync()`` does so at most every ``interval_s``
    (called after each trial while a job runs). A failure to write the study is logged, never
    fatal: the store stays the record and the next sync catches up.
    """

    def __init__(
        self,
        store: Store,
        job_id: str,
        space: SearchSpace,
        objectives: Sequence[Objective],
        constraints: Sequence[Constraint] = (),
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        name: str | None = None,
    ) -> None:
        self.store, self.job_id, self.space = store, job_id, space
        self._name = name
        self.objectives, self.constraints = list(objectives), list(constraints)
        self.interval_s, self.clock = interval_s, clock
        self._last = clock()
        self._study: Any = None
        self._known: set[int] | None = None

    @property
    def name(self) -> str:
        """The job's study: ``name`` as given, else the existing one or the name a new one gets."""
        if self._name is None:
            self._name = job_study_name(self.store.connection_url, self.job_id, self.store.job(self.job_id).name)
        return self._name

    @property
    def study(self) -> Any:
        if self._study is None:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self._study = optuna.create_study(
                storage=self.store.connection_url, study_name=self.name, load_if_exists=True,
                directions=["maximize" if o.direction == "max" else "minimize" for o in self.objectives],
            )  # fmt: skip
            with warnings.catch_warnings():  # "experimental" since Optuna 3.2
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self._study.set_metric_names([o.metric for o in self.objectives])
        return self._study

    def _frozen(self, trial: TrialRecord, distributions: dict[str, Any]) -> Any:
        import optuna
        from optuna.trial import TrialState

        arch = self.space.make(trial.arch)
        attrs: dict[str, Any] = {TRIAL_KEY: trial.trial_id, "arch_id": trial.arch_id, "worker": trial.worker}
        metrics = {k: v for k, v in trial.metrics.items() if v is not None}
        values = [metrics.get(o.metric, math.nan) for o in self.objectives]
        complete = trial.state == "complete" and all(math.isfinite(v) for v in values)
        system: dict[str, Any] = {}
        if complete:
            attrs["metrics"] = metrics
            g = list(constraint_values(metrics, self.constraints))
            if g:  # the list form: Optuna reads it (as "0", "1", ...) and so does optuna-dashboard
                system[DASHBOARD_CONSTRAINTS] = g
        else:
            attrs["error"] = trial.error or "no finite value for every objective"
        return optuna.trial.create_trial(
            params=self.space.to_params(arch), distributions=distributions, user_attrs=attrs,
            state=TrialState.COMPLETE if complete else TrialState.FAIL, values=values if complete else None,
            system_attrs=system or None,
        )  # fmt: skip

    def sync(self) -> int:
        """Adds the store's finished trials that the study lacks; returns how many were added."""
        self._last = self.clock()
        try:
            if self._known is None:
                self._known = {
                    int(t.user_attrs[TRIAL_KEY])
                    for t in self.study.get_trials(deepcopy=False)
                    if TRIAL_KEY in t.user_attrs
                }
            distributions = dict(self.space.to_optuna())
            new = [
                self._frozen(t, distributions)
                for t in self.store.trials(self.job_id, ["complete", "failed"])
                if t.trial_id not in self._known
            ]
            if new:
                self.study.add_trials(new)
                self._known.update(int(t.user_attrs[TRIAL_KEY]) for t in new)
            return len(new)
        except Exception as exc:
            logger.warning("Optuna study %s not updated (%s); the next sync retries", self.name, exc)
            self._study, self._known = None, None
            return 0

    def maybe_sync(self) -> int:
        """:meth:`sync` if ``interval_s`` passed since the last."""
        return self.sync() if self.clock() - self._last >= self.interval_s else 0


__all__ = [
    "DASHBOARD_CONSTRAINTS",
    "StudyMirror",
    "is_job_study",
    "job_study_name",
    "mirrored_by_searcher",
    "study_name",
]
