"""A device measured on its own Ray node: a cluster of separate processes, a head and a node
started with a custom resource naming the device; the table is built there, comes back with
that node's provenance, and equals (within timing noise) the same device measured here."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from tests.nas.test_devices import SMALL

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.ray


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head offering nothing special and a node offering ``device:testdev`` (one for the module)."""
    home = tmp_path_factory.mktemp("ray") / "home"
    home.mkdir()
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # Ray's socket paths must stay short
    env = {**os.environ, "HOME": str(home), "RAY_TMPDIR": str(temp), "PYTHONPATH": str(ROOT)}
    env.pop("RAY_AUTH_MODE", None)
    ray = str(Path(sys.executable).parent / "ray")
    subprocess.run([ray, "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=60)
    port = _free_port()
    common = ["--block", "--disable-usage-stats", "--node-ip-address", "127.0.0.1"]
    head = subprocess.Popen(
        [ray, "start", "--head", "--port", str(port), "--num-cpus", "1", "--include-dashboard=false", *common],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    procs = [head]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        node = subprocess.Popen(
            [ray, "start", "--address", f"127.0.0.1:{port}", "--num-cpus", "1",
             "--resources", json.dumps({"device:testdev": 1}), *common],
            env={**env, "RAY_AUTH_MODE": "token"},  # a node joining a head that has a token sends it
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        procs.append(node)
        yield f"127.0.0.1:{port}", env
    finally:
        for p in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, 15)
            p.wait(timeout=60)
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=60)


def _nas(args, cwd, env):
    done = subprocess.run([sys.executable, "-m", "nas.cli", *args, "--json"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_a_table_built_on_the_devices_ray_node_equals_one_built_here(cluster, tmp_path):
    address, env = cluster
    env = {**env, "NAS_STORE": f"sqlite:///{tmp_path / 'nas.db'}"}
    _nas(["devices", "add", "ray-ort", "--resource", "device:testdev", "--backend", "onnxruntime", "--threads", "1"],
         tmp_path, env)  # fmt: skip
    _nas(["devices", "add", "here-ort", "--backend", "onnxruntime", "--threads", "1"], tmp_path, env)
    deadline = time.monotonic() + 60  # the node joins a few seconds after the head
    while True:
        done = subprocess.run(
            [sys.executable, "-m", "nas.cli", "latency", "build", "--device", "ray-ort", *SMALL, "--calibration", "2",
             "--ray-address", address, "--accept-unreliable", "--out", "remote.json", "--json"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if done.returncode == 0 or "offers resource" not in done.stderr or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert done.returncode == 0, done.stderr[-3000:]
    built = json.loads(done.stdout)
    record = built["provenance"]
    assert record["place"].startswith("ray:device:testdev@")
    assert record["ray_resources"].get("device:testdev") == 1  # it ran holding the device's resource
    assert record["ray_node_id"] and record["machine"]["host"]
    _nas(["latency", "build", "--device", "here-ort", *SMALL, "--calibration", "2", "--accept-unreliable",
          "--out", "here.json"], tmp_path, env)  # fmt: skip
    remote = json.loads((tmp_path / "remote.json").read_text())["entries"]
    here = json.loads((tmp_path / "here.json").read_text())["entries"]
    assert set(remote) == set(here)
    ratio = float(np.median([remote[k]["mean_ms"] / here[k]["mean_ms"] for k in here]))
    assert 0.5 < ratio < 2.0  # the same runtime on the same ops: timing noise, not another measurement
    listed = _nas(["devices"], tmp_path, env)
    assert {d["name"]: len(d["latency"]) for d in listed} == {"here-ort": 1, "ray-ort": 1}


def test_a_cluster_without_the_devices_node_is_named(cluster, tmp_path):
    address, env = cluster
    env = {**env, "NAS_STORE": f"sqlite:///{tmp_path / 'nas.db'}"}
    _nas(["devices", "add", "pi4", "--resource", "device:pi4", "--backend", "onnxruntime"], tmp_path, env)
    done = subprocess.run(
        [sys.executable, "-m", "nas.cli", "latency", "build", "--device", "pi4", *SMALL, "--ray-address", address],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode != 0
    assert "offers resource 'device:pi4'" in done.stderr and "ray start --address" in done.stderr
