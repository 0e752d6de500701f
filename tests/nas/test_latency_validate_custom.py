"""``nas latency validate`` on a table of a customised space (issue 27, finding 2): the README's
"Search for your device" recipe with ``num_classes: 12`` failed with "rebuild the space from the
config stored with the run". The table now records its space's configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas.cli import main
from nas.testing.tiny_train import tiny
from search_spaces.training.config import load_train_config
from search_spaces.training.trainer import SupernetTrainer


def test_validate_rebuilds_a_customised_space_from_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    config = tiny()
    config["space"]["options"]["num_classes"] = 12
    SupernetTrainer(load_train_config(config), run).run()
    table = tmp_path / "cpu_table.json"
    monkeypatch.chdir(tmp_path)  # from another directory than the repository
    build = ["latency", "build", "--run", str(run), "--calibration", "3", "--out", str(table), "--json"]
    assert main([*build, "--accept-unreliable"]) == 0  # about the space it finds, whatever the machine's load
    capsys.readouterr()
    recorded = json.loads(table.read_text())
    assert "+" in recorded["space_id"] and recorded["space"]["config"]["num_classes"] == 12
    assert main(["latency", "validate", str(table), "--archs", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["archs"] == 3 and report["table_reliable"] == (recorded["provenance"]["reliable"])
    assert main(["latency", "validate", str(table), "--archs", "3"]) == 0
    assert "table built on " in capsys.readouterr().out  # where it was measured, and the verdict
    # a table from before the configuration was recorded: a clear error naming --run, which works
    del recorded["space"]
    table.write_text(json.dumps(recorded))
    assert main(["latency", "validate", str(table), "--archs", "3"]) == 2
    assert "--run RUN_FOLDER" in capsys.readouterr().err
    assert main(["latency", "validate", str(table), "--archs", "3", "--run", str(run), "--json"]) == 0
