"""Helpers shared by the benchmark scripts: environment record and JSON output."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def environment() -> dict[str, Any]:
    """Device and library versions, recorded with every result."""
    import torch

    from search_spaces.training.checkpoint import versions

    env: dict[str, Any] = {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        **versions(),
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def write_result(path: str | Path, result: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"environment": environment(), **result}, indent=2))
    return path
