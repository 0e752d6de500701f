"""Searching arch x precision on a trained float supernet: int8 blocks quantized as deployed and
measured by ONNX Runtime, latency of mixed subnets on the onnxruntime backend."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.core.config import ConfigError
from nas.core.precision import int8_layers
from nas.evaluators import SupernetEvaluator, SupernetSpec, build_evaluator, check_evaluator
from nas.export import ExportError, export_job
from nas.job import job_from_dict
from nas.runner import run_job
from nas.store import Store
from nas.testing.tiny_train import TINY_SPACE, tiny
from predictors.latency import build_table, measure_arch
from predictors.onnx_backend import export_onnx
from predictors.quantization import QuantSettings, layer_nodes, onnx_logits, quantize_static_qdq
from search_spaces.ofa_mbv3.space import OFAMobileNetV3Space
from search_spaces.training.config import load_train_config
from search_spaces.training.trainer import SupernetTrainer

onnx = pytest.importorskip("onnx")

PRECISION_OPTIONS = {**TINY_SPACE["options"], "precisions": ["int8", "fp32"]}


def _space(**extra: object) -> OFAMobileNetV3Space:
    return OFAMobileNetV3Space("mnist", **{**PRECISION_OPTIONS, **extra})


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("precision") / "run"
    SupernetTrainer(load_train_config(tiny()), out).run()
    return out


def _with_q(space: OFAMobileNetV3Space, arch_seed: int, q: list[str]) -> object:
    data = space.sample(np.random.default_rng(arch_seed)).to_dict()
    data["q"] = q
    return space.make(data)


def _int8_weight_layers(model: bytes, layers: list[str]) -> set[str]:
    """The layers (of ``layers``) whose convolution weights are stored in int8 in ``model``."""
    proto = onnx.load_from_string(model)
    int8 = {t.name for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8}
    produced = {out: node for node in proto.graph.node for out in node.output}
    found = set()
    for node in proto.graph.node:
        if node.op_type != "Conv":
            continue
        weight = produced.get(node.input[1])
        if weight is not None and weight.op_type == "DequantizeLinear" and weight.input[0] in int8:
            found.update(part for part in node.name.split("/") if part in layers)
    return found


def test_only_the_int8_layers_of_a_mixed_subnet_are_quantized() -> None:
    space = _space()
    nb = space.config.num_blocks
    arch = _with_q(space, 0, ["int8", "fp32"] * (nb // 2))
    arch = space.make({**arch.to_dict(), "d": [2, 2]})
    layers = space.static_config(arch)
    names = [layer["name"] for layer in layers]
    int8 = [layer["name"] for layer in layers if layer["precision"] == "int8"]
    assert int8 and len(int8) < sum(layer["op"] == "mbconv" for layer in layers)
    net = space.build_static(arch).eval()
    x = torch.randn(4, 1, arch["r"], arch["r"], generator=torch.Generator().manual_seed(0))
    model = export_onnx(net, x, dynamic_batch=True)
    mixed = quantize_static_qdq(model, [x.numpy()], QuantSettings(images=4), int8)
    assert _int8_weight_layers(mixed, names) == set(int8)
    whole = quantize_static_qdq(model, [x.numpy()], QuantSettings(images=4))
    assert _int8_weight_layers(whole, names) > set(int8)  # the whole-model path quantizes the rest too
    # the mixed model computes the same function, up to quantization error
    with torch.no_grad():
        reference = net(x).numpy()
    assert np.abs(onnx_logits(mixed, [x.numpy()]) - reference).max() < 0.25 * np.abs(reference).max() + 1e-3
    with pytest.raises(ValueError, match="no node of layers"):
        quantize_static_qdq(model, [x.numpy()], QuantSettings(images=4), ["blocks.99"])


def test_unnamed_nodes_inherit_the_layer_that_feeds_them() -> None:
    helper = onnx.helper
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["a"], name="/blocks/blocks.2/act/Relu"),
            helper.make_node("HardSigmoid", ["a"], ["b"]),  # made by the pre-processing, no name
            helper.make_node("Mul", ["a", "b"], ["c"]),
            helper.make_node("Relu", ["c"], ["y"], name="/final_expand/act/Relu"),
        ],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    nodes = layer_nodes(graph, ["blocks.2"])
    assert nodes == ["/blocks/blocks.2/act/Relu", "hwnas_node_1", "hwnas_node_2"]
    assert all(node.name for node in graph.node)


def test_supernet_evaluator_measures_int8_blocks_on_onnx_runtime(run: Path) -> None:
    space = _space()
    spec = SupernetSpec(kind="supernet", checkpoint=str(run), recal_batches=2, calibration_images=64)
    evaluator = SupernetEvaluator(spec, space)
    float_space = OFAMobileNetV3Space("mnist", **TINY_SPACE["options"])
    float_evaluator = SupernetEvaluator(spec, float_space)
    nb = space.config.num_blocks
    fp32 = _with_q(space, 1, ["fp32"] * nb)
    int8 = _with_q(space, 1, ["int8"] * nb)
    (m_fp32, m_int8) = evaluator.evaluate([fp32, int8])
    (m_float,) = float_evaluator.evaluate([space.float_arch(fp32)])
    assert m_fp32["accuracy"] == m_float["accuracy"] and m_fp32["loss"] == pytest.approx(m_float["loss"])
    # the int8 subnet is a different model: its loss moves, its accuracy stays near the float one
    assert m_int8["loss"] != pytest.approx(m_fp32["loss"], rel=1e-6)
    assert abs(m_int8["accuracy"] - m_fp32["accuracy"]) <= 0.2
    assert set(m_int8) >= {"accuracy", "loss", "macs", "params"}


def test_a_precision_space_needs_its_float_supernet(run: Path) -> None:
    other = OFAMobileNetV3Space("mnist", precisions=["int8", "fp32"])
    spec = SupernetSpec(kind="supernet", checkpoint=str(run))
    with pytest.raises(ConfigError, match=r"the job's space is ofa_mbv3/mnist; set space to match"):
        SupernetEvaluator(spec, other)
    # a spec is checked before its job runs (nas spec check, nas search): the float space's
    # checkpoint is the one a space with precision genes runs on
    good = {"kind": "supernet", "checkpoint": str(run)}
    assert "accuracy" in (check_evaluator(good, _space()).metrics or ())
    with pytest.raises(ConfigError, match=r"the job's space is ofa_mbv3/mnist: they differ in"):
        check_evaluator(good, other)
    bad = {"kind": "supernet", "checkpoint": str(run), "calibration_method": "kl"}
    with pytest.raises(ConfigError, match=r"evaluator\.calibration_method: use one of minmax, entropy, percentile"):
        build_evaluator(bad, _space())
    with pytest.raises(ConfigError, match=r"evaluator.calibration_images: must be in \[1, 100000\]"):
        build_evaluator({**bad, "calibration_method": "minmax", "calibration_images": 0}, _space())


def test_mixed_precision_latency_on_onnxruntime() -> None:
    space = _space(resolutions=[16])
    table = build_table(space, backend="onnxruntime", calibration_archs=0, progress=False)
    assert {e["precision"] for e in map(eval_signature, table.entries)} == {"int8", "fp32"}
    arch = _with_q(space, 2, ["int8"] * space.config.num_blocks)
    assert measure_arch(space, arch, 1, "cpu", "float32", "onnxruntime")["mean_ms"] > 0
    assert table.lookup(space, arch) > 0
    with pytest.raises(ValueError, match="runs fp32 layers, not int8; measure this space with --backend onnxruntime"):
        build_table(space, backend="torch", calibration_archs=0, progress=False)
    with pytest.raises(ValueError, match="backend torch runs fp32 layers, not int8"):
        measure_arch(space, arch, 1, "cpu", "float32", "torch")


def eval_signature(signature: str) -> dict:
    import json

    return json.loads(signature)


@pytest.fixture(scope="module")
def searched(run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, str, object]:
    """A finished search over arch x precision (a stand-in latency table: int8 ops half as long)."""
    root = tmp_path_factory.mktemp("precision-search")
    space = _space()
    table = build_table(
        space, layer_timer=lambda layer: {"mean_ms": 0.5 if layer.get("precision") == "int8" else 1.0},
        calibration_archs=0, progress=False, backend="onnxruntime", judge=False,
    )  # fmt: skip
    path = table.save(root / "table.json")
    spec = {
        "name": "precision",
        "space": {"name": "ofa_mbv3", "config": "mnist", "options": copy.deepcopy(PRECISION_OPTIONS)},
        "evaluator": {
            "kind": "supernet", "checkpoint": str(run), "recal_batches": 2, "latency_table": str(path),
            "calibration_images": 32,
        },
        "objectives": [{"metric": "accuracy", "direction": "max"}, {"metric": "latency_ms@cpu", "direction": "min"}],
        "searcher": {"kind": "evolution", "settings": {"population": 4}},
        "budget": {"evaluations": 8},
        "executor": "local",
        "seed": 0,
    }  # fmt: skip
    store = Store(f"sqlite:///{root / 'nas.db'}")
    result = run_job(job_from_dict(spec), store, progress=False)
    assert result.state == "done"
    return store, result.job_id, table


def test_search_over_arch_and_precision(searched) -> None:
    store, job_id, table = searched
    space = _space()
    trials = store.trials(job_id)
    assert len(trials) == 8 and all(t.state == "complete" for t in trials)
    assert all(len(t.arch["q"]) == space.config.num_blocks for t in trials)
    mixes = {tuple(sorted(set(t.arch["q"]))) for t in trials}
    assert ("fp32", "int8") in mixes
    for t in trials:
        assert t.metrics["latency_ms@cpu"] == pytest.approx(table.lookup(space, t.arch))


def test_export_writes_mixed_members_as_searched(searched, tmp_path: Path) -> None:
    store, job_id, _ = searched
    space = _space()
    trials = [t for t in store.trials(job_id) if int8_layers(space, space.make(t.arch))]
    trial = trials[0]
    int8 = int8_layers(space, space.make(trial.arch))
    manifest = export_job(store, job_id, "cpu", "onnx", tmp_path / "as-searched", trial_id=trial.trial_id)
    (model,) = manifest["models"]
    assert model["precision"] == "mixed" and model["int8_layers"] == int8
    assert model["file"].endswith("-mixed.onnx") and model["arch"] == trial.arch
    names = [layer["name"] for layer in space.static_config(space.make(trial.arch))]
    written = (tmp_path / "as-searched" / model["file"]).read_bytes()
    assert _int8_weight_layers(written, names) == set(int8)
    assert 0 <= model["test_accuracy"] <= 1 and 0 <= model["top1_agreement_with_fp32"] <= 1
    assert model["quantization"]["calibration_split"] == "holdout"
    floated = export_job(store, job_id, "cpu", "onnx", tmp_path / "float", trial_id=trial.trial_id, precision="fp32")
    (model,) = floated["models"]
    assert model["precision"] == "fp32" and "int8_layers" not in model
    assert not _int8_weight_layers((tmp_path / "float" / model["file"]).read_bytes(), names)
    with pytest.raises(ExportError, match=r"runs blocks in int8.*use --format onnx, or --precision fp32"):
        export_job(store, job_id, "cpu", "torchscript", tmp_path / "ts", trial_id=trial.trial_id)
