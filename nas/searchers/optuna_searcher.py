"""Optuna's samplers (TPE, GP, NSGA-II) behind our ask/tell interface.

The study lives in an Optuna storage: in memory by default, or an RDB URL (the
job store's database, so one file holds both). Optuna may propose an arch that
was already asked; such a proposal is answered at once with the stored metrics
(or failed, if that arch is still running) and Optuna is asked again, a bounded
number of times, before falling back to an unseen random arch (enqueued into the
study so Optuna learns from it too). Constraint values are set on every Optuna
trial with ``Trial.set_constraint`` (``g <= 0`` feasible), which every sampler reads.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from nas.core.arch import Arch
from nas.core.pareto import Constraint, Objective
from nas.core.space import SearchSpace
from nas.searchers.base import Observation, Searcher, Trial, constraint_values

logger = logging.getLogger(__name__)

SAMPLERS = ("tpe", "gp", "nsga2")
# Constraint values (g <= 0 when met) as a list under this system attribute: the form Optuna's
# samplers read (as "0", "1", ...) and the one optuna-dashboard shows
CONSTRAINTS_KEY = "constraints"
TRIAL_KEY = "nas_trial_id"


class OptunaSearcher(Searcher):
    """Optuna sampler ``sampler`` (tpe | gp | nsga2).

    Settings: ``n_startup_trials`` (10; random trials before TPE/GP model),
    ``population`` (20; NSGA-II population size).

    Args:
        storage: Optuna storage URL (``sqlite:///...``, ``postgresql://...``) or None for memory.
        study_name: Study name in the storage (default ``nas-<seed>``).
    """

    sampler_name = "tpe"

    @property
    def keeps_optuna_study(self) -> bool:
        """The study holds every trial; with the job store as its storage, it is the job's study."""
        return self.storage is not None

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        constraints: Sequence[Constraint] = (),
        seed: int = 0,
        *,
        storage: str | None = None,
        study_name: str | None = None,
        **settings: Any,
    ) -> None:
        super().__init__(space, objectives, constraints, seed, **settings)
        self.storage = storage
        self.study_name = study_name or f"nas-{self.kind}-{self.seed}"
        self._study: Any = None
        self._open: dict[int, Any] = {}  # our trial id -> Optuna trial awaiting its result
        self._proposed: dict[str, Any] = {}  # arch id -> Optuna trial, between _propose and _on_ask

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"n_startup_trials": 10, "population": 20}

    @classmethod
    def setting_bounds(cls) -> dict[str, tuple[float, float]]:
        return {"n_startup_trials": (0, 1_000_000), "population": (2, 100_000)}

    # ------------------------------------------------------------ optuna objects
    def _sampler(self, seed: int) -> Any:
        import warnings

        import optuna

        if self.sampler_name == "tpe":
            return optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=self.settings["n_startup_trials"], multivariate=True
            )
        if self.sampler_name == "gp":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.samplers.GPSampler(
                    seed=seed, n_startup_trials=self.settings["n_startup_trials"], deterministic_objective=True
                )
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=self.settings["population"])

    def _constraint_attrs(self, obs: Observation) -> dict[str, Any]:
        values = list(constraint_values(obs.metrics, self.constraints))
        return {CONSTRAINTS_KEY: values} if values else {}

    @property
    def study(self) -> Any:
        if self._study is None:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self._study = optuna.create_study(
                storage=self.storage,
                study_name=self.study_name,
                sampler=self._sampler(self.seed),
                directions=["maximize" if o.direction == "max" else "minimize" for o in self.objectives],
                load_if_exists=True,
            )
            with warnings.catch_warnings():  # dashboards label the axes; "experimental" since Optuna 3.2
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self._study.set_metric_names([o.metric for o in self.objectives])
        return self._study

    def _values(self, obs: Observation) -> list[float]:
        return [obs.metrics[o.metric] for o in self.objectives]

    def _tell_optuna(self, otrial: Any, obs: Observation | None) -> None:
        from optuna.trial import TrialState

        if obs is None or obs.state != "complete":
            self.study.tell(otrial, state=TrialState.FAIL)
            return
        g = list(constraint_values(obs.metrics, self.constraints))
        if g:
            otrial.storage.set_trial_system_attr(otrial._trial_id, CONSTRAINTS_KEY, g)
        self.study.tell(otrial, self._values(obs))

    # ------------------------------------------------------------ ask / tell
    def _propose(self, n: int) -> list[Arch]:
        distributions: dict[str, Any] = dict(self.space.to_optuna())
        self.study.sampler = self._sampler(int(self.rng(self.next_id).integers(2**31 - 1)))
        by_id = {o.arch.arch_id: o for o in self.history.values()}
        out: list[Arch] = []
        self._proposed = {}
        redraws = 0
        while len(out) < n and redraws <= self.max_redraws * n:
            otrial = self.study.ask(fixed_distributions=distributions)
            arch = self.space.from_params(otrial.params)
            if arch.arch_id in by_id or arch.arch_id in self._proposed or not self.usable(arch):
                redraws += 1
                otrial.set_user_attr("nas_duplicate", True)
                self._tell_optuna(otrial, by_id.get(arch.arch_id))
                continue
            self._proposed[arch.arch_id] = otrial
            out.append(arch)
        return out

    def _on_ask(self, trials: Sequence[Trial]) -> None:
        for trial in trials:
            otrial = self._proposed.pop(trial.arch.arch_id, None)
            if otrial is None:  # a random top-up arch: enqueue it so Optuna holds every trial
                self.study.enqueue_trial(self.space.to_params(trial.arch), skip_if_exists=False)
                otrial = self.study.ask(fixed_distributions=self.space.to_optuna())
            otrial.set_user_attr(TRIAL_KEY, trial.trial_id)
            self._open[trial.trial_id] = otrial
        for otrial in self._proposed.values():  # proposed but not taken (ask capped)
            self._tell_optuna(otrial, None)
        self._proposed = {}

    def _on_tell(self, obs: Observation) -> None:
        otrial = self._open.pop(obs.trial_id, None)
        if otrial is not None:
            self._tell_optuna(otrial, obs)

    # ------------------------------------------------------------ restore
    def state_dict(self) -> dict[str, Any]:
        """Adds Optuna's finished trials (duplicates included), so an in-memory study is rebuilt exactly."""
        from optuna.trial import TrialState

        state = super().state_dict()
        state["optuna_trials"] = [
            {
                "params": self.space.to_params(self.space.from_params(ft.params)),
                "state": ft.state.name,
                "values": ft.values,
                "user_attrs": ft.user_attrs,
                "system_attrs": ft.system_attrs,
            }
            for ft in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
        ]
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        import optuna
        from optuna.trial import TrialState

        if state.get("optuna_trials") and not self.study.get_trials(deepcopy=False):
            distributions: dict[str, Any] = dict(self.space.to_optuna())
            for row in state["optuna_trials"]:
                self.study.add_trial(
                    optuna.trial.create_trial(
                        params=row["params"], distributions=distributions, values=row["values"],
                        state=TrialState[row["state"]], user_attrs=row["user_attrs"],
                        system_attrs=row["system_attrs"],
                    )
                )  # fmt: skip
        super().load_state_dict(state)

    def _rebuild(self) -> None:
        """Makes the study agree with the history: add what it lacks, re-open pending trials."""
        import optuna
        from optuna.trial import TrialState

        self._open = {}
        known: dict[int, Any] = {}
        for ft in self.study.get_trials(deepcopy=False):
            tid = ft.user_attrs.get(TRIAL_KEY)
            if ft.state == TrialState.RUNNING:  # asked by a process that is gone
                self.study.tell(ft.number, state=TrialState.FAIL)
            elif tid is not None and ft.state in (TrialState.COMPLETE, TrialState.FAIL):
                known[int(tid)] = ft
        distributions: dict[str, Any] = dict(self.space.to_optuna())
        for obs in sorted(self.history.values(), key=lambda o: o.trial_id):
            if obs.state == "running":
                self.study.enqueue_trial(self.space.to_params(obs.arch), skip_if_exists=False)
                otrial = self.study.ask(fixed_distributions=distributions)
                otrial.set_user_attr(TRIAL_KEY, obs.trial_id)
                self._open[obs.trial_id] = otrial
            elif obs.trial_id not in known:
                complete = obs.state == "complete"
                system = self._constraint_attrs(obs) if complete else {}
                self.study.add_trial(
                    optuna.trial.create_trial(
                        params=self.space.to_params(obs.arch),
                        distributions=distributions,
                        values=self._values(obs) if complete else None,
                        state=TrialState.COMPLETE if complete else TrialState.FAIL,
                        user_attrs={TRIAL_KEY: obs.trial_id},
                        system_attrs=system,
                    )
                )


class OptunaTPESearcher(OptunaSearcher):
    kind, sampler_name = "tpe", "tpe"


class OptunaGPSearcher(OptunaSearcher):
    kind, sampler_name = "gp", "gp"


class OptunaNSGA2Searcher(OptunaSearcher):
    kind, sampler_name = "optuna-nsga2", "nsga2"
