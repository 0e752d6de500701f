"""pymoo's NSGA-II over the integer encoding of a space, driven through ask/tell.

The pymoo algorithm is rebuilt at every ask from the completed trials: its
initial population is the ``population`` best of them (constrained rank and
crowding, as NSGA-II's survival keeps), already evaluated; pymoo's own mating
(binary tournament, SBX crossover and polynomial mutation on the integer genes with
rounding repair, duplicate elimination) then produces the offspring. With asks of
``population`` trials this is generational NSGA-II; with smaller asks it is its
steady-state form, which suits asynchronous workers. Keeping the algorithm a
function of the history makes restore exact.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from nas.core.arch import Arch
from nas.searchers.base import Searcher, constraint_values, num_constraint_values, violation
from nas.searchers.ranking import survivors

logger = logging.getLogger(__name__)


class PymooNSGA2Searcher(Searcher):
    """NSGA-II from pymoo. Settings: ``population`` (20), ``crossover_eta`` (15), ``mutation_eta`` (20)."""

    kind = "nsga2"

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"population": 20, "crossover_prob": 0.9, "crossover_eta": 15.0, "mutation_eta": 20.0}

    @classmethod
    def setting_bounds(cls) -> dict[str, tuple[float, float]]:
        return {"population": (2, 100_000), "crossover_prob": (0.0, 1.0), "crossover_eta": (0.0, 1000.0),
                "mutation_eta": (0.0, 1000.0)}  # fmt: skip

    def _problem(self) -> Any:
        from pymoo.core.problem import Problem

        xl, xu = self.space.bounds
        return Problem(
            n_var=len(xl), n_obj=len(self.objectives), n_ieq_constr=num_constraint_values(self.constraints),
            xl=xl, xu=xu, vtype=int,
        )  # fmt: skip

    def _propose(self, n: int) -> list[Arch]:
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.evaluator import Evaluator
        from pymoo.core.population import Population
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair
        from pymoo.problems.static import StaticProblem

        done = self.completed()
        size = int(self.settings["population"])
        rng = self.rng(self.next_id)
        if len(done) < size:
            return self.space.sample_unique(n, rng, max_draws=max(1000, 50 * n))
        f = self.objective_matrix(done)
        cv = np.array([violation(o.metrics, self.constraints) for o in done])
        keep = survivors(f, cv, size)
        x = np.array([self.space.encode(done[i].arch) for i in keep])
        g = np.array([constraint_values(done[i].metrics, self.constraints) for i in keep]).reshape(len(keep), -1)
        problem = self._problem()
        algorithm = NSGA2(
            pop_size=size,
            n_offsprings=n,
            sampling=Population.new(X=x),
            crossover=SBX(prob=self.settings["crossover_prob"], eta=self.settings["crossover_eta"], vtype=float,
                          repair=RoundingRepair()),
            mutation=PM(eta=self.settings["mutation_eta"], vtype=float, repair=RoundingRepair()),
            eliminate_duplicates=True,
        )  # fmt: skip
        algorithm.setup(problem, seed=int(rng.integers(2**31 - 1)), verbose=False)
        initial = algorithm.ask()
        index = {tuple(row): i for i, row in enumerate(x.tolist())}
        order = [index[tuple(int(v) for v in row)] for row in initial.get("X")]
        extra = {"G": g[order]} if g.shape[1] else {}
        Evaluator().eval(StaticProblem(problem, F=f[keep][order], **extra), initial)
        algorithm.tell(infills=initial)
        offspring = algorithm.ask()
        if offspring is None or len(offspring) == 0:
            # pymoo found no offspring that is not a duplicate (small populations in spaces with
            # inactive genes): new random archs keep the search going instead of failing the job
            logger.info("nsga2: no new offspring from the population; %d random archs instead", n)
            return self.space.sample_unique(n, rng, max_draws=max(1000, 50 * n))
        xu = self.space.bounds[1]
        children = np.clip(np.rint(offspring.get("X")).astype(int), 0, xu)
        return [self.space.decode(row) for row in children]
