"""Zero-cost scores of a trained supernet's subnets as cheap metrics: values, caching, search use."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from nas.core.config import ConfigError
from nas.core.space import SearchSpace
from nas.evaluators import build_evaluator
from nas.job import job_from_dict
from nas.runner import run_job
from nas.store import Store
from nas.testing.tiny_train import tiny
from predictors.collect import _dataset
from predictors.zero_cost import score_many
from search_spaces.bn import resize_batch
from search_spaces.training.checkpoint import load_supernet
from search_spaces.training.config import load_train_config
from search_spaces.training.trainer import SupernetTrainer


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("proxies") / "run"
    SupernetTrainer(load_train_config(tiny()), folder).run()
    return folder


def _space(run: Path) -> SearchSpace:
    return load_supernet(run)[0].space


def test_inherited_scores_equal_the_extracted_subnets_and_are_computed_once(run: Path) -> None:
    space = _space(run)
    spec = {"kind": "supernet", "checkpoint": str(run), "recal_batches": 1, "proxies": ["synflow", "naswot"],
            "proxy_batch_size": 16}  # fmt: skip
    evaluator = build_evaluator(spec, space)
    assert evaluator.cheap_metrics[-2:] == ("zc_synflow", "zc_naswot")  # type: ignore[attr-defined]
    archs = space.sample_unique(3, __import__("numpy").random.default_rng(0))
    cheap = evaluator.evaluate_cheap(archs)  # type: ignore[attr-defined]
    # by hand: the subnet with the supernet's weights, the first shuffled training batch at its resolution
    supernet, meta = load_supernet(run)
    x, y = next(iter(_dataset(supernet, meta).loader("train", 16, train=False, shuffle=True, seed=0).epoch(0)))
    for arch, row in zip(archs, cheap):
        seed = int(arch.arch_id[:8], 16) % (2**31)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = supernet.extract(arch)
        batch = (resize_batch(x, space.resolution(arch)), y)
        want, _ = score_many(["synflow", "naswot"], net.train(), batch, seed=seed)
        assert row["zc_synflow"] == pytest.approx(want["synflow"], rel=1e-6)
        assert row["zc_naswot"] == pytest.approx(want["naswot"], rel=1e-6)
    calls = []
    inner = evaluator.proxy_cache._score  # type: ignore[attr-defined]
    evaluator.proxy_cache._score = lambda a: calls.append(a) or inner(a)  # type: ignore[attr-defined]
    full = evaluator.evaluate(archs[:1])[0]  # under torch.no_grad, from the cache
    assert calls == [] and full["zc_synflow"] == cheap[0]["zc_synflow"] and 0 <= full["accuracy"] <= 1


def test_init_scores_differ_from_inherited_and_repeat(run: Path) -> None:
    space = _space(run)
    arch = space.max_arch()
    base = {"kind": "supernet", "checkpoint": str(run), "proxies": ["synflow"], "proxy_batch_size": 8}
    inherited = build_evaluator(base, space).evaluate_cheap([arch])[0]["zc_synflow"]  # type: ignore[attr-defined]
    init = [
        build_evaluator({**base, "proxy_weights": "init"}, space).evaluate_cheap([arch])[0]["zc_synflow"]  # type: ignore[attr-defined]
        for _ in range(2)
    ]
    assert init[0] == init[1] and math.isfinite(init[0]) and init[0] != pytest.approx(inherited, rel=1e-3)


def test_bad_proxy_settings_are_clear_errors(run: Path) -> None:
    space = _space(run)
    base = {"kind": "supernet", "checkpoint": str(run)}
    with pytest.raises(ConfigError, match=r"evaluator.proxies: unknown proxies 'nope'; known: .*meco"):
        build_evaluator({**base, "proxies": ["nope"]}, space)
    with pytest.raises(ConfigError, match=r"evaluator.proxy_weights: use inherited"):
        build_evaluator({**base, "proxies": ["meco"], "proxy_weights": "random"}, space)


def test_predictor_search_with_supernet_proxies(run: Path, tmp_path: Path) -> None:
    spec = {
        "name": "zc-search",
        "space": {"name": "ofa_mbv3", "config": "mnist", "options": tiny()["space"]["options"]},
        "evaluator": {
            "kind": "supernet",
            "checkpoint": str(run),
            "recal_batches": 1,
            "proxies": ["meco"],
            "proxy_batch_size": 8,
        },
        "objectives": [{"metric": "accuracy", "direction": "max"}, {"metric": "macs", "direction": "min"}],
        "searcher": {
            "kind": "predictor",
            "settings": {
                "initial": 4,
                "population": 12,
                "generations": 2,
                "random_candidates": 20,
                "predictor": "ridge",
                "proxy_features": ["meco"],
                "warm_start": "meco",
            },
        },
        "budget": {"evaluations": 8},
        "parallelism": 4,
        "optuna_study": False,
        "executor": "local",
        "seed": 0,
    }
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    result = run_job(job_from_dict(spec), store, progress=False)
    assert result.state == "done"
    trials = store.trials(result.job_id)
    assert len(trials) == 8 and all(math.isfinite(t.metrics["zc_meco"]) for t in trials)
