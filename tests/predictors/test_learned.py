"""Learned predictors: known rankings, persistence without pickle, data files, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nas.core.space import create_space
from predictors.learned import Predictor, evaluate_predictor, load_dataset_file

ROOT = Path(__file__).resolve().parents[2]
FAST = {"mlp": {"hidden": [64, 64], "ensemble": 3, "max_iter": 400}, "gbm": {"max_iter": 100}}


@pytest.fixture(scope="module")
def synthetic():
    space = create_space("ofa_mbv3", config="mnist")
    rng = np.random.default_rng(0)
    archs = space.sample_unique(300, rng)
    weights = rng.normal(size=space.num_features)
    y = np.array([space.features(a) @ weights for a in archs]) + rng.normal(scale=0.1, size=len(archs))
    return space, archs, y


@pytest.mark.parametrize("kind", ["ridge", "gp", "gbm", "mlp"])
def test_predictors_recover_a_known_ranking(synthetic, kind: str) -> None:
    space, archs, y = synthetic
    predictor = Predictor(space, kind, seed=1, params=FAST.get(kind, {})).fit(archs[:200], y[:200])
    metrics = evaluate_predictor(predictor, archs[200:], y[200:])
    assert metrics["spearman"] > (0.9 if kind in ("ridge", "gp") else 0.7), metrics
    assert metrics["kendall"] > 0.5
    assert metrics["macs_baseline"] is not None and "spearman" in metrics["macs_baseline"]
    mean, std = predictor.predict(archs[200:210])
    assert mean.shape == (10,)
    if kind in ("gp", "mlp"):
        assert std is not None and std.shape == (10,) and np.all(std >= 0)


@pytest.mark.parametrize("kind", ["gbm", "mlp"])
def test_any_seed_a_searcher_draws_fits(synthetic, kind: str) -> None:
    """Searchers draw seeds up to 2**31 - 1; the MLP ensemble derives member seeds from it."""
    space, archs, y = synthetic
    params = {**FAST.get(kind, {}), "max_iter": 20}
    mean, _ = Predictor(space, kind, seed=2**31 - 2, params=params).fit(archs[:40], y[:40]).predict(archs[40:45])
    assert mean.shape == (5,) and np.all(np.isfinite(mean))


def test_save_load_round_trip_and_space_check(tmp_path: Path, synthetic) -> None:
    space, archs, y = synthetic
    predictor = Predictor(space, "gp", seed=2).fit(archs[:80], y[:80])
    path = predictor.save(tmp_path / "p.json")
    assert "arch" not in path.read_text()[:20] and json.loads(path.read_text())["space_id"] == "ofa_mbv3/mnist"
    loaded = Predictor.load(path)
    np.testing.assert_allclose(loaded.predict(archs[100:120])[0], predictor.predict(archs[100:120])[0])
    with pytest.raises(ValueError, match="fitted on another space than 'ofa_mbv3/cifar'"):
        Predictor.load(path, create_space("ofa_mbv3", config="cifar"))
    data = json.loads(path.read_text())
    data["fingerprint"] = [v + 1.0 for v in data["fingerprint"]]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="does not reproduce the saved predictions"):
        Predictor.load(path)


def test_encoding_is_chosen_saved_and_restored(tmp_path: Path) -> None:
    space = create_space("nb201")
    rng = np.random.default_rng(1)
    archs = space.sample_unique(40, rng)
    y = [float(space.features(a, "path")[:20].sum() + 0.1 * i % 3) for i, a in enumerate(archs)]
    path_model = Predictor(space, "ridge", encoding="path").fit(archs[:30], y[:30])
    default = Predictor(space, "ridge").fit(archs[:30], y[:30])
    assert default.encoding == "summary" and path_model.features(archs[0]).shape == (85,)
    assert not np.allclose(path_model.predict(archs[30:])[0], default.predict(archs[30:])[0])
    saved = path_model.save(tmp_path / "p.json")
    loaded = Predictor.load(saved)
    assert loaded.encoding == "path"
    np.testing.assert_allclose(loaded.predict(archs[30:])[0], path_model.predict(archs[30:])[0])
    # files written before encodings were named (format 1) used the path encoding on nb201
    data = json.loads(saved.read_text())
    del data["encoding"]
    data["format"] = 1
    saved.write_text(json.dumps(data))
    assert Predictor.load(saved).encoding == "path"
    with pytest.raises(ValueError, match="no feature encoding 'paths'; choose one of summary, path, onehot"):
        Predictor(space, "ridge", encoding="paths")


def test_bad_inputs(tmp_path: Path, synthetic) -> None:
    space, archs, y = synthetic
    with pytest.raises(ValueError, match="kind: unknown predictor 'svm'"):
        Predictor(space, "svm")
    with pytest.raises(ValueError, match="not fitted"):
        Predictor(space, "ridge").predict(archs[:2])
    with pytest.raises(ValueError, match="3 archs but 2 targets"):
        Predictor(space, "ridge").fit(archs[:3], y[:2])
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps({**a.to_dict(), "accuracy": float(v)}) for a, v in zip(archs[:5], y)))
    loaded_archs, values = load_dataset_file(good, space)
    assert loaded_archs == archs[:5] and values == pytest.approx(list(y[:5]))
    with pytest.raises(ValueError, match=r"good\.jsonl, line 1: no 'top1' column/key"):
        load_dataset_file(good, space, target="top1")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"arch": {**archs[0].to_dict(), "r": 300}, "accuracy": 0.5}))
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 1: r: resolution 300 is not supported"):
        load_dataset_file(bad, space)
    csv_file = tmp_path / "data.csv"
    csv_file.write_text('arch,accuracy\n"' + json.dumps(archs[0].to_dict()).replace('"', '""') + '",0.7\n')
    assert load_dataset_file(csv_file, space)[1] == [0.7]
    # rows with several metric columns (one per device): each is a target of its own
    several = tmp_path / "devices.jsonl"
    several.write_text(
        "\n".join(
            json.dumps({**a.to_dict(), "latency_ms@v100_1": i + 1.0, "latency_ms@cpu": 2.0 * i + 1})
            for i, a in enumerate(archs[:4])
        )
    )
    assert load_dataset_file(several, space, "latency_ms@cpu") == (archs[:4], [1.0, 3.0, 5.0, 7.0])
    assert load_dataset_file(several, space, "latency_ms@v100_1")[1] == [1.0, 2.0, 3.0, 4.0]


def test_cli_fit_and_eval(tmp_path: Path, synthetic) -> None:
    _space, archs, y = synthetic
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps({"arch": a.to_dict(), "accuracy": float(v)}) for a, v in zip(archs, y)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    nas = [sys.executable, "-m", "nas.cli"]
    fit = subprocess.run(
        [*nas, "predictor", "fit", "--data", str(data), "--space", "ofa_mbv3", "--config", "mnist", "--kind", "ridge",
         "--out", str(tmp_path / "p.json"), "--json"], capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    report = json.loads(fit.stdout)
    assert report["train"] == 240 and report["test"] == 60 and report["test_metrics"]["spearman"] > 0.9
    ev = subprocess.run(
        [*nas, "predictor", "eval", str(tmp_path / "p.json"), "--data", str(data)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert ev.returncode == 0, ev.stderr
    assert "MACs-only baseline" in ev.stdout and "kendall" in ev.stdout
    # transfer from it: an int8 accuracy predictor of the space with precision genes (`--base`)
    from search_spaces.ofa_mbv3.space import OFAMobileNetV3Space

    quantized = OFAMobileNetV3Space("mnist", precisions=["int8", "fp32"])
    rng = np.random.default_rng(3)
    int8 = [quantized.make({**a.to_dict(), "q": list(rng.choice(["int8", "fp32"], 12))}) for a in archs[:40]]
    drop = [0.002 * sum(q == "int8" for q in arch["q"]) for arch in int8]
    int8_data = tmp_path / "int8.jsonl"
    int8_data.write_text(
        "\n".join(json.dumps({"arch": a.to_dict(), "accuracy": float(v - d)}) for a, v, d in zip(int8, y, drop))
    )
    transfer = subprocess.run(
        [*nas, "predictor", "fit", "--data", str(int8_data), "--space", "ofa_mbv3", "--config", "mnist", "--option",
         "precisions=[int8,fp32]", "--kind", "ridge", "--base", str(tmp_path / "p.json"), "--out",
         str(tmp_path / "int8.json"), "--json"], capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert transfer.returncode == 0, transfer.stderr
    assert json.loads((tmp_path / "int8.json").read_text())["base"]["space_id"] == "ofa_mbv3/mnist"


def test_latency_kind_on_nb201_additive_latencies() -> None:
    """Latency that adds up over the ops a cell runs (dead or not) is learned from 50 archs."""
    from predictors.learned import Predictor, evaluate_predictor

    space = create_space("nb201")
    rng = np.random.default_rng(0)
    archs = space.sample_unique(400, rng)
    per_op = {"none": 0.2, "skip_connect": 0.05, "nor_conv_1x1": 0.5, "nor_conv_3x3": 1.1, "avg_pool_3x3": 0.4}
    noise = 1 + 0.02 * rng.standard_normal(len(archs))
    latency = [(3 + sum(per_op[o] for o in a["ops"])) * n for a, n in zip(archs, noise)]
    predictor = Predictor(space, None, target="latency_ms@phone").fit(archs[:50], latency[:50])
    assert (
        predictor.encoding == "counts+summary+pruned"
        and predictor._models[0].chosen_ in predictor._models[0].CANDIDATES
    )
    metrics = evaluate_predictor(predictor, archs[50:], latency[50:])
    assert metrics["within_10pct"] > 0.95 and metrics["kendall"] > metrics["macs_baseline"]["kendall"]
    with pytest.raises(ValueError, match="positive targets"):
        Predictor(space, None, target="latency_ms@phone").fit(archs[:10], [0.0] * 10)


def test_pruned_counts_follow_dead_node_elimination() -> None:
    space = create_space("nb201")
    # node 2 feeds the output only through a "none" edge, node 1 only into node 2 or through
    # "none": both are dead, so only the three edges into the output node are kept
    dead = {"ops": ["nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "skip_connect", "none", "none"]}
    assert space.features(space.make(dead), "pruned").tolist() == [2, 1, 0, 0, 0, 0]
    alive = {"ops": ["nor_conv_3x3"] * 6}
    assert space.features(space.make(alive), "pruned").tolist() == [0, 0, 0, 0, 6, 2]


def test_latency_kind_picks_the_pruned_view_for_a_pruning_runtime() -> None:
    """A runtime that skips dead nodes: the pruned view explains it, and the fit chooses it."""
    from predictors.learned import Predictor, evaluate_predictor

    space = create_space("nb201")
    rng = np.random.default_rng(1)
    archs = space.sample_unique(400, rng)
    per_op = [0.05, 0.1, 0.4, 0.5, 1.6, 0.3]  # none, skip, pool, 1x1, 3x3, per used node
    latency = [
        (2 + float(np.dot(per_op, space.features(a, "pruned")))) * (1 + 0.01 * rng.standard_normal()) for a in archs
    ]
    predictor = Predictor(space, None, target="latency_ms@phone").fit(archs[:50], latency[:50])
    model = predictor._models[0]
    assert model.view_ in ("pruned", "all"), model.scores_
    assert set(predictor.views(archs[0])) == {"counts+summary", "pruned", "cost", "all"}
    metrics = evaluate_predictor(predictor, archs[50:], latency[50:])
    assert metrics["within_10pct"] > 0.97 and metrics["kendall"] > metrics["macs_baseline"]["kendall"]


def test_transfer_from_a_float_predictor_beats_fitting_int8_from_scratch(tmp_path: Path) -> None:
    """APQ's quantization-aware predictor: a float accuracy predictor (many cheap measurements)
    corrected on a few int8 measurements ranks int8 subnets better than one fitted on those alone."""
    from scipy.stats import kendalltau

    from search_spaces.ofa_mbv3.space import OFAMobileNetV3Space

    space = OFAMobileNetV3Space("mnist", precisions=["int8", "fp32"])
    floats = space.float_space()
    weights = np.random.default_rng(0).normal(size=len(floats.features(floats.max_arch())))

    def fp32_accuracy(arch) -> float:  # an arch of the float space
        return float(0.7 + 0.01 * floats.features(arch) @ weights)

    def int8_accuracy(arch) -> float:  # float accuracy minus a drop per int8 block that runs
        blocks = [layer for layer in space.static_config(arch) if layer.get("precision") == "int8"]
        return fp32_accuracy(space.float_arch(arch)) - 0.004 * len(blocks)

    rng = np.random.default_rng(1)
    float_archs = floats.sample_unique(300, rng)
    base = Predictor(floats, "ridge").fit(float_archs, [fp32_accuracy(a) for a in float_archs])
    archs = space.sample_unique(220, rng)
    train, test = archs[:20], archs[20:]
    truth = [int8_accuracy(a) for a in test]
    scratch = Predictor(space, "ridge").fit(train, [int8_accuracy(a) for a in train])
    transfer = Predictor(space, "ridge", base=base).fit(train, [int8_accuracy(a) for a in train])
    tau_scratch = kendalltau(scratch.predict(test)[0], truth).statistic
    tau_transfer = kendalltau(transfer.predict(test)[0], truth).statistic
    assert tau_transfer > 0.8 and tau_transfer > tau_scratch + 0.1
    # saved with its base, reloaded identically
    again = Predictor.load(transfer.save(tmp_path / "int8.json"), space)
    assert np.allclose(again.predict(test)[0], transfer.predict(test)[0])
    with pytest.raises(ValueError, match="cannot start one of"):
        Predictor(OFAMobileNetV3Space("cifar"), "ridge", base=base)
