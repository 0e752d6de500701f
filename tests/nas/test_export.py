"""nas export: a supernet job's subnets written as ONNX / TorchScript / safetensors, checked and listed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.export import ExportError, choose_trials, export_job, load_safetensors
from nas.job import job_from_dict
from nas.runner import run_job
from nas.store import Store
from nas.testing.tiny_train import tiny
from predictors.collect import _dataset
from predictors.latency import build_table
from search_spaces.bn import resize_batch
from search_spaces.datasets import BatchLoader
from search_spaces.training.checkpoint import load_supernet
from search_spaces.training.config import load_train_config
from search_spaces.training.evaluation import accuracy, recalibrated_subnet
from search_spaces.training.trainer import SupernetTrainer

ROOT = Path(__file__).resolve().parents[2]


def _layer_ms(layer: dict) -> float:
    """A deterministic stand-in for measured op latency (grows with the op's size)."""
    size = layer.get("in_channels", 1) * layer.get("out_channels", layer.get("out_features", 1))
    return 0.01 + 1e-5 * size * layer.get("kernel_size", 1) ** 2 * layer.get("expand_ratio", 1)


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, str, Path]:
    """A trained tiny supernet, a CPU latency table of its space and a finished search job over them."""
    root = tmp_path_factory.mktemp("export")
    run = root / "run"
    SupernetTrainer(load_train_config(tiny()), run).run()
    space = load_supernet(run)[0].space
    table = build_table(
        space, layer_timer=lambda layer: {"mean_ms": _layer_ms(layer), "std_ms": 0.0}, calibration_archs=0,
        progress=False, judge=False,
    )  # fmt: skip
    table = table.save(root / "table.json")
    spec = {
        "name": "export-me",
        "space": {"name": "ofa_mbv3", "config": "mnist", "options": tiny()["space"]["options"]},
        "evaluator": {"kind": "supernet", "checkpoint": str(run), "recal_batches": 2, "latency_table": str(table)},
        "objectives": [{"metric": "accuracy", "direction": "max"}, {"metric": "latency_ms@cpu", "direction": "min"}],
        "searcher": {"kind": "random"},
        "budget": {"evaluations": 8},
        "executor": "local",
        "seed": 0,
    }
    store = Store(f"sqlite:///{root / 'nas.db'}")
    result = run_job(job_from_dict(spec), store, progress=False)
    assert result.state == "done" and len(result.front) >= 2
    return store, result.job_id, run


def test_every_format_reproduces_the_evaluated_subnet(searched, tmp_path: Path) -> None:
    store, job_id, run = searched
    front = choose_trials(store, job_id, "cpu")
    latencies = [t.metrics["latency_ms@cpu"] for t in front]
    assert latencies == sorted(latencies) and len(front) >= 2
    supernet, meta = load_supernet(run)
    dataset = _dataset(supernet, meta)
    for fmt in ("onnx", "torchscript", "safetensors"):
        manifest = export_job(store, job_id, "cpu", fmt, tmp_path / fmt)
        models = manifest["models"]
        assert [m["trial_id"] for m in models] == [t.trial_id for t in front]
        on_disk = json.loads((tmp_path / fmt / "manifest.json").read_text())
        assert on_disk["models"] == json.loads(json.dumps(models))
        for model, trial in zip(models, front):
            path = tmp_path / fmt / model["file"]
            assert model["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
            assert model["arch"] == trial.arch and model["search_metrics"] == trial.metrics
            assert model["check"]["max_abs_diff"] < 1e-4
            assert model["input"]["shape"][2] == trial.arch["r"]
    export_job(store, job_id, "cpu", "onnx", tmp_path / "onnx")  # again: same files, same records
    kinds = [a.kind for a in store.artifacts(job_id)]
    assert kinds.count("export") == 3 * len(front)
    assert len(json.loads((tmp_path / "onnx" / "manifest.json").read_text())["models"]) == len(front)

    # The safetensors file, rebuilt without the supernet, scores exactly what the search stored.
    for model in json.loads((tmp_path / "safetensors" / "manifest.json").read_text())["models"]:
        net = load_safetensors(tmp_path / "safetensors" / model["file"])
        held_out = accuracy(net, dataset, "holdout", model["arch"]["r"])
        assert held_out["accuracy"] == pytest.approx(model["search_metrics"]["accuracy"], abs=1e-9)
        assert accuracy(net, dataset, "test", model["arch"]["r"])["accuracy"] == model["test_accuracy"]

    # ONNX with another batch size (dynamic batch axis) against the recalibrated torch subnet.
    from predictors.onnx_backend import ort_session

    model = json.loads((tmp_path / "onnx" / "manifest.json").read_text())["models"][-1]
    arch = supernet.space.make(model["arch"])
    net = recalibrated_subnet(supernet, arch, dataset, recal_batches=2)
    x, _ = next(BatchLoader(dataset.holdout, dataset, 5, train=False).epoch(0))
    x = resize_batch(x, arch["r"])
    session = ort_session((tmp_path / "onnx" / model["file"]).read_bytes(), 1)
    with torch.no_grad():
        np.testing.assert_allclose(session.run(["y"], {"x": x.numpy()})[0], net(x).numpy(), atol=1e-4)


def test_budget_and_trial_selection(searched, tmp_path: Path) -> None:
    store, job_id, _ = searched
    front = choose_trials(store, job_id, "cpu")
    budget = front[1].metrics["latency_ms@cpu"]
    within = [t for t in front if t.metrics["latency_ms@cpu"] <= budget]
    (best,) = choose_trials(store, job_id, "cpu", max_latency=budget)
    assert best.metrics["accuracy"] == max(t.metrics["accuracy"] for t in within)
    with pytest.raises(ExportError, match=r"no front member .* the fastest takes"):
        choose_trials(store, job_id, "cpu", max_latency=front[0].metrics["latency_ms@cpu"] / 2)
    dominated = next(t for t in store.trials(job_id, ["complete"]) if t.trial_id not in {f.trial_id for f in front})
    assert choose_trials(store, job_id, "cpu", trial_id=dominated.trial_id)[0].arch == dominated.arch
    with pytest.raises(ExportError, match=r"--trial 99: .* there is no such trial"):
        choose_trials(store, job_id, "cpu", trial_id=99)
    with pytest.raises(ExportError, match=r"no latency_ms@pixel3 .* \(its devices: cpu\)"):
        choose_trials(store, job_id, "pixel3")
    with pytest.raises(ExportError, match="--format: unknown 'tflite'"):
        export_job(store, job_id, "cpu", "tflite", tmp_path)


def test_a_job_without_weights_is_refused(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    job = store.create_job("t", {"evaluator": {"kind": "tabular"}, "objectives": []}, "nb201")
    with pytest.raises(ExportError, match="'tabular' evaluator, which has no weights to export"):
        export_job(store, job, "cpu", "onnx", tmp_path / "out")


def test_cli_export_one_trial(searched, tmp_path: Path) -> None:
    store, job_id, _ = searched
    trial = choose_trials(store, job_id, "cpu")[0]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "nas.cli", "export", job_id, "--device", "cpu", "--trial", str(trial.trial_id),
           "--format", "safetensors", "--out", str(tmp_path), "--store", store.url, "--json"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    (model,) = json.loads(done.stdout)["models"]
    assert model["trial_id"] == trial.trial_id and (tmp_path / model["file"]).is_file()
    bad = subprocess.run([*cmd[:7], "--max-latency", "1", *cmd[7:]], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "--trial: not allowed with argument --max-latency" in bad.stderr


def test_exporting_twice_into_one_folder_keeps_an_honest_manifest(searched, tmp_path: Path) -> None:
    """Issue 27, finding 8: a second export reported the folder's models as its own and kept entries
    whose files were gone."""
    store, job_id, _ = searched
    front = choose_trials(store, job_id, "cpu")
    out = tmp_path / "both"
    first = export_job(store, job_id, "cpu", "safetensors", out, trial_id=front[0].trial_id)
    second = export_job(store, job_id, "cpu", "safetensors", out, trial_id=front[1].trial_id)
    assert len(first["written"]) == 1 and len(second["written"]) == 1 and first["written"] != second["written"]
    assert {m["file"] for m in second["models"]} == {*first["written"], *second["written"]}
    (out / first["written"][0]).unlink()
    third = export_job(store, job_id, "cpu", "safetensors", out, trial_id=front[1].trial_id)
    assert [m["file"] for m in third["models"]] == second["written"]  # the stale entry is gone
    on_disk = json.loads((out / "manifest.json").read_text())
    assert "written" not in on_disk and [m["file"] for m in on_disk["models"]] == second["written"]


def test_int8_export_is_the_quantized_model_measured_as_deployed(searched, tmp_path: Path) -> None:
    """Issue 25 (items 2 and 6, in part): `--precision int8` writes the ONNX Runtime QDQ model
    (uint8 activations, int8 weights per channel) calibrated on held-out images; the manifest's
    accuracy is what ONNX Runtime computes running that file, next to fp32's."""
    import onnx

    from predictors.onnx_backend import ort_session
    from predictors.quantization import QuantSettings, onnx_predictions

    store, job_id, run = searched
    trial = choose_trials(store, job_id, "cpu")[0]
    manifest = export_job(store, job_id, "cpu", "onnx", tmp_path, trial_id=trial.trial_id, precision="int8",
                          quant=QuantSettings(images=32))  # fmt: skip
    (model,) = manifest["models"]
    path = tmp_path / model["file"]
    assert model["precision"] == "int8" and path.name.endswith("-int8.onnx")
    graph = onnx.load(str(path)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") > 5 and ops.count("DequantizeLinear") > 5
    weights = {i.name: i for i in graph.initializer}
    int8_weights = [w for w in weights.values() if w.data_type == onnx.TensorProto.INT8 and len(w.dims) == 4]
    assert int8_weights, "convolution weights stored as int8"
    q = model["quantization"]
    assert (q["format"], q["activations"], q["weights"]) == ("QDQ", "uint8", "int8 per channel")
    assert q["calibration_images"] == 32 and q["calibration_split"] == "holdout"
    # the manifest's int8 accuracy is the file's own, recomputed here independently
    supernet, meta = load_supernet(run)
    space = supernet.space
    arch = space.make(trial.arch)
    dataset = _dataset(supernet, meta)
    r = space.resolution(arch)
    xs, ys = zip(*dataset.loader("test", 100, train=False, resolutions=[r]).epoch(0))
    batches = [resize_batch(x, r).numpy() for x in xs]
    labels = torch.cat(ys).numpy()
    mine = onnx_predictions(path.read_bytes(), batches)
    assert model["test_accuracy"] == pytest.approx(float((mine == labels).mean()))
    net = recalibrated_subnet(supernet, arch, dataset, recal_batches=2, device=torch.device("cpu"))
    assert model["fp32_test_accuracy"] == pytest.approx(accuracy(net, dataset, "test", r)["accuracy"])
    with torch.no_grad():
        fp32_top1 = torch.cat([net(torch.from_numpy(b)) for b in batches]).argmax(1).numpy()
    assert model["top1_agreement_with_fp32"] == pytest.approx(float((mine == fp32_top1).mean()))
    # int8 logits track fp32's (a broken scale would not)
    session = ort_session(path.read_bytes(), 1)
    int8_logits = np.concatenate([session.run(["y"], {"x": b})[0] for b in batches])
    with torch.no_grad():
        fp32_logits = torch.cat([net(torch.from_numpy(b)) for b in batches]).numpy()
    spread = float(fp32_logits.max() - fp32_logits.min())
    error = float(np.abs(int8_logits - fp32_logits).mean())
    assert error < 0.1 * spread
    # and int8 keeps the class wherever fp32 is decisive (this tiny supernet is near chance, where
    # a top-1 margin below the quantization error flips either way: agreement overall means little)
    top2 = np.sort(fp32_logits, axis=1)[:, -2:]
    decisive = top2[:, 1] - top2[:, 0] > 4 * error
    assert decisive.sum() >= 5
    assert float((int8_logits.argmax(1) == fp32_logits.argmax(1))[decisive].mean()) >= 0.95


def test_int8_weight_scales_per_tensor_from_the_cli(searched, tmp_path: Path) -> None:
    """`--weight-scales per-tensor`: one scale per weight tensor (per channel by default)."""
    import onnx
    from onnx import numpy_helper

    store, job_id, _ = searched
    trial = choose_trials(store, job_id, "cpu")[0]
    scales = {}
    for mode in ("per-channel", "per-tensor"):
        out = tmp_path / mode
        cmd = [sys.executable, "-m", "nas.cli", "export", job_id, "--device", "cpu", "--trial", str(trial.trial_id),
               "--out", str(out), "--store", store.url, "--precision", "int8", "--calibration-images", "16",
               "--weight-scales", mode, "--json"]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        (model,) = json.loads(done.stdout)["models"]
        assert model["quantization"]["weights"] == f"int8 {mode.replace('-', ' ')}"
        graph = onnx.load(str(out / model["file"])).graph
        values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        conv_weights = {k for k, v in values.items() if v.dtype == np.int8 and v.ndim == 4}
        weight_scales = [values[n.input[1]] for n in graph.node
                         if n.op_type == "DequantizeLinear" and n.input[0] in conv_weights]  # fmt: skip
        assert weight_scales
        scales[mode] = max(s.size for s in weight_scales)
    assert scales["per-tensor"] == 1 < scales["per-channel"]


def test_int8_export_refuses_what_it_cannot_do(searched, tmp_path: Path) -> None:
    store, job_id, _ = searched
    with pytest.raises(ExportError, match="quantized models are written as ONNX"):
        export_job(store, job_id, "cpu", "safetensors", tmp_path, precision="int8")
    with pytest.raises(ExportError, match="--precision: unknown 'int4'"):
        export_job(store, job_id, "cpu", "onnx", tmp_path, precision="int4")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "nas.cli", "export", job_id, "--device", "cpu", "--out", str(tmp_path),
           "--store", store.url, "--precision", "int8", "--calibration-images", "0"]  # fmt: skip
    bad = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "calibration images: 0 is outside 1..100000" in bad.stderr
