"""Random search and OFA-style multi-objective evolution."""

from __future__ import annotations

from typing import Any

import numpy as np

from nas.core.arch import Arch
from nas.searchers.base import Searcher, violation
from nas.searchers.ranking import binary_tournament, rank_and_crowding, survivors


class RandomSearcher(Searcher):
    """Uniform random archs, never the same twice."""

    kind = "random"

    def _propose(self, n: int) -> list[Arch]:
        return self.space.sample_unique(n, self.rng(self.next_id), max_draws=max(1000, 50 * n))


class EvolutionSearcher(Searcher):
    """Multi-objective evolution with OFA's mutation and crossover.

    The population is the ``population`` best completed trials by constrained
    non-dominated rank and crowding distance (recomputed from the history, so it
    survives a restore). Until ``population`` trials complete, proposals are random.
    Each child is a mutation of a tournament-selected parent (probability
    ``mutation_ratio``) or the crossover of two parents followed by mutation.

    Settings: ``population`` (20), ``mutation_ratio`` (0.5), ``mutation_prob`` (0.1).
    """

    kind = "evolution"

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"population": 20, "mutation_ratio": 0.5, "mutation_prob": 0.1}

    @classmethod
    def setting_bounds(cls) -> dict[str, tuple[float, float]]:
        return {"population": (2, 100_000), "mutation_ratio": (0.0, 1.0), "mutation_prob": (0.0, 1.0)}

    def _propose(self, n: int) -> list[Arch]:
        rng = self.rng(self.next_id)
        done = self.completed()
        size = int(self.settings["population"])
        if len(done) < size:
            return self.space.sample_unique(n, rng, max_draws=max(1000, 50 * n))
        f = self.objective_matrix(done)
        cv = np.array([violation(o.metrics, self.constraints) for o in done])
        keep = survivors(f, cv, size)
        parents = [done[i].arch for i in keep]
        rank, crowd = rank_and_crowding(f[keep], cv[keep])
        prob = float(self.settings["mutation_prob"])
        children = []
        for _ in range(n * 4):  # extra candidates; the base class drops duplicates
            first = parents[binary_tournament(rank, crowd, rng)]
            if rng.random() < float(self.settings["mutation_ratio"]):
                child = self.space.mutate(first, rng, prob)
            else:
                second = parents[binary_tournament(rank, crowd, rng)]
                child = self.space.mutate(self.space.crossover(first, second, rng), rng, prob)
            children.append(child)
        return children
