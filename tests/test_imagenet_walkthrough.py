"""The README's path for a user with ImageNet, end to end on an imported reference checkpoint and a
tiny generated ImageNet-layout tree: import the published w1.0 supernet, build the device's latency
table from the run, search accuracy (holdout of train, BN recalibrated) vs latency under a
constraint, export the best subnet within a latency, and read its val accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from nas.cli import main
from nas.testing.images import write_image_tree

ofa_networks = pytest.importorskip("ofa.imagenet_classification.elastic_nn.networks")

RESOLUTIONS = "[128,160]"  # two of the 25, so that the CPU table builds in seconds here


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_import_latency_search_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    reference = ofa_networks.OFAMobileNetV3(
        dropout_rate=0, width_mult=1.0, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4]
    )
    checkpoint = tmp_path / "ofa_mbv3_d234_e346_k357_w1.0"  # as the model zoo names its download
    torch.save({"state_dict": reference.state_dict()}, str(checkpoint))
    tree = write_image_tree(tmp_path / "imagenet", per_class=10, val_per_class=3, base_size=150)

    # 1. import, with the streamed ImageNet tree as its data (train/ -> holdout, val/ -> test)
    run = tmp_path / "runs" / "ofa_w1.0"
    imported = _json(
        capsys,
        ["supernet", "import", str(checkpoint), "--out", str(run), "--data", "imagefolder-stream",
         "--data-root", str(tree), "--option", f"resolutions={RESOLUTIONS}"],
    )  # fmt: skip
    assert imported["space_id"].startswith("ofa_mbv3/imagenet+") and imported["data"]["name"] == "imagefolder-stream"

    # 2. the device's latency table, for the run's own space
    table = tmp_path / "cpu_table.json"
    built = _json(
        capsys,
        ["latency", "build", "--run", str(run), "--calibration", "2", "--out", str(table), "--accept-unreliable"],
    )  # a walkthrough of the space, whatever the machine's load
    assert built["space_id"] == imported["space_id"] and built["ops"] > 50

    # 3. search: accuracy on the holdout of train (BN recalibrated) vs table latency, under a constraint
    spec = {
        "name": "imagenet-cpu",
        "space": {"name": "ofa_mbv3", "config": "imagenet", "options": {"resolutions": [128, 160]}},
        "evaluator": {"kind": "supernet", "checkpoint": str(run), "recal_batches": 1, "latency_table": str(table)},
        "objectives": [{"metric": "accuracy", "direction": "max"}, {"metric": "latency_ms@cpu", "direction": "min"}],
        "constraints": [{"metric": "latency_ms@cpu", "max": 1000.0}],
        "searcher": {"kind": "evolution", "settings": {"population": 4}},
        "budget": {"evaluations": 6},
        "seed": 0,
        "executor": "local",
    }
    (tmp_path / "search.yaml").write_text(yaml.safe_dump(spec))
    store = f"sqlite:///{tmp_path / 'nas.db'}"
    job = _json(capsys, ["search", str(tmp_path / "search.yaml"), "--store", store])
    assert job["state"] == "done" and job["evaluations"] == 6
    front = _json(capsys, ["pareto", job["job_id"], "--store", store])
    latencies = sorted(t["metrics"]["latency_ms@cpu"] for t in front["front"])
    assert latencies and all(0 < v < 1000 for v in latencies)

    # 4. export the most accurate subnet within a latency, checked against the supernet, with its val accuracy
    limit = latencies[-1]
    exported = _json(
        capsys,
        ["export", job["job_id"], "--store", store, "--device", "cpu", "--max-latency", str(limit),
         "--out", str(tmp_path / "deploy")],
    )  # fmt: skip
    (model,) = exported["models"]
    assert (tmp_path / "deploy" / model["file"]).is_file()
    assert model["search_metrics"]["latency_ms@cpu"] <= limit and 0.0 <= model["test_accuracy"] <= 1.0
    assert model["check"]["max_abs_diff"] < 1e-3
    r = model["arch"]["r"]
    assert model["input"]["preprocessing"]["resize"].startswith(f"shorter side to {round(r / 0.875)} ")
    manifest = json.loads((tmp_path / "deploy" / "manifest.json").read_text())
    assert manifest["models"][0]["file"] == model["file"]
