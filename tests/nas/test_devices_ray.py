"""A device measured on its own Ray node: a cluster of separate processes, a head and a node
started with a custom resource naming the device; the table is built there, comes back with
that node's provenance, and equals (within timing noise) the same device measured here."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.nas.test_devices import SMALL
from tests.ray_cluster import ray_cluster, wait_for_resource

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head offering nothing special and a node offering ``device:testdev`` (one for the module)."""
    with ray_cluster(tmp_path_factory.mktemp("ray"), {"device:testdev": 1}) as found:
        yield found


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
    done = wait_for_resource(
        [sys.executable, "-m", "nas.cli", "latency", "build", "--device", "ray-ort", *SMALL, "--calibration", "2",
         "--ray-address", address, "--accept-unreliable", "--out", "remote.json", "--json"],
        tmp_path, env,
    )  # fmt: skip
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


def test_a_search_measures_each_subnet_on_the_devices_ray_node(cluster, tmp_path):
    """`evaluator.latency_measure` naming a device on a Ray node: the search's trials run on the
    cluster and each subnet is timed by a task holding the device's resource, on that node."""
    from nas.core.space import create_space
    from predictors.learned import Predictor
    from tests.nas.test_devices import OPTIONS
    from tests.nas.test_measured_latency import _spec as measured_spec

    address, env = cluster
    env = {**env, "NAS_STORE": f"sqlite:///{tmp_path / 'nas.db'}"}
    _nas(["devices", "add", "ray-ort", "--resource", "device:testdev", "--backend", "onnxruntime", "--threads", "1"],
         tmp_path, env)  # fmt: skip
    space = create_space("ofa_mbv3", config="mnist", **OPTIONS)
    archs = space.sample_unique(12, np.random.default_rng(0))
    Predictor(space, "ridge", target="accuracy").fit(archs, list(np.linspace(0.5, 0.6, 12))).save(tmp_path / "acc.json")
    spec = measured_spec(str(tmp_path / "acc.json"), {"latency_measure": "ray-ort"}, evaluations=3)
    spec["objectives"][1]["metric"] = "latency_ms@ray-ort"
    del spec["executor"]  # auto: the cluster address puts the trials on Ray
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    joined = (  # the device's node joins a few seconds after the head
        "import ray, sys; from nas.ray_runner import ray_init; ray_init(sys.argv[1]); "
        "sys.exit(0 if 'device:testdev' in ray.cluster_resources() else 'no node offers resource device:testdev')"
    )
    assert wait_for_resource([sys.executable, "-c", joined, address], tmp_path, env).returncode == 0
    done = wait_for_resource(
        [sys.executable, "-m", "nas.cli", "search", "spec.json", "--ray-address", address, "--json"], tmp_path, env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    job = json.loads(done.stdout)["job_id"]
    trials = _nas(["trials", job], tmp_path, env)
    rows = trials["trials"] if isinstance(trials, dict) else trials
    assert len(rows) == 3 and all(r["state"] == "complete" for r in rows)
    assert all(r["metrics"]["latency_ms@ray-ort"] > 0 for r in rows)
