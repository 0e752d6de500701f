"""A Ray cluster of separate processes on this machine: a head and one node offering custom
resources (what `ray start --address HEAD --resources ...` does on a device)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 60) -> None:
    """Until something listens on 127.0.0.1:``port`` (a Ray head), or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)


@contextlib.contextmanager
def ray_cluster(folder: Path, resources: dict[str, Any]) -> Iterator[tuple[str, dict[str, str]]]:
    """``(HEAD address, environment to reach it with)`` while a head (no special resources) and a
    node offering ``resources`` run; token authentication on, as Ray >= 2.59 has it."""
    home = folder / "home"
    home.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # Ray's socket paths must stay short
    env = {**os.environ, "HOME": str(home), "RAY_TMPDIR": str(temp), "PYTHONPATH": str(ROOT)}
    env.pop("RAY_AUTH_MODE", None)
    ray = str(Path(sys.executable).parent / "ray")
    subprocess.run([ray, "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=60)
    port = free_port()
    common = ["--block", "--disable-usage-stats", "--node-ip-address", "127.0.0.1"]
    procs = [
        subprocess.Popen(
            [ray, "start", "--head", "--port", str(port), "--num-cpus", "1", "--include-dashboard=false", *common],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
    ]  # fmt: skip
    try:
        wait_for_port(port)
        procs.append(
            subprocess.Popen(
                [ray, "start", "--address", f"127.0.0.1:{port}", "--num-cpus", "1",
                 "--resources", json.dumps(resources), *common],
                env={**env, "RAY_AUTH_MODE": "token"},  # a node joining a head that has a token sends it
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )
        )  # fmt: skip
        yield f"127.0.0.1:{port}", env
    finally:
        for p in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)  # a blocked `ray start` and its daemons; ray stop cleans up
            p.wait(timeout=60)
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=60)


def wait_for_resource(command: list[str], cwd: Path, env: dict[str, str], timeout_s: float = 60) -> Any:
    """Runs ``command`` until it stops failing for want of the node's resource (a node joins a few
    seconds after the head); returns the last completed process."""
    deadline = time.monotonic() + timeout_s
    while True:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode == 0 or "offers resource" not in done.stderr or time.monotonic() > deadline:
            return done
        time.sleep(2)
