"""Predictor-in-the-loop search: evaluate a batch, refit, search the surrogate, pick by front improvement.

Each ask after the ``initial`` random trials:

1. fits one learned predictor (``predictor``: ridge | gp | mlp | gbm, from
   :mod:`predictors.learned`) per objective or constrained metric that is not cheap;
   cheap metrics (a latency table, FLOPs) come from the ``cheap`` function exactly;
2. runs pymoo's NSGA-II on the surrogate (predicted means, cheap metrics) for
   ``generations`` generations of ``population`` archs, and pools its final
   population with ``random_candidates`` random archs; a space of at most
   ``exhaustive_below`` archs (NAS-Bench-201's 15,625) is scored whole instead;
3. picks the batch (``acquisition: ucb``, the default) greedily by hypervolume improvement of the observed front, with
   each candidate's predicted metrics made optimistic by ``kappa`` standard
   deviations (upper confidence bound, for predictors with a std: gp, mlp); picked
   archs join the front with their mean predictions (kriging believer), so a batch
   spreads along the front. When fewer candidates than asked are predicted to improve
   the front (a pessimistic surrogate), the rest of the batch is filled with the
   candidates closest to the front (smallest improvement needed to leave its dominated
   region), again one at a time joining the front.

``acquisition: ehvi`` instead picks by exact expected hypervolume improvement, for two
objectives of which one is cheap (with the cheap value known and the predicted one
Gaussian, the improvement is closed-form; :mod:`nas.searchers.acquisition`).
``local_fraction`` of each batch are one-gene neighbours of the observed front's archs,
closest to the front by predicted values: a local search beside the surrogate.
The defaults and how they were chosen on NAS-Bench-201: ``benchmarks/results/README.md``.

Zero-cost proxies (scores the evaluator offers as cheap metrics ``zc_<proxy>``, computed once
per arch; :mod:`predictors.zero_cost_scores`): ``proxy_features`` joins them to the
predictor's input (signed log, standardised on the evaluated archs, times
``proxy_feature_scale``), so the surrogate learns how far each proxy is to be trusted;
``warm_start`` (a proxy, or several: their rank vote) picks the first ``initial`` archs from
the proxy ranking instead of at random: the non-dominated layers of (the proxy standing in for
every predicted objective, the cheap objectives as they are), spread evenly along the first
cheap objective within a layer.

The predictor is refitted from the history at every ask, so a restore is exact.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nas.core.arch import Arch
from nas.core.pareto import Constraint, Objective
from nas.core.space import SearchSpace
from nas.searchers.acquisition import ehvi_2d, gap_to_front
from nas.searchers.base import Searcher, violation

logger = logging.getLogger(__name__)

CheapFn = Callable[[Sequence[Arch]], list[dict[str, float]]]


MAX_SURROGATE_SCORES = 1_000_000  # population x generations of the surrogate search, per proposal


class PredictorLoopSearcher(Searcher):
    """Predictor-in-the-loop multi-objective search.

    Args:
        cheap: Computes the cheap metrics of archs (e.g. latency-table lookups).
        cheap_metrics: Names of the metrics ``cheap`` returns.
    """

    kind = "predictor"

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        constraints: Sequence[Constraint] = (),
        seed: int = 0,
        *,
        cheap: CheapFn | None = None,
        cheap_metrics: Sequence[str] = (),
        **settings: Any,
    ) -> None:
        super().__init__(space, objectives, constraints, seed, **settings)
        if cheap_metrics and cheap is None:
            raise ValueError("cheap_metrics given without a cheap function")
        self.cheap = cheap
        self.cheap_metrics = tuple(cheap_metrics)
        wanted = [o.metric for o in self.objectives] + [c.metric for c in self.constraints]
        self.predicted_metrics = tuple(dict.fromkeys(m for m in wanted if m not in self.cheap_metrics))
        self._cheap_cache: dict[str, dict[str, float]] = {}
        self._feature_cache: dict[str, np.ndarray] = {}
        self._all: list[Arch] | None = None
        scored = int(self.settings["population"]) * int(self.settings["generations"])
        if scored > MAX_SURROGATE_SCORES:
            raise ValueError(
                f"searcher 'predictor': population x generations = {scored:,} surrogate scores per proposal; "
                f"at most {MAX_SURROGATE_SCORES:,}"
            )
        self._use_ehvi()  # checks the acquisition setting now, not at the first proposal
        self.encoding = space.resolve_encoding(self.settings["encoding"])
        self.proxy_metrics = self._check_proxies()
        self._proxy_norm: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {
            "initial": 20,
            "predictor": "gp",
            "predictor_params": {},
            "encoding": None,
            "acquisition": "ucb",
            "local_fraction": 0.3,
            "kappa": 0.0,
            "front_from": "model",
            "population": 100,
            "generations": 20,
            "random_candidates": 1000,
            "exhaustive_below": 20000,
            "proxy_features": [],
            "proxy_feature_scale": 1.0,
            "warm_start": None,
        }

    @classmethod
    def setting_bounds(cls) -> dict[str, tuple[float, float]]:
        """The surrogate scores ``population`` x ``generations`` + ``random_candidates`` archs per
        proposal (or every arch of a space up to ``exhaustive_below``): each bounded so that one
        proposal stays within minutes on a CPU."""
        return {
            "initial": (1, 100_000), "local_fraction": (0.0, 1.0), "kappa": (0.0, 100.0),
            "population": (2, 10_000), "generations": (1, 10_000), "random_candidates": (0, 100_000),
            "exhaustive_below": (0, 100_000), "proxy_feature_scale": (0.0, 1e6),
        }  # fmt: skip

    def _check_proxies(self) -> tuple[str, ...]:
        """``proxy_features`` and ``warm_start`` as cheap metric names, checked against the evaluator's."""
        from predictors.zero_cost_scores import PREFIX, proxy_metric

        features = self.settings["proxy_features"]
        if not isinstance(features, (list, tuple)) or not all(isinstance(p, str) for p in features):
            raise ValueError("searcher 'predictor': proxy_features must be a list of proxy names")
        names = [proxy_metric(p) for p in features]
        warm = self.settings["warm_start"]
        listed = isinstance(warm, (list, tuple)) and len(warm) > 0 and all(isinstance(p, str) for p in warm)
        ok = isinstance(warm, str) or listed
        if warm is not None and not ok:
            raise ValueError("searcher 'predictor': warm_start must be a proxy name, a list of them, or null")
        scale = self.settings["proxy_feature_scale"]
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 100:
            raise ValueError("searcher 'predictor': proxy_feature_scale must be a number in (0, 100]")
        warm_names = [proxy_metric(p) for p in self._warm_start_proxies()]
        missing = [m for m in dict.fromkeys([*names, *warm_names]) if m not in self.cheap_metrics]
        if missing:
            offered = [m for m in self.cheap_metrics if m.startswith(PREFIX)]
            raise ValueError(
                f"searcher 'predictor': {missing} are not zero-cost scores the evaluator offers "
                f"(it offers {offered or 'none'}); give the evaluator zero-cost scores "
                "(tabular: zero_cost_scores, a file from `nas proxy score --out`; supernet: proxies)"
            )
        return tuple(dict.fromkeys(names))

    # ------------------------------------------------------------ surrogate
    def _fit(self, rng: np.random.Generator) -> dict[str, Any]:
        from predictors.learned import Predictor

        done = self.completed()
        if self.proxy_metrics:
            self._proxy_norm = self._proxy_scaling([o.arch for o in done])
        models = {}
        for metric in self.predicted_metrics:
            rows = [o for o in done if np.isfinite(o.metrics.get(metric, np.nan))]
            seed = int(rng.integers(2**31 - 1))
            model = Predictor(
                self.space, self.settings["predictor"], seed, dict(self.settings["predictor_params"]), self.encoding
            )
            targets = [o.metrics[metric] for o in rows]
            if self.proxy_metrics:
                models[metric] = model.fit_features(self._features([o.arch for o in rows]), targets)
            else:
                models[metric] = model.fit([o.arch for o in rows], targets)
        return models

    @staticmethod
    def _signed_log(values: np.ndarray) -> np.ndarray:
        return np.sign(values) * np.log1p(np.abs(values))

    def _proxy_raw(self, archs: Sequence[Arch]) -> np.ndarray:
        """``[n, proxies]`` signed-log proxy scores (NaN where unknown)."""
        values = self._cheap_values(archs)
        return self._signed_log(np.array([[v[m] for m in self.proxy_metrics] for v in values], dtype=np.float64))

    def _proxy_scaling(self, archs: Sequence[Arch]) -> tuple[np.ndarray, np.ndarray]:
        """Centre and scale of each proxy column, from the evaluated archs (their finite scores)."""
        raw = self._proxy_raw(archs)
        centre = np.zeros(raw.shape[1])
        scale = np.ones(raw.shape[1])
        for j in range(raw.shape[1]):
            finite = raw[np.isfinite(raw[:, j]), j]
            if finite.size:
                centre[j] = float(np.median(finite))
                scale[j] = float(finite.std()) or 1.0
        return centre, scale / float(self.settings["proxy_feature_scale"])

    def _estimate(self, models: dict[str, Any], archs: Sequence[Arch]) -> tuple[list[dict], list[dict]]:
        """Mean metrics and standard deviations (0 for cheap metrics) of archs."""
        means: list[dict[str, float]] = [{} for _ in archs]
        stds: list[dict[str, float]] = [{} for _ in archs]
        if self.cheap is not None and self.cheap_metrics:
            for m, s, values in zip(means, stds, self._cheap_values(archs)):
                for name, value in values.items():
                    m[name], s[name] = value, 0.0
        x = self._features(archs) if models else None
        for metric, model in models.items():
            mean, std = model.predict_features(x)
            std = np.zeros_like(mean) if std is None else std
            for m, s, mu, sd in zip(means, stds, mean, std):
                m[metric], s[metric] = float(mu), float(sd)
        return means, stds

    def _cheap_values(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        """The cheap metrics of archs, each arch's computed once."""
        if self.cheap is None or not self.cheap_metrics:
            return [{} for _ in archs]
        missing = list({a.arch_id: a for a in archs if a.arch_id not in self._cheap_cache}.values())
        if missing:
            for arch, cheap in zip(missing, self.cheap(missing)):
                self._cheap_cache[arch.arch_id] = {name: float(cheap[name]) for name in self.cheap_metrics}
        return [self._cheap_cache[a.arch_id] for a in archs]

    def _surrogate_search(self, models: dict[str, Any], rng: np.random.Generator) -> list[Arch]:
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.problem import Problem
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair
        from pymoo.operators.sampling.rnd import IntegerRandomSampling
        from pymoo.optimize import minimize

        searcher = self
        xl, xu = self.space.bounds

        class Surrogate(Problem):
            def _evaluate(self, x: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
                searcher.check_stop()  # once per generation
                archs = [searcher.space.decode(np.clip(np.rint(row), xl, xu)) for row in x]
                means, _ = searcher._estimate(models, archs)
                out["F"] = searcher._minimise(means)
                out["G"] = np.array([[violation(m, searcher.constraints)] for m in means])

        problem = Surrogate(n_var=len(xl), n_obj=len(self.objectives), n_ieq_constr=1, xl=xl, xu=xu, vtype=int)
        algorithm = NSGA2(
            pop_size=int(self.settings["population"]),
            sampling=IntegerRandomSampling(),
            crossover=SBX(prob=0.9, eta=15.0, vtype=float, repair=RoundingRepair()),
            mutation=PM(eta=20.0, vtype=float, repair=RoundingRepair()),
            eliminate_duplicates=True,
        )
        result = minimize(
            problem, algorithm, ("n_gen", int(self.settings["generations"])),
            seed=int(rng.integers(2**31 - 1)), verbose=False,
        )  # fmt: skip
        pop = result.pop.get("X") if result.pop is not None else np.empty((0, len(xl)))
        return [self.space.decode(np.clip(np.rint(row), xl, xu)) for row in pop]

    @staticmethod
    def _shortlist(order: np.ndarray, f: np.ndarray, size: int) -> np.ndarray:
        """The candidates of the first non-dominated fronts (optimistic values) until ``size`` are kept."""
        from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

        if len(order) <= size:
            return order
        kept: list[int] = []
        for layer in NonDominatedSorting().do(f[order]):
            kept.extend(int(order[i]) for i in layer)
            if len(kept) >= size:
                break
        return np.array(kept)

    def _features(self, archs: Sequence[Arch]) -> np.ndarray:
        """The surrogate's input rows: the space's encoding, then the scaled proxy scores if any
        (an unknown score sits at the centre)."""
        cache = self._feature_cache
        for arch in archs:
            if arch.arch_id not in cache:
                cache[arch.arch_id] = self.space.features(arch, self.encoding).astype(np.float64)
        x = np.stack([cache[a.arch_id] for a in archs])
        if not self.proxy_metrics or self._proxy_norm is None:
            return x
        centre, scale = self._proxy_norm
        z = (self._proxy_raw(archs) - centre) / scale
        return np.hstack([x, np.where(np.isfinite(z), z, 0.0)])

    def _every_arch(self) -> list[Arch]:
        import itertools

        if self._all is None:
            choices = [range(len(g.choices)) for g in self.space.genes]
            unique = {a.arch_id: a for a in (self.space.decode(v) for v in itertools.product(*choices))}
            self._all = list(unique.values())
        return self._all

    def _minimise(self, metrics: Sequence[dict[str, float]]) -> np.ndarray:
        signs = [-1.0 if o.direction == "max" else 1.0 for o in self.objectives]
        return np.array([[s * m[o.metric] for s, o in zip(signs, self.objectives)] for m in metrics])

    def _optimistic(self, means: Sequence[dict], stds: Sequence[dict]) -> list[dict[str, float]]:
        kappa = float(self.settings["kappa"])
        direction = {o.metric: o.direction for o in self.objectives}
        out = []
        for m, s in zip(means, stds):
            row = dict(m)
            for name, sd in s.items():
                sign = -1.0 if direction.get(name) == "min" else 1.0
                if name not in direction:  # constrained-only metric: optimistic towards feasibility
                    c = next((c for c in self.constraints if c.metric == name), None)
                    if c is None:  # a cheap metric nothing asks about (MACs, a proxy score)
                        continue
                    sign = -1.0 if c.max is not None else 1.0
                row[name] = m[name] + sign * kappa * sd
            out.append(row)
        return out

    # ------------------------------------------------------------ proposal
    def _propose(self, n: int) -> list[Arch]:
        from pymoo.indicators.hv import HV

        rng = self.rng(self.next_id)
        done = self.completed()
        if len(done) < max(int(self.settings["initial"]), 4):
            if self.settings["warm_start"] is not None:
                return self._warm_start(n, rng)
            return self.space.sample_unique(n, rng, max_draws=max(1000, 50 * n))
        models = self._fit(rng)
        self.check_stop()
        if self.space.size() <= int(self.settings["exhaustive_below"]):
            pool = self._every_arch()
        else:
            pool = self._surrogate_search(models, rng)
            self.check_stop()
            pool += self.space.sample_unique(int(self.settings["random_candidates"]), rng)
        self.check_stop()
        seen = set(self._seen)
        candidates: dict[str, Arch] = {}
        for arch in pool:
            if arch.arch_id not in seen:
                candidates.setdefault(arch.arch_id, arch)
        archs = list(candidates.values())
        if not archs:
            return []
        means, stds = self._estimate(models, archs)
        if self._use_ehvi():
            return self._propose_ehvi(models, archs, means, stds, done, n)
        hopeful = self._optimistic(means, stds)
        feasible = np.array([violation(h, self.constraints) <= 0 for h in hopeful])

        observed = [o for o in done if violation(o.metrics, self.constraints) <= 0]
        if observed and self.settings["front_from"] == "model":
            # The surrogate's own values for the evaluated archs: a candidate must beat them in
            # the model's frame, so a region the model overrates is not chased batch after batch.
            obs_means, _ = self._estimate(models, [o.arch for o in observed])
            f_obs = self._minimise(obs_means)
        elif observed:
            f_obs = self._minimise([o.metrics for o in observed])
        else:
            f_obs = np.empty((0, len(self.objectives)))
        f_hope = self._minimise(hopeful)
        f_mean = self._minimise(means)
        every = np.vstack([f_obs, f_mean, f_hope])
        low, high = every.min(0), every.max(0)
        scale = np.where(high > low, high - low, 1.0)
        ref = np.full(len(self.objectives), 1.1)

        def norm(f: np.ndarray) -> np.ndarray:
            return (f - low) / scale

        indicator = HV(ref_point=ref)
        front = norm(f_obs)
        base = indicator(front) if len(front) else 0.0
        chosen: list[int] = []
        order = np.flatnonzero(feasible)
        if len(front):  # only candidates not weakly dominated by the observed front can add volume
            hope = norm(f_hope[order])
            dominated = np.array([np.any(np.all(front <= h, axis=1)) for h in hope])
            order = order[~dominated]
        order = self._shortlist(order, f_hope, max(50, 10 * n))
        n_local = min(round(float(self.settings["local_fraction"]) * n), n)
        for _ in range(n - n_local):
            best, best_gain = -1, 0.0
            for i in order:
                if i in chosen:
                    continue
                trial_front = np.vstack([front, norm(f_hope[i : i + 1])])
                gain = indicator(trial_front) - base
                if gain > best_gain + 1e-12:
                    best, best_gain = int(i), gain
            if best < 0:
                break
            chosen.append(best)
            front = np.vstack([front, norm(f_mean[best : best + 1])])
            base = indicator(front)
        if n_local:
            chosen += self._local_picks(archs, f_hope, norm, front, observed, chosen, n_local)
        # Candidates the predictor cannot tell from an evaluated arch teach it nothing: not fillers.
        known = {self._features([o.arch])[0].tobytes() for o in done}
        rest = [
            int(i)
            for i in np.flatnonzero(feasible)
            if int(i) not in chosen and self._features([archs[int(i)]])[0].tobytes() not in known
        ]
        if len(chosen) < n and rest:
            # Nothing is predicted to improve the front (the surrogate is pessimistic there):
            # take the candidates closest to it, each joining the front as it is picked.
            f_rest = norm(f_hope[rest])
            for _ in range(n - len(chosen)):
                gap = gap_to_front(f_rest, front)
                pick = int(np.argmin(gap))
                if not np.isfinite(gap[pick]):
                    break
                chosen.append(rest[pick])
                front = np.vstack([front, f_rest[pick : pick + 1]])
                f_rest[pick] = np.inf
        logger.debug("predictor loop: %d candidates, picked %s", len(archs), chosen)
        return [archs[i] for i in chosen]

    def _warm_start_proxies(self) -> list[str]:
        warm = self.settings["warm_start"]
        return [] if warm is None else [warm] if isinstance(warm, str) else list(warm)

    def _warm_start(self, n: int, rng: np.random.Generator) -> list[Arch]:
        """``n`` unseen archs from the proxy ranking: the non-dominated layers of (proxy, cheap
        objectives), the proxy standing in for every objective that is predicted; within the layer
        that overflows, archs evenly spread along the first cheap objective. Constraints on cheap
        metrics are kept; archs without a finite score are not picked."""
        from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
        from scipy.stats import rankdata

        from predictors.zero_cost_scores import proxy_metric

        proxies = [proxy_metric(p) for p in self._warm_start_proxies()]
        if self.space.size() <= int(self.settings["exhaustive_below"]):
            pool = self._every_arch()
        else:
            pool = self.space.sample_unique(int(self.settings["random_candidates"]), rng)
        pool = [a for a in pool if a.arch_id not in self._seen and self.usable(a)]
        values = self._cheap_values(pool)
        cheap_constraints = [c for c in self.constraints if c.metric in self.cheap_metrics]
        keep = [
            i for i, v in enumerate(values)
            if all(np.isfinite(v[p]) for p in proxies) and violation(v, cheap_constraints) <= 0
        ]  # fmt: skip
        if not keep:
            logger.warning("warm start: no unseen arch has finite %s scores; sampling at random", proxies)
            return self.space.sample_unique(n, rng, max_draws=max(1000, 50 * n))
        cheap_objectives = [o for o in self.objectives if o.metric in self.cheap_metrics]
        # one proxy: its score; several: the sum of their ranks over the pool (a rank vote)
        vote = sum(rankdata([values[i][p] for i in keep]) for p in proxies)
        columns = [list(-np.asarray(vote, dtype=float))]
        for o in cheap_objectives:
            sign = -1.0 if o.direction == "max" else 1.0
            columns.append([sign * values[i][o.metric] for i in keep])
        f = np.array(columns).T
        chosen: list[int] = []
        for layer in NonDominatedSorting().do(f):
            room = n - len(chosen)
            if room <= 0:
                break
            if len(layer) <= room:
                chosen.extend(int(keep[i]) for i in layer)
                continue
            along = f[layer, 1] if f.shape[1] > 1 else f[layer, 0]
            ordered = np.asarray(layer)[np.argsort(along, kind="stable")]
            spots = np.unique(np.round(np.linspace(0, len(ordered) - 1, room)).astype(int))
            chosen.extend(int(keep[i]) for i in ordered[spots])
        return [pool[i] for i in chosen]

    def _local_picks(
        self, archs: list[Arch], f_hope: np.ndarray, norm: Callable, front: np.ndarray,
        observed: Sequence[Any], chosen: list[int], n: int,
    ) -> list[int]:  # fmt: skip
        """Up to ``n`` one-gene neighbours of the observed front's archs, closest to the front first.

        A local search in arch space beside the surrogate's picks: where the predictor cannot
        rank near-equal archs (the high-accuracy middle of a front), the true front's members
        are often one gene away from found ones.
        """
        from nas.core.pareto import pareto_front

        if not observed:
            return []
        index = {a.arch_id: i for i, a in enumerate(archs)}
        members = [observed[i].arch for i in pareto_front([o.metrics for o in observed], self.objectives)]
        near: set[int] = set()
        for arch in members:
            vector = self.space.encode(arch)
            for g, gene in enumerate(self.space.genes):
                for value in range(len(gene.choices)):
                    if value != vector[g]:
                        i = index.get(self.space.decode([*vector[:g], value, *vector[g + 1 :]]).arch_id)
                        if i is not None and i not in chosen:
                            near.add(i)
        pool = sorted(near)
        if not pool:
            return []
        gap = gap_to_front(norm(f_hope[pool]), front)
        return [pool[int(k)] for k in np.argsort(gap, kind="stable")[:n]]

    # ------------------------------------------------------------ exact EHVI
    def _use_ehvi(self) -> bool:
        """Whether ``acquisition`` is ``ehvi`` (checked: two objectives, exactly one of them cheap)."""
        mode = self.settings["acquisition"]
        if mode not in ("ehvi", "ucb"):
            raise ValueError(f"acquisition: use ucb or ehvi, got {mode!r}")
        applicable = len(self.objectives) == 2 and sum(o.metric in self.cheap_metrics for o in self.objectives) == 1
        if mode == "ehvi" and not applicable:
            raise ValueError("acquisition ehvi needs two objectives of which exactly one is a cheap metric")
        return mode == "ehvi"

    def _propose_ehvi(
        self,
        models: dict[str, Any],
        archs: list[Arch],
        means: list[dict],
        stds: list[dict],
        done: Sequence[Any],
        n: int,
    ) -> list[Arch]:
        """Greedy batch by exact expected hypervolume improvement (2 objectives, one known exactly).

        With the cheap objective ``c`` known and the predicted one ``y ~ N(mu, sd)`` (both
        minimised, normalised), a candidate's improvement of the front is
        ``sum_k w_k * max(0, b_k - y)`` over the segments ``k`` of ``[c, ref]`` on which the
        front's best ``y`` is ``b_k``; its expectation is closed-form. Each pick joins the front
        at its predicted mean (kriging believer) before the next is chosen.
        """
        cheap_first = self.objectives[0].metric in self.cheap_metrics
        ci, pi = (0, 1) if cheap_first else (1, 0)
        predicted = self.objectives[pi].metric
        feasible = np.array([violation(m, self.constraints) <= 0 for m in self._optimistic(means, stds)])
        observed = [o for o in done if violation(o.metrics, self.constraints) <= 0]
        if observed and self.settings["front_from"] == "model":
            obs_means, _ = self._estimate(models, [o.arch for o in observed])
            f_obs = self._minimise(obs_means)
        else:
            f_obs = self._minimise([o.metrics for o in observed]) if observed else np.empty((0, 2))
        f_mean = self._minimise(means)
        sd = np.array([s[predicted] for s in stds])
        every = np.vstack([f_obs, f_mean])
        low, high = every.min(0), every.max(0)
        scale = np.where(high > low, high - low, 1.0)
        c = (f_mean[:, ci] - low[ci]) / scale[ci]
        mu = (f_mean[:, pi] - low[pi]) / scale[pi]
        sigma = sd / scale[pi]
        front = (f_obs - low) / scale
        front_c, front_y = list(front[:, ci]), list(front[:, pi])
        open_ = feasible.copy()
        chosen: list[int] = []
        for _ in range(n):
            gain = np.where(open_, ehvi_2d(c, mu, sigma, np.array(front_c), np.array(front_y), 1.1), -np.inf)
            best = int(np.argmax(gain))
            if not np.isfinite(gain[best]):
                break
            chosen.append(best)
            open_[best] = False
            front_c.append(float(c[best]))
            front_y.append(float(mu[best]))
        logger.debug("predictor loop (EHVI): %d candidates, picked %s", len(archs), chosen)
        return [archs[i] for i in chosen]
