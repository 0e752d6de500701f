"""Warnings and log lines a library emits during a search are written above the progress bar,
each on a line of its own, never into the bar's line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from nas.testing.toy import toy_job_spec

ROOT = Path(__file__).resolve().parents[2]


def test_warnings_and_logs_do_not_break_the_progress_bar(tmp_path: Path) -> None:
    spec = toy_job_spec(budget={"evaluations": 12}, parallelism=1)
    spec["evaluator"]["options"] = {"warn": True}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(spec))
    store = f"sqlite:///{tmp_path / 'x.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "nas.cli", "search", str(tmp_path / "job.yaml"), "--store", store],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "always"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.split("\n")
    visible = [line.split("\r")[-1] for line in lines]  # what a terminal shows of each line
    noisy = [v for v in visible if "toy warning" in v or "toy log line" in v]
    assert len([v for v in noisy if "toy warning" in v]) >= 12 and len([v for v in noisy if "toy log line" in v]) >= 12
    assert all(not v.startswith("search") and "eval/s" not in v and "it/s" not in v for v in noisy), noisy[:3]
    assert any(v.startswith("search") for v in visible)  # the bar itself is still drawn
