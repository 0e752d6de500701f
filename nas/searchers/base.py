"""Ask/tell searcher interface shared by every search algorithm (see docs/ARCHITECTURE.md, "How to add").

A searcher proposes archs (:meth:`Searcher.ask`) and learns from their metrics
(:meth:`Searcher.tell`); the caller owns evaluation and persistence. Every searcher
here is multi-objective with constraints, never proposes an arch twice (asked,
evaluated or failed), and keeps its state as a pure function of
``(seed, history)``: randomness for the trial numbered ``t`` comes from a generator
seeded with ``(seed, t)``, so a searcher restored from stored trials proposes exactly
what the uninterrupted one would have. No torch import.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from nas.core.arch import Arch
from nas.core.pareto import Constraint, Objective, objective_matrix
from nas.core.space import SearchSpace

logger = logging.getLogger(__name__)

TrialState = Literal["running", "complete", "failed"]


@dataclass(frozen=True)
class Trial:
    """One proposed arch; ``trial_id`` numbers the searcher's proposals from 0."""

    trial_id: int
    arch: Arch


@dataclass
class Observation:
    """What the searcher knows about one trial."""

    trial_id: int
    arch: Arch
    state: TrialState = "running"
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "arch": self.arch.to_dict(),
            "state": self.state,
            "metrics": self.metrics,
            "error": self.error,
        }


def violation(metrics: Mapping[str, float], constraints: Sequence[Constraint]) -> float:
    """Total relative amount by which ``metrics`` break the constraints (0 when feasible)."""
    total = 0.0
    for c in constraints:
        value = metrics.get(c.metric)
        if value is None or not np.isfinite(value):
            return float("inf")
        if c.max is not None and value > c.max:
            total += (value - c.max) / max(abs(c.max), 1e-12)
        if c.min is not None and value < c.min:
            total += (c.min - value) / max(abs(c.min), 1e-12)
    return total


def constraint_values(metrics: Mapping[str, float], constraints: Sequence[Constraint]) -> list[float]:
    """One value per bound, ``<= 0`` when satisfied (pymoo's and Optuna's convention)."""
    out = []
    for c in constraints:
        value = float(metrics.get(c.metric, float("nan")))
        if c.max is not None:
            out.append(value - c.max)
        if c.min is not None:
            out.append(c.min - value)
    return [v if np.isfinite(v) else 1e30 for v in out]


def num_constraint_values(constraints: Sequence[Constraint]) -> int:
    return sum((c.max is not None) + (c.min is not None) for c in constraints)


def _bounded(kind: str, name: str, value: Any, low: float, high: float, *, integer: bool) -> Any:
    """``value`` of setting ``name`` if it is a number within ``[low, high]`` (an integer where
    ``integer``); a ``ValueError`` naming the setting and its range otherwise."""
    wanted = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"searcher {kind!r}: {name} must be {wanted} in [{low:g}, {high:g}], got {value!r}")
    if integer and isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"searcher {kind!r}: {name} must be an integer, got {value!r}")
        value = int(value)
    if not low <= value <= high:
        raise ValueError(f"searcher {kind!r}: {name} must be in [{low:g}, {high:g}], got {value:g}")
    return value


def _merged_settings(
    kind: str, defaults: Mapping[str, Any], bounds: Mapping[str, tuple[float, float]], settings: Mapping[str, Any]
) -> dict[str, Any]:
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults)) or "none"
        raise ValueError(f"searcher {kind!r}: unknown settings {unknown}; known: {known}")
    merged = {**defaults, **settings}
    for name, (low, high) in bounds.items():
        merged[name] = _bounded(kind, name, merged[name], low, high, integer=isinstance(defaults[name], int))
    return merged


class Searcher(ABC):
    """Base class: bookkeeping, de-duplication and JSON state; subclasses only propose.

    Args:
        space: The search space.
        objectives: Metrics to optimise (at least one).
        constraints: Bounds every reported arch should satisfy.
        seed: Seed of every random choice.
        settings: Algorithm settings (documented by each subclass).
    """

    kind: str = ""
    max_redraws: int = 20

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        constraints: Sequence[Constraint] = (),
        seed: int = 0,
        allow_invalid: bool = False,
        **settings: Any,
    ) -> None:
        if not objectives:
            raise ValueError("objectives: a searcher needs at least one objective")
        self.space = space
        self.objectives = tuple(objectives)
        self.constraints = tuple(constraints)
        self.seed = int(seed)
        self.allow_invalid = bool(allow_invalid)
        self.settings = self._check_settings(settings)
        self.history: dict[int, Observation] = {}
        self.stop_check: Callable[[], None] | None = None  # set by the runner; raises to stop a step
        self.next_id = 0
        self._seen: set[str] = set()

    # ------------------------------------------------------------ settings
    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Settings and their defaults; other keys are rejected."""
        return {}

    @classmethod
    def setting_bounds(cls) -> dict[str, tuple[float, float]]:
        """Inclusive ``(low, high)`` of each numeric setting: every setting that sizes a population,
        a candidate pool or a loop has one, so that no spec can make one step run for hours.
        A setting whose default is an integer must be an integer."""
        return {}

    def _check_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        return _merged_settings(self.kind, self.defaults(), self.setting_bounds(), settings)

    @classmethod
    def checked_settings(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        """``settings`` over the defaults, each known and within its bounds (no space needed).

        Raises:
            ValueError: naming the unknown or out-of-range setting.
        """
        return _merged_settings(cls.kind, cls.defaults(), cls.setting_bounds(), settings)

    def check_stop(self) -> None:
        """Called inside long steps (a surrogate search, scoring a large pool): raises when the runner
        was told to stop (:attr:`stop_check`, e.g. the job was cancelled), so a step never outlives it."""
        if self.stop_check is not None:
            self.stop_check()

    # ------------------------------------------------------------ ask / tell
    def rng(self, trial_id: int, salt: int = 0) -> np.random.Generator:
        """The generator used for proposals made when ``trial_id`` is the next id."""
        return np.random.default_rng([self.seed, trial_id, salt])

    def ask(self, n: int = 1) -> list[Trial]:
        """Up to ``n`` new trials (fewer only when the space has no unseen arch left)."""
        if n < 1:
            raise ValueError(f"ask: n must be >= 1, got {n}")
        remaining = self.space.size() - len(self._seen)
        n = min(n, remaining)
        if n <= 0:
            return []
        proposals = self._unique(self._propose(n), n)
        trials = []
        for arch in proposals:
            trial = Trial(self.next_id, arch)
            self.next_id += 1
            self.history[trial.trial_id] = Observation(trial.trial_id, arch)
            self._seen.add(arch.arch_id)
            trials.append(trial)
        self._on_ask(trials)
        return trials

    def usable(self, arch: Arch) -> bool:
        """Whether the searcher may propose ``arch``: not one the space marks invalid
        (:meth:`SearchSpace.invalid_reason`), unless the spec allows invalid archs."""
        return self.allow_invalid or self.space.invalid_reason(arch) is None

    def _unique(self, proposals: Sequence[Arch], n: int) -> list[Arch]:
        """Drops archs seen before and invalid ones, then tops up with random unseen valid
        ones (bounded draws)."""
        out: list[Arch] = []
        ids = set(self._seen)
        for arch in proposals:
            arch = self.space.make(arch)
            if arch.arch_id not in ids and len(out) < n and self.usable(arch):
                out.append(arch)
                ids.add(arch.arch_id)
        if len(out) < n:
            rng = self.rng(self.next_id, salt=1)
            draws = 0
            limit = max(1000, 50 * n)
            while len(out) < n and draws < limit:
                arch = self.space.sample(rng)
                draws += 1
                if arch.arch_id not in ids and self.usable(arch):
                    out.append(arch)
                    ids.add(arch.arch_id)
            if len(out) < n:
                logger.warning("searcher: only %d unseen archs found in %d draws", len(out), draws)
        return out

    def tell(self, trial_id: int, metrics: Mapping[str, float] | None = None, error: str | None = None) -> None:
        """Reports a trial's metrics, or its failure (``metrics=None`` and an ``error``)."""
        obs = self.history.get(trial_id)
        if obs is None:
            raise KeyError(f"tell: unknown trial {trial_id}")
        if obs.state != "running":
            raise ValueError(f"tell: trial {trial_id} was already told ({obs.state})")
        if metrics is None:
            obs.state, obs.error = "failed", error or "failed"
        else:
            missing = [o.metric for o in self.objectives if o.metric not in metrics]
            if missing:
                obs.state, obs.error = "failed", f"metrics missing objectives {missing}"
            else:
                obs.state, obs.metrics = "complete", {k: float(v) for k, v in metrics.items()}
        self._on_tell(obs)

    def _on_ask(self, trials: Sequence[Trial]) -> None:  # noqa: B027 - optional hook
        """Hook after new trials are registered."""

    def _on_tell(self, obs: Observation) -> None:  # noqa: B027 - optional hook
        """Hook after a trial is told."""

    @abstractmethod
    def _propose(self, n: int) -> list[Arch]:
        """``n`` candidate archs (duplicates are filtered by the base class)."""

    # ------------------------------------------------------------ views of the history
    def completed(self) -> list[Observation]:
        return [o for o in sorted(self.history.values(), key=lambda o: o.trial_id) if o.state == "complete"]

    def pending(self) -> list[Trial]:
        return [Trial(o.trial_id, o.arch) for o in self.history.values() if o.state == "running"]

    def objective_matrix(self, observations: Sequence[Observation]) -> np.ndarray:
        """``[n, k]`` objectives to minimise."""
        return objective_matrix([o.metrics for o in observations], self.objectives)

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """JSON-able state: settings and every trial (the rest is rebuilt from them)."""
        return {
            "kind": self.kind,
            "seed": self.seed,
            "settings": self.settings,
            "space_id": self.space.space_id,
            "next_id": self.next_id,
            "trials": [o.to_dict() for o in sorted(self.history.values(), key=lambda o: o.trial_id)],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"load_state_dict: state of searcher {state.get('kind')!r}, not {self.kind!r}")
        if state.get("space_id") != self.space.space_id:
            raise ValueError(f"load_state_dict: state for space {state.get('space_id')!r}, not {self.space.space_id!r}")
        self.restore(state["trials"], next_id=int(state["next_id"]))

    def restore(self, trials: Sequence[Mapping[str, Any]], next_id: int | None = None) -> None:
        """Rebuilds the searcher from stored trials (dicts with trial_id, arch, state, metrics, error).

        Trials still ``running`` stay pending: the caller evaluates them again and tells the result.
        """
        self.history, self._seen = {}, set()
        for row in sorted(trials, key=lambda r: int(r["trial_id"])):
            arch = self.space.make(row["arch"])
            obs = Observation(
                int(row["trial_id"]), arch, row["state"], dict(row.get("metrics") or {}), row.get("error")
            )
            self.history[obs.trial_id] = obs
            self._seen.add(arch.arch_id)
        last = max(self.history, default=-1)
        self.next_id = max(last + 1, next_id or 0)
        self._rebuild()

    def _rebuild(self) -> None:  # noqa: B027 - optional hook
        """Hook: recompute derived state after :meth:`restore`."""


SearcherFactory = Callable[..., Searcher]
