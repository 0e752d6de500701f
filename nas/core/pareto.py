"""Pareto fronts and hypervolume over named metrics (pymoo's sorting and indicator).

Objectives are metric names with a direction; every computation converts to
minimisation internally (maximised metrics are negated). Constraints are upper or
lower bounds on metrics; infeasible points never enter a front. pymoo is imported
lazily (no heavy import at module import time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Objective:
    """A metric to optimise, for example ``Objective("accuracy", "max")``."""

    metric: str
    direction: Literal["min", "max"] = "min"

    def __post_init__(self) -> None:
        if self.direction not in ("min", "max"):
            raise ValueError(f"direction of {self.metric!r}: use 'min' or 'max', got {self.direction!r}")


@dataclass(frozen=True)
class Constraint:
    """A bound on a metric: ``Constraint("latency_ms@cpu", max=5.0)``."""

    metric: str
    min: float | None = None
    max: float | None = None

    def satisfied(self, metrics: Mapping[str, float]) -> bool:
        value = metrics.get(self.metric)
        if value is None or not np.isfinite(value):
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


def objective_matrix(points: Sequence[Mapping[str, float]], objectives: Sequence[Objective]) -> np.ndarray:
    """``[n, k]`` array to minimise (maximised metrics negated).

    Raises:
        ValueError: naming the point and metric that is missing.
    """
    if not objectives:
        raise ValueError("objectives: at least one is needed")
    out = np.empty((len(points), len(objectives)), dtype=np.float64)
    for i, metrics in enumerate(points):
        for j, obj in enumerate(objectives):
            if obj.metric not in metrics:
                raise ValueError(f"point {i} has no metric {obj.metric!r} (has {sorted(metrics)})")
            value = float(metrics[obj.metric])
            out[i, j] = -value if obj.direction == "max" else value
    return out


def feasible(points: Sequence[Mapping[str, float]], constraints: Sequence[Constraint] = ()) -> list[int]:
    """Indices of the points that satisfy every constraint."""
    return [i for i, m in enumerate(points) if all(c.satisfied(m) for c in constraints)]


def pareto_front(
    points: Sequence[Mapping[str, float]], objectives: Sequence[Objective], constraints: Sequence[Constraint] = ()
) -> list[int]:
    """Indices of the non-dominated feasible points (in input order)."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    candidates = feasible(points, constraints)
    if not candidates:
        return []
    matrix = objective_matrix([points[i] for i in candidates], objectives)
    finite = np.all(np.isfinite(matrix), axis=1)
    kept = [c for c, ok in zip(candidates, finite) if ok]
    if not kept:
        return []
    front = NonDominatedSorting().do(matrix[finite], only_non_dominated_front=True)
    return sorted(kept[i] for i in front)


def hypervolume(
    points: Sequence[Mapping[str, float]],
    objectives: Sequence[Objective],
    reference: Mapping[str, float],
    constraints: Sequence[Constraint] = (),
) -> float:
    """Hypervolume dominated by the feasible points, bounded by ``reference`` (one value per metric)."""
    from pymoo.indicators.hv import HV

    missing = [o.metric for o in objectives if o.metric not in reference]
    if missing:
        raise ValueError(f"reference: no value for {missing}")
    ref = objective_matrix([reference], objectives)[0]
    idx = pareto_front(points, objectives, constraints)
    if not idx:
        return 0.0
    matrix = objective_matrix([points[i] for i in idx], objectives)
    inside = np.all(matrix < ref, axis=1)
    if not inside.any():
        return 0.0
    return float(HV(ref_point=ref)(matrix[inside]))
