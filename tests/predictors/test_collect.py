"""Collecting (arch, accuracy) data from a trained supernet: resumable, parallel, deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas.testing.tiny_train import tiny
from predictors.collect import collect
from predictors.learned import load_dataset_file
from search_spaces.training.checkpoint import load_supernet
from search_spaces.training.config import load_train_config
from search_spaces.training.trainer import SupernetTrainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    SupernetTrainer(load_train_config(tiny()), out).run()
    return out


def test_collect_resumes_and_matches_across_workers(trained: Path, tmp_path: Path) -> None:
    serial = tmp_path / "serial.jsonl"
    assert collect(trained, 4, serial, recal_batches=2, progress=False) == 4
    first = serial.read_text().splitlines()
    assert collect(trained, 6, serial, recal_batches=2, progress=False) == 2  # 4 already measured
    lines = serial.read_text().splitlines()
    assert lines[:4] == first and len(lines) == 6
    rows = [json.loads(line) for line in lines]
    assert len({r["arch_id"] for r in rows}) == 6
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["split"] == "holdout" and r["macs"] > 0 for r in rows)

    parallel = tmp_path / "parallel.jsonl"
    assert collect(trained, 6, parallel, recal_batches=2, workers=2, progress=False) == 6
    by_id = {r["arch_id"]: r["accuracy"] for r in rows}
    for row in map(json.loads, parallel.read_text().splitlines()):
        assert row["accuracy"] == by_id[row["arch_id"]]

    space = load_supernet(trained)[0].space
    archs, values = load_dataset_file(serial, space)
    assert len(archs) == 6 and values == [r["accuracy"] for r in rows]


def test_collect_bad_input(trained: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="archs: must be positive"):
        collect(trained, 0, tmp_path / "x.jsonl")
    with pytest.raises(ValueError, match="split"):
        collect(trained, 2, tmp_path / "x.jsonl", split="train")
    with pytest.raises(ValueError, match=r"no supernet\.json found"):
        collect(tmp_path / "nowhere", 2, tmp_path / "x.jsonl")
