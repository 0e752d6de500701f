"""Every built-in searcher runs nas.testing.SearcherContract; plus behaviour beyond the contract."""

from __future__ import annotations

import numpy as np
import pytest

from nas.core.pareto import Objective
from nas.core.registry import BUILTINS
from nas.searchers import create_searcher
from nas.searchers.base import violation
from nas.testing.contracts import TOY_CONSTRAINTS, TOY_OBJECTIVES, SearcherContract, drive_toy, make_toy_searcher
from nas.testing.toy import ToySpace, toy_metrics

OBJECTIVES = list(TOY_OBJECTIVES)
CONSTRAINTS = list(TOY_CONSTRAINTS)
FAST = {
    "evolution": {"population": 8},
    "nsga2": {"population": 8},
    "tpe": {"n_startup_trials": 6},
    "gp": {"n_startup_trials": 6},
    "optuna-nsga2": {"population": 8},
    "predictor": {"initial": 8, "population": 24, "generations": 4, "random_candidates": 100, "predictor": "ridge"},
}


def make(kind: str, seed: int = 0):
    return make_toy_searcher(kind, seed, FAST.get(kind, {}))


drive = drive_toy


class _Contract(SearcherContract):
    def make(self, seed: int = 0):
        return make(self.kind, seed)  # the contract's toy searcher with this suite's fast settings


class TestRandom(_Contract):
    kind = "random"


class TestEvolution(_Contract):
    kind = "evolution"


class TestNSGA2(_Contract):
    kind = "nsga2"


class TestPredictorLoop(_Contract):
    kind = "predictor"


class TestTPE(_Contract):
    kind = "tpe"
    deterministic_reopen = False  # Optuna numbers re-opened trials after the finished ones


class TestOptunaNSGA2(_Contract):
    kind = "optuna-nsga2"
    deterministic_reopen = False


class TestGP(_Contract):
    """Optuna's GP fits and optimises its acquisition on every ask (~5 s each on 2 CPU cores):
    the long runs are marked slow; its ask/tell contract stays in the default suite."""

    kind = "gp"
    rounds = 3
    deterministic_reopen = False

    @pytest.mark.slow
    def test_seeded_runs_repeat_and_never_duplicate(self) -> None:
        super().test_seeded_runs_repeat_and_never_duplicate()

    @pytest.mark.slow
    def test_state_dict_round_trip_continues_identically(self) -> None:
        super().test_state_dict_round_trip_continues_identically()

    @pytest.mark.slow
    def test_pending_trials_survive_a_restore(self) -> None:
        super().test_pending_trials_survive_a_restore()


def test_every_builtin_searcher_runs_the_contract() -> None:
    tested = {cls.kind for cls in _Contract.__subclasses__()}
    assert tested == set(BUILTINS["searcher"])


@pytest.mark.parametrize("kind", ["evolution", "nsga2", "predictor", "optuna-nsga2", "tpe"])
def test_model_based_searchers_move_towards_feasible_good_archs(kind: str) -> None:
    """After warm-up, proposals are feasible more often than random search's."""
    rounds = 12

    def late_feasible_share(k: str) -> float:
        asked = drive(make(k, seed=0), rounds)
        late = asked[len(asked) // 2 :]
        return float(np.mean([violation(toy_metrics(t.arch), CONSTRAINTS) == 0 for t in late]))

    assert late_feasible_share(kind) > late_feasible_share("random")


def test_space_exhaustion_returns_fewer_trials() -> None:
    space = ToySpace(n=2, k=3)
    for kind in ("random", "evolution", "nsga2"):
        s = create_searcher(kind, space, OBJECTIVES, (), 0, {"population": 4} if kind != "random" else {})
        seen = []
        for _ in range(5):
            trials = s.ask(4)
            for t in trials:
                seen.append(t.arch.arch_id)
                s.tell(t.trial_id, toy_metrics(t.arch))
        assert len(seen) == len(set(seen)) == 9
        assert s.ask(1) == []


def test_unknown_kind_and_settings_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown kind 'bayes'.*random"):
        create_searcher("bayes", ToySpace(), OBJECTIVES)
    with pytest.raises(ValueError, match="unknown settings \\['popsize'\\]; known: mutation_prob"):
        create_searcher("evolution", ToySpace(), OBJECTIVES, settings={"popsize": 3})
    with pytest.raises(ValueError, match="at least one objective"):
        create_searcher("random", ToySpace(), [])


def test_ehvi_2d_matches_monte_carlo_hypervolume_improvement() -> None:
    from pymoo.indicators.hv import HV

    from nas.searchers.acquisition import ehvi_2d

    rng = np.random.default_rng(0)
    front = rng.random((6, 2))
    hv = HV(ref_point=np.array([1.1, 1.1]))
    base = hv(front)
    c = np.array([0.05, 0.3, 0.6, 0.9, 1.2])
    mu = np.array([0.2, 0.1, 0.3, 0.05, 0.1])
    sigma = np.array([0.0, 0.05, 0.2, 0.1, 0.3])
    got = ehvi_2d(c, mu, sigma, front[:, 0], front[:, 1], 1.1)
    for i in range(len(c)):
        ys = mu[i] + sigma[i] * rng.standard_normal(20000) if sigma[i] > 0 else np.array([mu[i]])
        gains = [hv(np.vstack([front, [[c[i], y]]])) - base for y in ys]
        assert got[i] == pytest.approx(np.mean(gains), abs=4 * np.std(gains) / np.sqrt(len(ys)) + 1e-9)
    assert got[-1] == 0.0  # beyond the reference point
    # an empty front: the whole box between the point and the reference
    assert ehvi_2d(np.array([0.5]), np.array([0.5]), np.array([0.0]), np.empty(0), np.empty(0), 1.1)[0] == (
        pytest.approx(0.36)
    )


def test_predictor_acquisition_setting() -> None:
    s = create_searcher(
        "predictor", ToySpace(), OBJECTIVES, CONSTRAINTS, 0, {**FAST["predictor"], "acquisition": "ehvi"},
        cheap=lambda archs: [{"lat": toy_metrics(a)["lat"]} for a in archs], cheap_metrics=("lat",),
    )  # fmt: skip
    asked = drive(s, 5)
    assert len({t.arch.arch_id for t in asked}) == len(asked) == 20
    three = [*OBJECTIVES, Objective("size", "min")]
    with pytest.raises(ValueError, match="two objectives of which exactly one is a cheap metric"):
        create_searcher("predictor", ToySpace(), three, (), 0, {**FAST["predictor"], "acquisition": "ehvi"})
    with pytest.raises(ValueError, match="acquisition: use ucb or ehvi"):
        create_searcher("predictor", ToySpace(), OBJECTIVES, (), 0, {"acquisition": "ei"})


def test_predictor_local_picks_are_one_gene_neighbours_of_the_observed_front() -> None:
    from nas.core.pareto import pareto_front

    space = ToySpace()
    s = create_searcher(
        "predictor", space, OBJECTIVES, (), 0, {**FAST["predictor"], "local_fraction": 1.0},
        cheap=lambda archs: [{"lat": toy_metrics(a)["lat"]} for a in archs], cheap_metrics=("lat",),
    )  # fmt: skip
    told: list = []
    for _ in range(2):  # the random initial design
        for t in s.ask(4):
            s.tell(t.trial_id, toy_metrics(t.arch))
            told.append(t.arch)
    for _ in range(3):
        metrics = [toy_metrics(a) for a in told]
        front = [space.encode(told[i]) for i in pareto_front(metrics, OBJECTIVES)]
        trials = s.ask(4)
        assert trials
        for t in trials:
            v = space.encode(t.arch)
            assert any(sum(a != b for a, b in zip(v, f)) == 1 for f in front), (v, front)
            s.tell(t.trial_id, toy_metrics(t.arch))
            told.append(t.arch)


@pytest.mark.parametrize("kind", [*sorted(FAST), "random"])
def test_searchers_never_propose_invalid_nb201_cells_unless_allowed(kind: str) -> None:
    """NB201 cells with no input-to-output path are skipped by every searcher by default."""
    from nas.core.space import create_space

    space = create_space("nb201")
    objectives = [Objective("accuracy", "max"), Objective("latency_ms", "min")]
    dead = space.make({"ops": ["nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "none", "none", "none"]})
    assert "no input-to-output path" in space.invalid_reason(dead)
    assert space.invalid_reason(space.max_arch()) is None
    invalid = sum(space.invalid_reason(space.decode(np.unravel_index(i, [5] * 6))) is not None for i in range(5**6))
    assert 300 < invalid < 400  # of the 15,625 gene vectors, about 2%
    searcher = create_searcher(kind, space, objectives, seed=0, settings=FAST.get(kind, {}))
    rng = np.random.default_rng(0)
    for _ in range(6):
        for trial in searcher.ask(8):
            assert space.invalid_reason(trial.arch) is None, trial.arch
            features = space.features(trial.arch, "summary")
            searcher.tell(
                trial.trial_id, {"accuracy": float(features[0] + rng.random()), "latency_ms": 1 + features[0]}
            )
    allowed = create_searcher("random", space, objectives, seed=0, allow_invalid=True)
    proposals = [t.arch for _ in range(10) for t in allowed.ask(40)]
    assert sum(space.invalid_reason(a) is not None for a in proposals) > 0  # allowed: proposed like any other


def _proxy_searcher(settings: dict, proxy=None):
    """The predictor searcher on the toy problem, offered a zero-cost score ``zc_p`` (default: the exact accuracy)."""
    proxy = proxy or (lambda a: toy_metrics(a)["acc"])

    def cheap(archs):
        return [{"lat": toy_metrics(a)["lat"], "zc_p": proxy(a)} for a in archs]

    return create_searcher(
        "predictor", ToySpace(), OBJECTIVES, (), 0, {**FAST["predictor"], **settings},
        cheap=cheap, cheap_metrics=("lat", "zc_p"),
    )  # fmt: skip


def test_predictor_warm_start_picks_the_proxy_front_spread_along_latency() -> None:
    from nas.core.pareto import pareto_front

    space = ToySpace()
    everything = [space.decode(np.unravel_index(i, [5] * 6)) for i in range(5**6)]
    metrics = [toy_metrics(a) for a in everything]
    front_ids = {everything[i].arch_id for i in pareto_front(metrics, OBJECTIVES)}
    s = _proxy_searcher({"warm_start": "p"})
    first = s.ask(4)
    assert {t.arch.arch_id for t in first} <= front_ids  # the proxy is exact: its front is the true one
    lats = sorted(toy_metrics(t.arch)["lat"] for t in first)
    front_lats = [m["lat"] for a, m in zip(everything, metrics) if a.arch_id in front_ids]
    assert lats[0] == min(front_lats) and lats[-1] == max(front_lats)  # spread over the whole front
    for t in first:
        s.tell(t.trial_id, toy_metrics(t.arch))
    second = s.ask(4)  # the rest of the front, then the next non-dominated layer
    rest = [i for i, a in enumerate(everything) if a.arch_id not in front_ids]
    layer2 = {everything[rest[j]].arch_id for j in pareto_front([metrics[i] for i in rest], OBJECTIVES)}
    assert {t.arch.arch_id for t in second} <= front_ids | layer2
    assert not {t.arch.arch_id for t in first} & {t.arch.arch_id for t in second}
    # a proxy that ranks the other way picks the least accurate archs (the all-zero one is on both fronts)
    worst = _proxy_searcher({"warm_start": "p"}, proxy=lambda a: -toy_metrics(a)["acc"]).ask(4)
    assert max(toy_metrics(t.arch)["acc"] for t in worst) < sorted(toy_metrics(t.arch)["acc"] for t in first)[1]


def test_predictor_proxy_features_help_the_surrogate() -> None:
    """With an informative proxy beside the encoding, the fitted surrogate ranks unseen archs better."""
    from scipy.stats import spearmanr

    space = ToySpace()
    rng = np.random.default_rng(3)
    unseen = space.sample_unique(300, rng)
    truth = [toy_metrics(a)["acc"] for a in unseen]
    rho = {}
    for name, settings in {"plain": {}, "proxy": {"proxy_features": ["p"]}}.items():
        s = _proxy_searcher({**settings, "predictor": "gp", "initial": 12})
        drive(s, 3)
        models = s._fit(np.random.default_rng(0))
        means, _ = s._estimate(models, unseen)
        rho[name] = spearmanr([m["acc"] for m in means], truth).statistic
    assert rho["proxy"] > rho["plain"] + 0.05 and rho["proxy"] > 0.9, rho


def test_predictor_proxy_settings_are_checked() -> None:
    offers = r"\['zc_meco'\] are not zero-cost scores the evaluator offers \(it offers \['zc_p'\]\)"
    with pytest.raises(ValueError, match=offers):
        _proxy_searcher({"proxy_features": ["meco"]})
    with pytest.raises(ValueError, match=r"offers none.*zero_cost_scores"):
        create_searcher("predictor", ToySpace(), OBJECTIVES, (), 0, {"warm_start": "meco"})
    with pytest.raises(ValueError, match="warm_start must be a proxy name, a list of them, or null"):
        _proxy_searcher({"warm_start": []})
    assert _proxy_searcher({"warm_start": ["p", "zc_p"]}).ask(2)  # a list: the rank vote of its proxies
    with pytest.raises(ValueError, match="proxy_features must be a list"):
        _proxy_searcher({"proxy_features": "p"})
    with pytest.raises(ValueError, match="proxy_feature_scale"):
        _proxy_searcher({"proxy_features": ["p"], "proxy_feature_scale": 0})


class TestPredictorLoopWithProxies(_Contract):
    """The contract with proxy features and the warm start on (restores must stay exact)."""

    kind = "predictor"

    def make(self, seed: int = 0):
        def cheap(archs):
            return [{"lat": toy_metrics(a)["lat"], "zc_p": toy_metrics(a)["acc"] + a["x"][1] % 2} for a in archs]

        return create_searcher(
            "predictor", ToySpace(), OBJECTIVES, CONSTRAINTS, seed,
            {**FAST["predictor"], "proxy_features": ["p"], "warm_start": "p"},
            cheap=cheap, cheap_metrics=("lat", "zc_p"),
        )  # fmt: skip


def test_nsga2_goes_on_when_pymoo_finds_no_new_offspring(monkeypatch: pytest.MonkeyPatch) -> None:
    """pymoo's ask returns nothing when duplicate elimination leaves no offspring (seen with a
    population of 4 in the vit space, where inactive genes make many children equal): the searcher
    proposes new random archs instead of failing the job."""
    from pymoo.algorithms.moo.nsga2 import NSGA2

    searcher = make("nsga2")
    before = drive(searcher, 2, batch=4)  # the population of 8 is complete: the next ask mates
    asks = {"n": 0}
    original = NSGA2.ask

    def ask(self):  # the initial population comes back; the offspring do not
        asks["n"] += 1
        return original(self) if asks["n"] % 2 else None

    monkeypatch.setattr(NSGA2, "ask", ask)
    proposed = searcher.ask(4)
    assert len(proposed) == 4 and asks["n"] == 2
    assert not {t.arch for t in before} & {t.arch for t in proposed}  # new archs, as every ask
