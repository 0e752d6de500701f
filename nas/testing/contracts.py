"""Contract test classes a plug-in author subclasses in their own tests (as Optuna ships ``optuna.testing``).

Each class holds pytest tests (methods named ``test_*``) of what every implementation of
one kind must do; a subclass named ``Test...`` sets a few attributes and pytest runs them::

    from nas.testing import SearcherContract

    class TestMySearcher(SearcherContract):
        kind = "mysearch"                 # a registered name (entry point ``hwnas.searchers``)
        settings = {"population": 8}

The project's own searchers, spaces, evaluators and proxies run the same classes.
Needs pytest (a test dependency); imported only by tests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pytest

from nas.core import registry
from nas.core.arch import Arch
from nas.core.evaluator import Evaluator
from nas.core.pareto import Constraint, Objective
from nas.core.space import SearchSpace
from nas.searchers import Searcher, create_searcher
from nas.testing.toy import ToySpace, toy_metrics

TOY_OBJECTIVES = (Objective("acc", "max"), Objective("lat", "min"))
TOY_CONSTRAINTS = (Constraint("lat", max=6.0),)


def make_toy_searcher(
    kind: str,
    seed: int = 0,
    settings: Mapping[str, Any] | None = None,
    objectives: Sequence[Objective] = TOY_OBJECTIVES,
    constraints: Sequence[Constraint] = TOY_CONSTRAINTS,
) -> Searcher:
    """A searcher of ``kind`` on the toy space, offered the toy latency as a cheap metric."""

    def cheap(archs: Sequence[Arch]) -> list[dict[str, float]]:
        return [{"lat": toy_metrics(a)["lat"]} for a in archs]

    return create_searcher(
        kind, ToySpace(), objectives, constraints, seed, dict(settings or {}), cheap=cheap, cheap_metrics=("lat",)
    )


def drive_toy(searcher: Searcher, rounds: int, batch: int = 4, fail_every: int = 0) -> list[Any]:
    """Asks ``rounds`` batches and tells each trial its toy metrics (every ``fail_every``-th trial fails)."""
    asked = []
    for _ in range(rounds):
        for t in searcher.ask(batch):
            asked.append(t)
            if fail_every and t.trial_id % fail_every == 0:
                searcher.tell(t.trial_id, None, error="boom")
            else:
                searcher.tell(t.trial_id, toy_metrics(t.arch))
    return asked


class SearcherContract:
    """The ask/tell contract, seeds, no duplicates, JSON state and restores of a searcher kind.

    Attributes:
        kind: The registered searcher kind under test.
        settings: Settings that keep it fast on the toy problem.
        rounds: Ask/tell rounds of 4 trials in the longer tests.
        deterministic_reopen: Whether a restored searcher proposes exactly what the original
            does after pending trials are told (Optuna's samplers number re-opened trials
            differently, so theirs are only checked for no repeats).
    """

    kind: ClassVar[str] = ""
    settings: ClassVar[Mapping[str, Any]] = {}
    rounds: ClassVar[int] = 6
    deterministic_reopen: ClassVar[bool] = True
    objectives: ClassVar[Sequence[Objective]] = TOY_OBJECTIVES
    constraints: ClassVar[Sequence[Constraint]] = TOY_CONSTRAINTS

    def make(self, seed: int = 0) -> Searcher:
        return make_toy_searcher(self.kind, seed, self.settings, self.objectives, self.constraints)

    drive = staticmethod(drive_toy)

    def test_is_registered(self) -> None:
        assert registry.has("searcher", self.kind), f"searcher {self.kind!r} is not registered"

    def test_ask_tell_contract(self) -> None:
        s = self.make()
        trials = s.ask(3)
        assert [t.trial_id for t in trials] == [0, 1, 2]
        assert all(t.arch.space_id == s.space.space_id for t in trials)
        with pytest.raises(KeyError):
            s.tell(99, {"acc": 1.0, "lat": 1.0})
        with pytest.raises(ValueError, match="n must be"):
            s.ask(0)
        s.tell(0, toy_metrics(trials[0].arch))
        with pytest.raises(ValueError, match="already told"):
            s.tell(0, toy_metrics(trials[0].arch))
        s.tell(1, {"acc": 1.0})  # an objective missing: recorded as failed, not an exception
        assert s.history[1].state == "failed"
        s.tell(2, None, error="worker died")
        assert s.history[2].state == "failed" and s.history[2].error == "worker died"
        assert [t.trial_id for t in s.ask(2)] == [3, 4]

    def test_seeded_runs_repeat_and_never_duplicate(self) -> None:
        a = self.drive(self.make(seed=3), self.rounds, fail_every=5)
        b = self.drive(self.make(seed=3), self.rounds, fail_every=5)
        assert [t.arch.arch_id for t in a] == [t.arch.arch_id for t in b]
        ids = [t.arch.arch_id for t in a]
        assert len(ids) == len(set(ids)) == self.rounds * 4  # failed archs are not proposed again either
        c = self.drive(self.make(seed=4), self.rounds)
        assert [t.arch.arch_id for t in c] != ids

    def test_state_dict_round_trip_continues_identically(self) -> None:
        s = self.make(seed=1)
        self.drive(s, max(self.rounds - 1, 1), fail_every=7)
        state = json.loads(json.dumps(s.state_dict()))
        t = self.make(seed=1)
        t.load_state_dict(state)
        assert [x.arch.arch_id for x in s.ask(3)] == [x.arch.arch_id for x in t.ask(3)]
        other = "random" if self.kind != "random" else "evolution"
        with pytest.raises(ValueError, match="state of searcher"):
            create_searcher(other, ToySpace(), self.objectives, self.constraints, 1).load_state_dict(state)

    def test_pending_trials_survive_a_restore(self) -> None:
        s = self.make(seed=1)
        self.drive(s, max(self.rounds - 1, 1))
        pending = s.ask(2)  # asked, not told: a restore keeps them pending for the caller to evaluate
        t = self.make(seed=1)
        t.load_state_dict(json.loads(json.dumps(s.state_dict())))
        assert sorted(p.trial_id for p in t.pending()) == [p.trial_id for p in pending]
        for searcher in (s, t):
            for p in pending:
                searcher.tell(p.trial_id, toy_metrics(p.arch))
        after_s, after_t = [x.arch.arch_id for x in s.ask(3)], [x.arch.arch_id for x in t.ask(3)]
        seen = {o.arch.arch_id for o in t.history.values() if o.trial_id < t.next_id - 3}
        assert not seen & set(after_t)
        if self.deterministic_reopen:
            assert after_s == after_t


class SpaceContract:
    """What every search space must do: canonical archs, encodings, sampling, variation, Optuna/pymoo views.

    Attributes:
        space_name: A registered space name; override :meth:`make_space` for options.
    """

    space_name: ClassVar[str] = ""
    samples: ClassVar[int] = 50

    def make_space(self) -> SearchSpace:
        from nas.core.space import create_space

        return create_space(self.space_name)

    def test_sample_encode_decode_round_trip(self) -> None:
        space, rng = self.make_space(), np.random.default_rng(0)
        for _ in range(self.samples):
            arch = space.sample(rng)
            vector = space.encode(arch)
            assert len(vector) == len(space.genes)
            assert space.decode(vector) == arch
            assert space.make(json.loads(json.dumps(arch.to_dict()))) == arch
            assert len(arch.arch_id) == 16 and arch.space_id == space.space_id

    def test_bounds_and_extremes(self) -> None:
        space = self.make_space()
        low, high = space.bounds
        assert len(low) == len(high) == len(space.genes) and all(low <= high)
        assert space.min_arch() != space.max_arch() or space.size() == 1
        assert space.size() >= 1

    def test_features_have_one_width_per_encoding(self) -> None:
        space, rng = self.make_space(), np.random.default_rng(1)
        archs = [space.sample(rng) for _ in range(5)]
        for encoding in space.encodings:
            widths = {len(space.features(a, encoding)) for a in archs}
            assert len(widths) == 1, f"encoding {encoding}: rows of different widths {widths}"

    def test_variation_stays_in_the_space(self) -> None:
        space, rng = self.make_space(), np.random.default_rng(2)
        a, b = space.sample(rng), space.sample(rng)
        for child in (space.mutate(a, rng, prob=0.5), space.crossover(a, b, rng)):
            assert space.make(child.to_dict()) == child

    def test_optuna_parameters_round_trip(self) -> None:
        space, rng = self.make_space(), np.random.default_rng(3)
        distributions = space.to_optuna()
        arch = space.sample(rng)
        params = space.to_params(arch)
        assert set(params) == set(distributions)
        assert all(params[name] in dist.choices for name, dist in distributions.items())
        assert space.from_params(params) == arch


class EvaluatorContract:
    """What every evaluator must do: its metrics for every arch, finite, in order; cheap metrics a subset.

    Subclasses implement :meth:`make_space` and :meth:`make_evaluator`.
    """

    archs: ClassVar[int] = 4
    deterministic: ClassVar[bool] = True

    def make_space(self) -> SearchSpace:
        raise NotImplementedError

    def make_evaluator(self, space: SearchSpace) -> Evaluator:
        raise NotImplementedError

    def _archs(self, space: SearchSpace) -> list[Arch]:
        return space.sample_unique(self.archs, np.random.default_rng(0))

    def test_every_arch_gets_every_metric(self) -> None:
        space = self.make_space()
        evaluator = self.make_evaluator(space)
        archs = self._archs(space)
        results = evaluator.evaluate(archs)
        assert len(results) == len(archs)
        for row in results:
            assert set(evaluator.metrics) <= set(row), f"missing {set(evaluator.metrics) - set(row)}"
            assert all(isinstance(v, float) and math.isfinite(v) for k, v in row.items() if k in evaluator.metrics)
        if self.deterministic:
            assert evaluator.evaluate(archs) == results

    def test_cheap_metrics_are_a_subset(self) -> None:
        space = self.make_space()
        evaluator = self.make_evaluator(space)
        cheap = tuple(getattr(evaluator, "cheap_metrics", ()))
        assert set(cheap) <= set(evaluator.metrics)
        if cheap:
            archs = self._archs(space)
            rows = evaluator.evaluate_cheap(archs)  # type: ignore[attr-defined]
            full = evaluator.evaluate(archs)
            for row, whole in zip(rows, full):
                assert set(row) == set(cheap) and all(row[m] == pytest.approx(whole[m]) for m in cheap)


class ProxyContract:
    """What every zero-cost proxy must do: a finite score, the same for the same seed, the model untouched.

    Subclasses set ``proxy`` (a registered name) and may override :meth:`make_model` and
    :meth:`make_batch`.
    """

    proxy: ClassVar[str] = ""

    def make_model(self) -> Any:
        import torch
        from torch import nn

        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
        )  # fmt: skip

    def make_batch(self) -> tuple[Any, Any]:
        import torch

        gen = torch.Generator().manual_seed(0)
        return torch.randn(16, 3, 8, 8, generator=gen), torch.randint(0, 10, (16,), generator=gen)

    def _score(self, model: Any, seed: int = 0) -> float:
        from predictors.zero_cost import score

        return score(self.proxy, model, self.make_batch(), seed=seed)

    def test_is_registered(self) -> None:
        assert registry.has("proxy", self.proxy), f"proxy {self.proxy!r} is not registered"

    def test_finite_and_repeatable(self) -> None:
        model = self.make_model()
        first = self._score(model)
        assert isinstance(first, float) and (math.isfinite(first) or first == -math.inf)
        assert self._score(model) == first

    def test_model_is_not_modified(self) -> None:
        model = self.make_model()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        mode = model.training
        self._score(model)
        after = model.state_dict()
        assert all(before[k].equal(after[k]) for k in before), "the proxy changed the model's weights or buffers"
        assert all(p.grad is None for p in model.parameters()), "the proxy left gradients on the model"
        assert model.training == mode


__all__ = [
    "TOY_CONSTRAINTS",
    "TOY_OBJECTIVES",
    "EvaluatorContract",
    "ProxyContract",
    "SearcherContract",
    "SpaceContract",
    "drive_toy",
    "make_toy_searcher",
]
