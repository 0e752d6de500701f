"""Constrained non-dominated ranking with crowding distance (pymoo's sorting and crowding)."""

from __future__ import annotations

import numpy as np


def rank_and_crowding(f: np.ndarray, cv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank (0 = best) and crowding distance of points ``f`` (minimised) with violations ``cv``.

    Feasible points (``cv == 0``) come first, sorted into non-dominated fronts;
    infeasible points follow, ordered by violation (Deb's feasibility rules).
    """
    from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    n = len(f)
    rank = np.full(n, np.inf)
    crowd = np.zeros(n)
    feasible = np.flatnonzero(cv <= 0)
    next_rank = 0
    if feasible.size:
        fronts = NonDominatedSorting().do(f[feasible])
        for front in fronts:
            members = feasible[front]
            rank[members] = next_rank
            crowd[members] = calc_crowding_distance(f[members]) if len(members) > 2 else np.inf
            next_rank += 1
    infeasible = np.flatnonzero(cv > 0)
    order = infeasible[np.argsort(cv[infeasible], kind="stable")]
    for i, idx in enumerate(order):
        rank[idx] = next_rank + i
    return rank, crowd


def survivors(f: np.ndarray, cv: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best points by (rank, -crowding), ties broken by index."""
    rank, crowd = rank_and_crowding(f, cv)
    order = np.lexsort((np.arange(len(f)), -crowd, rank))
    return order[:k]


def binary_tournament(rank: np.ndarray, crowd: np.ndarray, rng: np.random.Generator) -> int:
    """Index of the better of two random points (lower rank, then larger crowding)."""
    a, b = rng.integers(0, len(rank), size=2)
    if rank[a] != rank[b]:
        return int(a if rank[a] < rank[b] else b)
    return int(a if crowd[a] >= crowd[b] else b)
