"""Search job specification (YAML): space, evaluator, objectives, constraints, searcher, budget.

Example::

    name: nb201-pixel3
    space: {name: nb201}
    evaluator:
      kind: tabular
      accuracy_csv: ../nas/bundled/nb201_accuracy.csv.gz   # `nas data path nb201-accuracy`
      latency_csv: ../nas/bundled/nb201_latency.csv.gz
      devices: [pixel3]
    objectives:
      - {metric: accuracy, direction: max}
      - {metric: latency_ms@pixel3, direction: min}
    constraints:
      - {metric: latency_ms@pixel3, max: 20}
    searcher: {kind: evolution, settings: {population: 20}}
    budget: {evaluations: 200}
    seed: 0
    parallelism: 2

Optional keys: ``name``, ``constraints``, ``searcher``, ``budget``, ``seed``, ``parallelism``,
``executor`` (``auto``, the default: Ray for parallel or cluster jobs that do real work, else
in-process; or ``ray`` or ``local``), ``reference`` (the hypervolume's reference point; default a
robust nadir of the evaluated archs, see :func:`nas.trials.reference_point`), ``allow_invalid``
(also propose archs the space marks invalid, e.g. NB201 cells with no input-to-output path;
default false), ``cpus_per_trial`` and ``optuna_study`` (copy every trial into the Optuna study
``nas-<job id>`` in the store's database, for ``optuna-dashboard``; default true, about 10 ms per
trial on SQLite).

Every error names the key path and what was expected. No torch import.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nas.core.config import ConfigError, from_dict, key, load_yaml, short_repr, to_dict
from nas.core.limits import DEFAULT_LIMITS, InputLimits, check_values
from nas.core.pareto import Constraint, Objective
from nas.core.space import SpaceRef
from nas.evaluators import PATH_KEYS, evaluator_kinds
from nas.searchers import searcher_kinds

MAX_NAME = 200  # job names, metric names: the store's column width
MAX_BUDGET = 10**9
MAX_PARALLELISM = 4096
MAX_OBJECTIVES = 8  # hypervolume's cost grows exponentially with the number of objectives
MAX_CONSTRAINTS = 64


@dataclass
class ObjectiveSpec:
    metric: str
    direction: Literal["min", "max"] = "min"

    def validate(self, path: str) -> None:
        _check_name(key(path, "metric"), self.metric, metric=True)


@dataclass
class ConstraintSpec:
    metric: str
    min: float | None = None
    max: float | None = None

    def validate(self, path: str) -> None:
        _check_name(key(path, "metric"), self.metric, metric=True)
        if self.min is None and self.max is None:
            raise ConfigError(f"{path}: give min and/or max for {self.metric!r}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(f"{path}: min {self.min} > max {self.max}")


@dataclass
class SearcherSpec:
    kind: str = "evolution"
    settings: dict[str, Any] = field(default_factory=dict)

    def validate(self, path: str) -> None:
        kinds = searcher_kinds()
        if self.kind not in kinds:
            raise ConfigError(
                f"{key(path, 'kind')}: unknown searcher {short_repr(self.kind)}; known: {', '.join(kinds)}"
            )


@dataclass
class BudgetSpec:
    evaluations: int | None = 100
    wall_time_s: float | None = None

    def validate(self, path: str) -> None:
        if self.evaluations is None and self.wall_time_s is None:
            raise ConfigError(f"{path}: give evaluations and/or wall_time_s, or the search never ends")
        if self.evaluations is not None and not 1 <= self.evaluations <= MAX_BUDGET:
            raise ConfigError(f"{key(path, 'evaluations')}: must be in [1, {MAX_BUDGET:.0e}], got {self.evaluations}")
        if self.wall_time_s is not None and not 0 < self.wall_time_s <= MAX_BUDGET:
            raise ConfigError(f"{key(path, 'wall_time_s')}: must be in (0, {MAX_BUDGET:.0e}], got {self.wall_time_s}")


@dataclass
class JobSpec:
    """A search job; see the module docstring for the YAML form."""

    space: SpaceRef
    evaluator: dict[str, Any]
    objectives: list[ObjectiveSpec]
    name: str = "search"
    constraints: list[ConstraintSpec] = field(default_factory=list)
    searcher: SearcherSpec = field(default_factory=SearcherSpec)
    budget: BudgetSpec = field(default_factory=BudgetSpec)
    seed: int = 0
    parallelism: int = 1
    executor: Literal["auto", "ray", "local"] = "auto"
    reference: dict[str, float] | None = None
    # propose archs the space marks invalid too (NB201 cells with no input-to-output path)
    allow_invalid: bool = False
    # Ray workers: CPUs per trial (a trial is one evaluation).
    cpus_per_trial: float = 1.0
    # copy the trials into an Optuna study in the store's database (optuna-dashboard shows it)
    optuna_study: bool = True

    def validate(self, path: str) -> None:
        _check_name("name", self.name)
        if not self.objectives:
            raise ConfigError("objectives: at least one objective is needed")
        if len(self.objectives) > MAX_OBJECTIVES:
            raise ConfigError(f"objectives: at most {MAX_OBJECTIVES}, got {len(self.objectives)}")
        if len(self.constraints) > MAX_CONSTRAINTS:
            raise ConfigError(f"constraints: at most {MAX_CONSTRAINTS}, got {len(self.constraints)}")
        metrics = [o.metric for o in self.objectives]
        if len(set(metrics)) != len(metrics):
            raise ConfigError(f"objectives: a metric is listed twice: {metrics}")
        kind = self.evaluator.get("kind")
        kinds = evaluator_kinds()
        if kind not in kinds:
            raise ConfigError(f"evaluator.kind: {short_repr(kind)} is not one of {kinds}")
        if not 1 <= self.parallelism <= MAX_PARALLELISM:
            raise ConfigError(f"parallelism: must be in [1, {MAX_PARALLELISM}], got {self.parallelism}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed: must be in [0, 2**32), got {self.seed}")
        if not 0 < self.cpus_per_trial <= 1024:
            raise ConfigError(f"cpus_per_trial: must be in (0, 1024], got {self.cpus_per_trial}")
        if self.reference is not None:
            missing = [m for m in metrics if m not in self.reference]
            if missing:
                raise ConfigError(f"reference: no value for objectives {missing}")

    @property
    def objective_list(self) -> list[Objective]:
        return [Objective(o.metric, o.direction) for o in self.objectives]

    @property
    def constraint_list(self) -> list[Constraint]:
        return [Constraint(c.metric, c.min, c.max) for c in self.constraints]

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


# Metric names are identifiers (``accuracy``, ``latency_ms@pixel3``, ``zc_synflow``): nothing a
# page, a terminal or a plot could read as markup.
METRIC_NAME = re.compile(r"[A-Za-z0-9_.@:+/%=-]+")
# Unicode categories refused in any name: controls (C0, DEL, C1), format characters (bidi
# overrides and isolates, zero-width joiners), surrogates, private use, line/paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def _check_name(path: str, value: str, *, metric: bool = False) -> None:
    if not value or len(value) > MAX_NAME:
        raise ConfigError(f"{path}: must be 1 to {MAX_NAME} characters, got {len(value)}")
    if any(unicodedata.category(c) in _HIDDEN_CATEGORIES for c in value):
        raise ConfigError(
            f"{path}: must not contain control or formatting characters (newlines, tabs, DEL, bidi overrides, ...)"
        )
    if metric and not METRIC_NAME.fullmatch(value):
        raise ConfigError(f"{path}: a metric name is letters, digits and _ . @ : + / % = - (e.g. latency_ms@pixel3)")


def job_from_dict(data: Any, limits: InputLimits = DEFAULT_LIMITS) -> JobSpec:
    """A validated :class:`JobSpec`; every value is bounded first (sizes, depth, finite numbers)."""
    check_values(data, limits)
    return from_dict(JobSpec, data)


def load_job(path: str | Path) -> JobSpec:
    """Reads and validates a job YAML. Relative file paths in the evaluator resolve against the
    file's folder (then, for older specs, the working directory); a path found in neither is an
    error before any job is created."""
    data = load_yaml(path)
    try:
        spec = job_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    base = Path(path).resolve().parent
    for name in PATH_KEYS:
        value = spec.evaluator.get(name)
        if not isinstance(value, str):
            continue
        candidate = Path(value) if Path(value).is_absolute() else base / value
        if candidate.exists():
            spec.evaluator[name] = str(candidate)
        elif not Path(value).exists():  # (a path relative to the working directory still works)
            raise ConfigError(
                f"{path}: evaluator.{name}: no file or folder {value!r}; relative paths resolve against the "
                f"spec's folder ({base}), so {candidate} was looked for"
            )
    return spec
