"""The vit space in jobs: every searcher over accuracy and latency of a trained ViT supernet, the
arch readable in `nas trials`, and `nas export` as timm model folders, ONNX and safetensors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch

from nas.core.registry import names
from nas.export import ExportError, _write_timm, choose_trials, export_job
from nas.job import job_from_dict
from nas.runner import run_job
from nas.store import Store
from nas.testing.tiny_train import TINY_VIT_SPACE, tiny_vit
from predictors.latency import build_table
from search_spaces.training.checkpoint import load_supernet
from search_spaces.training.config import load_train_config
from search_spaces.training.trainer import SupernetTrainer
from search_spaces.vit.static import load_timm_folder


def _layer_ms(layer: dict) -> float:
    """A deterministic stand-in for a measured op latency (grows with the op's width)."""
    return 0.01 + 1e-4 * layer.get("embed", 1) * (layer.get("heads", 1) + layer.get("hidden", 0) / 16)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("vit")
    run = root / "run"
    SupernetTrainer(load_train_config(tiny_vit()), run).run()
    space = load_supernet(run)[0].space
    table = build_table(
        space, layer_timer=lambda layer: {"mean_ms": _layer_ms(layer), "std_ms": 0.0}, calibration_archs=0,
        progress=False, judge=False,
    )  # fmt: skip
    return run, table.save(root / "table.json")


def _spec(run: Path, table: Path, searcher: str, evaluations: int = 8) -> dict:
    return {
        "name": f"vit-{searcher}",
        "space": TINY_VIT_SPACE,
        "evaluator": {"kind": "supernet", "checkpoint": str(run), "recal_batches": 1, "latency_table": str(table)},
        "objectives": [{"metric": "accuracy", "direction": "max"}, {"metric": "latency_ms@cpu", "direction": "min"}],
        "searcher": {"kind": searcher},
        "budget": {"evaluations": evaluations},
        "executor": "local",
        "seed": 0,
    }


@pytest.mark.parametrize("searcher", sorted(set(names("searcher")) - {"predictor"}))
def test_every_searcher_searches_the_vit_space(trained, tmp_path: Path, searcher: str) -> None:
    run, table = trained
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    result = run_job(job_from_dict(_spec(run, table, searcher)), store, progress=False)
    assert result.state == "done"
    trials = store.trials(result.job_id, ["complete"])
    assert len(trials) == 8
    for trial in trials:
        assert 0.0 <= trial.metrics["accuracy"] <= 1.0 and trial.metrics["latency_ms@cpu"] > 0
        assert set(trial.arch) == {"embed", "depth", "heads", "mlp"}
    assert len({json.dumps(t.arch, sort_keys=True) for t in trials}) > 1


def test_trials_and_the_page_show_the_vit_notation() -> None:
    """`nas trials` and the page print archs through the space's notation (a preset's space id)."""
    from nas.queries import arch_formatter

    text = arch_formatter("vit/cifar")
    assert text({"embed": 96, "depth": 4, "heads": [2, 3, 4, 4, 2, 2], "mlp": [2, 3, 4, 2, 2, 2]}) == (
        "E96 D4 | h 2 3 4 4 | m 2 3 4 2"
    )


def test_export_writes_timm_folders_that_timm_loads(trained, tmp_path: Path) -> None:
    run, table = trained
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    result = run_job(job_from_dict(_spec(run, table, "random", evaluations=10)), store, progress=False)
    front = choose_trials(store, result.job_id, "cpu")
    manifest = export_job(store, result.job_id, "cpu", "timm", tmp_path / "out")
    assert [m["trial_id"] for m in manifest["models"]] == [t.trial_id for t in front]
    x = torch.randn(3, 1, 16, 16)
    for model in manifest["models"]:
        weights = tmp_path / "out" / model["file"]
        assert weights.name == "model.safetensors" and model["check"]["max_abs_diff"] < 1e-4
        net = load_timm_folder(weights.parent)
        config = json.loads((weights.parent / "config.json").read_text())
        assert config["pretrained_cfg"]["input_size"] == [1, 16, 16]
        assert config["hwnas"]["heads"] == model["arch"]["heads"][: model["arch"]["depth"]]
        with torch.no_grad():
            net(x)
    again = export_job(store, result.job_id, "cpu", "timm", tmp_path / "out")  # the manifest keeps what is there
    assert len(again["models"]) == len(front)
    onnx = export_job(store, result.job_id, "cpu", "onnx", tmp_path / "onnx")  # run by ONNX Runtime, checked
    assert all(m["check"]["max_abs_diff"] < 1e-4 for m in onnx["models"])

    # A subnet whose layers are uniform (2 heads of 8 = embed 16) loads with timm alone.
    space = load_supernet(run)[0].space
    native = space.make({"embed": 16, "depth": 2, "heads": [2, 2], "mlp": [2.0, 2.0]})
    assert space.timm_folder_config(native, (0.5,), (0.25,))["hwnas"]["timm_native"]
    supernet, _ = load_supernet(run)
    folder = tmp_path / "native"
    _write_timm(supernet.extract(native).eval(), space, native, folder / "model.safetensors", ((0.5,), (0.25,)))
    model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), load_timm_folder(folder)(x))
    assert list(model.pretrained_cfg["mean"]) == [0.5] and model.num_classes == 10


def test_export_refuses_timm_for_a_convolutional_space(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    spec = {"space": {"name": "ofa_mbv3", "config": "mnist"}, "evaluator": {"kind": "supernet", "checkpoint": "x"},
            "objectives": [{"metric": "accuracy", "direction": "max"}], "searcher": {"kind": "random"},
            "budget": {"evaluations": 1}}  # fmt: skip
    job = store.create_job("conv", spec, "ofa_mbv3/mnist")
    with pytest.raises(ExportError, match=r"--format timm: the subnets of job .* are not timm models"):
        export_job(store, job, "cpu", "timm", tmp_path / "out")


@pytest.mark.parametrize("precision", ["int8", "int8_dynamic"])
def test_int8_export_quantizes_a_vit_subnet(trained, tmp_path: Path, precision: str) -> None:
    """A float vit job's subnets quantize after the fact with `nas export --precision int8` (static
    QDQ, calibrated) or `int8_dynamic` (ONNX Runtime's dynamic quantization)."""
    from predictors.quantization import QuantSettings

    run, table = trained
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    result = run_job(job_from_dict(_spec(run, table, "random", evaluations=3)), store, progress=False)
    trial = choose_trials(store, result.job_id, "cpu")[0]
    manifest = export_job(store, result.job_id, "cpu", "onnx", tmp_path / "int8", trial_id=trial.trial_id,
                          precision=precision, quant=QuantSettings(images=16))  # fmt: skip
    (model,) = manifest["models"]
    assert model["precision"] == precision
    if precision == "int8":
        assert model["quantization"]["qdq_nodes"] > 10 and model["quantization"]["mode"] == "static"
    else:
        assert model["quantization"]["integer_kernels"] > 4 and model["quantization"]["mode"] == "dynamic"
        assert "calibration_images" not in model["quantization"]
    assert 0.0 <= model["test_accuracy"] <= 1.0 and (tmp_path / "int8" / model["file"]).is_file()


@pytest.mark.parametrize("int8", ["int8", "int8_dynamic"])
def test_search_over_vit_layers_and_precision(trained, tmp_path: Path, int8: str) -> None:
    """Precision genes per layer (static or dynamic int8): the float supernet serves the job, int8
    layers are measured by ONNX Runtime and looked up in the table per precision, and export
    writes the mixed model, quantized the same way."""
    from nas.core.precision import int8_layers
    from nas.queries import arch_formatter, front_query
    from predictors.quantization import count_quantized
    from search_spaces.vit.space import ViTSpace

    run, _ = trained
    precision_space = {**TINY_VIT_SPACE, "options": {**TINY_VIT_SPACE["options"], "precisions": [int8, "fp32"]}}
    space = ViTSpace(precision_space["config"], **precision_space["options"])
    table = build_table(
        space, layer_timer=lambda layer: {"mean_ms": _layer_ms(layer) * (0.5 if layer["precision"] == int8 else 1.0),
                                          "std_ms": 0.0},
        calibration_archs=0, progress=False, backend="onnxruntime", judge=False,
    )  # fmt: skip
    spec = _spec(run, table.save(tmp_path / "table.json"), "evolution", evaluations=10)
    spec["space"] = precision_space
    spec["evaluator"]["calibration_images"] = 16
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    result = run_job(job_from_dict(spec), store, progress=False)
    assert result.state == "done"
    trials = store.trials(result.job_id, ["complete"])
    assert len(trials) == 10 and all(len(t.arch["q"]) == 2 for t in trials)
    assert any(int8_layers(space, space.make(t.arch)) for t in trials)
    for t in trials:
        assert t.metrics["latency_ms@cpu"] == pytest.approx(table.lookup(space, t.arch))
        assert 0.0 <= t.metrics["accuracy"] <= 1.0
    # `nas pareto` and the page show the notation of the job's customised space (its spec rebuilds it)
    front = front_query(store, result.job_id)["front"]
    assert front and all(row["arch_text"] == space.to_string(space.make(row["arch"])) for row in front)
    assert " | q " in front[0]["arch_text"]
    assert arch_formatter(space.space_id)(trials[0].arch).startswith("{")  # the id alone: JSON
    assert arch_formatter(space.space_id, {**precision_space, "options": {}})(trials[0].arch).startswith("{")

    mixed = next(t for t in trials if int8_layers(space, space.make(t.arch)))
    manifest = export_job(store, result.job_id, "cpu", "onnx", tmp_path / "out", trial_id=mixed.trial_id)
    (model,) = manifest["models"]
    assert model["int8_layers"] == int8_layers(space, space.make(mixed.arch))
    assert model["precision"] in ("mixed", "int8") and 0.0 <= model["test_accuracy"] <= 1.0
    counts = count_quantized((tmp_path / "out" / model["file"]).read_bytes())
    if int8 == "int8":
        assert counts["quantize"] > 0 and model["quantization"]["mode"] == "static"
    else:
        assert counts["quantize"] == 0 and counts["integer_kernels"] > 0 and model["quantization"]["mode"] == "dynamic"
    with pytest.raises(ExportError, match=r"runs blocks in int8"):
        export_job(store, result.job_id, "cpu", "timm", tmp_path / "timm", trial_id=mixed.trial_id)
