"""The ``nas`` CLI run as users run it: in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NAS = [sys.executable, "-m", "nas.cli"]
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([*NAS, *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"nas {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def test_help_lists_commands() -> None:
    out = run("--help").stdout
    for command in ("demo", "spaces", "space"):
        assert command in out


def test_space_sample_json() -> None:
    payload = json.loads(run("space", "sample", "ofa_mbv3", "--config", "imagenet", "-n", "5", "--json").stdout)
    assert payload["space_id"] == "ofa_mbv3/imagenet"
    archs = payload["archs"]
    assert len(archs) == 5
    from nas.core.space import create_space
    from predictors.flops import count_cost

    space = create_space("ofa_mbv3")
    for row in archs:
        arch = space.make(row["arch"])
        assert arch.arch_id == row["arch_id"]
        cost = count_cost(space.static_config(arch))
        assert (row["macs"], row["params"]) == (cost.macs, cost.params)
        assert 30e6 < row["macs"] < 600e6
    again = json.loads(run("space", "sample", "ofa_mbv3", "--config", "imagenet", "-n", "5", "--json").stdout)
    assert again == payload  # seeded
    other = json.loads(run("space", "sample", "ofa_mbv3", "-n", "5", "--seed", "1", "--json").stdout)
    assert other["archs"] != payload["archs"]


def test_space_sample_text_and_options() -> None:
    out = run("space", "sample", "ofa_mbv3", "--config", "cifar", "--option", "num_classes=100", "-n", "2").stdout
    assert len(out.strip().splitlines()) == 2 and "MACs" in out
    payload = json.loads(
        run(
            "space",
            "sample",
            "ofa_mbv3",
            "--config",
            "cifar",
            "--option",
            "num_classes=100",
            "-n",
            "1",
            "--json",
        ).stdout
    )
    assert payload["space_id"].startswith("ofa_mbv3/cifar+")


def test_spaces_and_info_json() -> None:
    spaces = json.loads(run("spaces", "--json").stdout)
    assert {row["name"] for row in spaces} >= {"ofa_mbv3"}
    info = json.loads(run("space", "info", "ofa_mbv3", "--config", "mnist", "--json").stdout)
    assert info["space_id"] == "ofa_mbv3/mnist"
    assert info["size"] == int(info["size"]) > 1e9
    assert info["max_arch"]["macs"] > info["min_arch"]["macs"]
    assert info["config"]["in_channels"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("space", "sample", "ofa_mbv3", "--config", "tiny"), "unknown ofa_mbv3 preset 'tiny'"),
        (("space", "sample", "nope"), "unknown space 'nope'"),
        (("space", "sample", "ofa_mbv3", "-n", "0"), "-n must be positive"),
        (("space", "info", "ofa_mbv3", "--option", "num_classes"), "is not KEY=VALUE"),
        (("space", "info", "ofa_mbv3", "--option", "depth_choices=[0,2]"), "depth_choices"),
        (("proxy", "score", "--space", "ofa_mbv3"), "--space ofa_mbv3: has no benchmark tables to score against"),
        (("proxy", "score", "--data", "missing-cifar"), "missing-cifar: no CIFAR-10 found"),
        (("train", "missing.yaml"), "config file not found"),
        (("eval", "nowhere"), "no supernet.json found"),
    ],
)
def test_bad_input_exits_nonzero_with_one_line(args, message) -> None:
    proc = run(*args, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0] and "hint" in lines[0]


def test_demo_trains_on_digits_and_reports_real_measurements(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    payload = json.loads(run("demo", "--json", "--out", str(out), timeout=900).stdout)
    assert payload["space_id"] == "ofa_mbv3/mnist"
    # The largest subnet of a supernet trained on digits is far above chance (0.1).
    assert payload["test_accuracy"]["max"] > 0.8
    accuracies = [row["holdout_accuracy"] for row in payload["subnets"]]
    assert len(accuracies) == 8 and max(accuracies) > 0.8
    assert payload["extracted"]["max_abs_diff"] < 1e-4
    search = payload["search"]
    assert search["evaluations"] == 24 and search["failed"] == 0 and search["front"]
    front = search["front"]
    assert all(t["state"] == "complete" and t["worker"] for t in front)
    assert max(t["metrics"]["accuracy"] for t in front) > 0.8  # real holdout accuracy of searched subnets
    lat = [t["metrics"]["latency_ms@cpu"] for t in front]
    accs = [t["metrics"]["accuracy"] for t in front]
    assert lat == sorted(lat) and accs == sorted(accs)  # a front: more latency only for more accuracy
    table = payload["latency_table"]
    assert table["ops"] > 20 and (out / "latency_cpu_b1.json").is_file()
    assert table["validation"]["archs"] == 20 and 0 <= table["validation"]["corrected"]["within_10pct"] <= 1
    assert (out / "supernet.safetensors").is_file() and (out / "training_curves.png").is_file()
    exported = payload["export"]["models"]
    assert [m["trial_id"] for m in exported] == [t["trial_id"] for t in front]
    assert all((out / "export" / m["file"]).is_file() and m["check"]["max_abs_diff"] < 1e-4 for m in exported)
    assert max(m["test_accuracy"] for m in exported) > 0.8
    # A second run reuses the trained supernet and reports the same numbers.
    again = json.loads(run("demo", "--json", "--out", str(out), timeout=900).stdout)
    assert again["test_accuracy"] == payload["test_accuracy"] and again["subnets"] == payload["subnets"]
    assert again["search"]["job_id"] == search["job_id"] and again["search"]["front"] == front
