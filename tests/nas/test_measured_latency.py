"""`evaluator.latency_measure: DEVICE`: every subnet a search evaluates is timed end to end on the
device, where the device is (here, through its command in another process, or on its Ray node:
tests/nas/test_devices_ray.py), and recorded as ``latency_ms@DEVICE`` beside the evaluator's own
metrics; mistakes in the spec are named before anything runs."""

from __future__ import annotations

import numpy as np
import pytest

from nas.core.config import ConfigError
from nas.core.space import create_space
from nas.device_measure import MeasuredLatency, measure_resolver
from nas.devices import Device, DeviceCatalog
from nas.evaluators import build_evaluator, check_evaluator
from nas.job import job_from_dict
from nas.runner import resolve_executor, run_job
from nas.store import Store
from predictors.latency.backends import measure_arch
from predictors.learned import Predictor
from tests.nas.test_devices import OPTIONS, ORT


@pytest.fixture(scope="module")
def space():
    return create_space("ofa_mbv3", config="mnist", **OPTIONS)


@pytest.fixture
def setup(tmp_path, space):
    """A store with a command device (ONNX Runtime in another process) and an accuracy predictor."""
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    catalog = DeviceCatalog(store)
    catalog.add(Device("cmd-ort", place="command", command=ORT, threads=1))
    catalog.add(Device("here-torch", backend="torch", threads=1))
    archs = space.sample_unique(12, np.random.default_rng(0))
    Predictor(space, "ridge", target="accuracy").fit(archs, [0.5 + 0.01 * i for i in range(12)]).save(
        tmp_path / "acc.json"
    )
    return store, catalog, str(tmp_path / "acc.json")


def _spec(predictor: str, evaluator: dict | None = None, evaluations: int = 4) -> dict:
    return {
        "name": "measured",
        "space": {"name": "ofa_mbv3", "config": "mnist", "options": OPTIONS},
        "evaluator": {
            "kind": "predictor",
            "path": predictor,
            "latency_measure": "cmd-ort",
            "latency_rounds": 1,
            **(evaluator or {}),
        },
        "searcher": {"kind": "random"},
        "objectives": [
            {"metric": "accuracy", "direction": "max"},
            {"metric": "latency_ms@cmd-ort", "direction": "min"},
        ],
        "budget": {"evaluations": evaluations},
        "executor": "local",
        "seed": 0,
    }


def test_a_search_measures_every_subnet_on_the_command_device(setup, space, tmp_path, monkeypatch):
    store, _, predictor = setup
    monkeypatch.chdir(tmp_path)  # the command device keeps its model files under runs/devices/NAME
    spec = _spec(predictor)
    # a predictor evaluator is a lookup (run here), unless it measures on a device: then a cluster
    # address puts its trials on Ray, where a device on a Ray node is reached
    auto = job_from_dict({**spec, "executor": "auto"})
    assert resolve_executor(auto) == "local" and resolve_executor(auto, ray_address="127.0.0.1:6379") == "ray"
    lookup = {**spec, "executor": "auto", "evaluator": {"kind": "predictor", "path": predictor}}
    assert resolve_executor(job_from_dict(lookup), ray_address="127.0.0.1:6379") == "local"
    result = run_job(job_from_dict(spec), store, progress=False)
    assert result.state == "done"
    trials = store.trials(result.job_id)
    assert len(trials) == 4 and all(t.state == "complete" for t in trials)
    for t in trials:
        measured = t.metrics["latency_ms@cmd-ort"]
        # the same subnet timed here by the same runtime: timing noise apart, the same number
        here = measure_arch(space, space.make(t.arch), 1, "cpu", "float32", "onnxruntime", 1)["mean_ms"]
        assert 0.25 < measured / here < 4.0, (measured, here)
        assert "accuracy" in t.metrics and "macs" in t.metrics
    models = list((tmp_path / "runs" / "devices" / "cmd-ort").rglob("*.onnx"))
    assert models, "the command timed model files written for it"


def test_the_measured_metric_is_expensive_and_checked_before_the_job_runs(setup, space):
    _, catalog, predictor = setup
    evaluator = build_evaluator(_spec(predictor)["evaluator"], space, measure=measure_resolver(catalog))
    assert isinstance(evaluator, MeasuredLatency)
    assert "latency_ms@cmd-ort" in evaluator.metrics and "latency_ms@cmd-ort" not in evaluator.cheap_metrics
    assert evaluator.evaluate_cheap([space.min_arch()])[0].keys() == {"macs", "params"}
    checked = check_evaluator(_spec(predictor)["evaluator"], space)
    assert "latency_ms@cmd-ort" in (checked.metrics or ()) and "latency_ms@cmd-ort" not in (checked.cheap_metrics or ())
    # a job whose objective is the measured latency passes admission; a typo in the metric does not
    from nas.admission import admit_job

    admit_job(_spec(predictor))
    typo = _spec(predictor)
    typo["objectives"][1]["metric"] = "latency_ms@cmd_ort"
    with pytest.raises(ConfigError, match=r"latency_ms@cmd_ort"):
        admit_job(typo)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"latency_measure": "pi5"}, r"device 'pi5' not found"),
        ({"latency_device": "cmd-ort"}, r"latency_device and latency_measure both give latency_ms@cmd-ort; keep one"),
        ({"latency_rounds": 0}, r"evaluator.latency_rounds: must be in \[1, 100\]"),
    ],
)
def test_spec_mistakes_are_named(setup, space, change, error):
    _, catalog, predictor = setup
    with pytest.raises(ConfigError, match=error):
        build_evaluator({**_spec(predictor)["evaluator"], **change}, space, measure=measure_resolver(catalog))


def test_a_device_that_cannot_be_reached_or_run_says_why(setup, space, tmp_path):
    _, catalog, predictor = setup
    spec = _spec(predictor)["evaluator"]
    with pytest.raises(ConfigError, match=r"latency_measure: cmd-ort is a device of a store; run the job with"):
        build_evaluator(spec, space)  # no store to find the device in
    catalog.add(Device("pi4", place="ray", resource="device:pi4", backend="onnxruntime"))
    with pytest.raises(ConfigError, match=r"device pi4 is measured on its Ray node .*--ray-address HEAD:6379"):
        build_evaluator({**spec, "latency_measure": "pi4"}, space, measure=measure_resolver(catalog))
    int8 = create_space("ofa_mbv3", config="mnist", **OPTIONS, precisions=["int8", "fp32"])
    archs = int8.sample_unique(12, np.random.default_rng(0))
    Predictor(int8, "ridge", target="accuracy").fit(archs, list(np.linspace(0.5, 0.6, 12))).save(tmp_path / "q.json")
    on_torch = {**spec, "path": str(tmp_path / "q.json"), "latency_measure": "here-torch"}
    with pytest.raises(ConfigError, match=r"device here-torch: backend torch runs fp32 layers, not int8"):
        build_evaluator(on_torch, int8, measure=measure_resolver(catalog))


def test_a_failing_device_fails_the_trial_not_the_job(setup, tmp_path, monkeypatch):
    """A command that stops answering (a device unplugged): each trial is recorded failed with the
    command's message and the search goes on; a job none of whose trials completed says why."""
    store, catalog, predictor = setup
    monkeypatch.chdir(tmp_path)
    catalog.add(Device("gone", place="command", command="false {model}", retries=0, timeout_s=10))
    spec = _spec(predictor, {"latency_measure": "gone"}, evaluations=2)
    spec["objectives"][1]["metric"] = "latency_ms@gone"
    result = run_job(job_from_dict(spec), store, progress=False)
    trials = store.trials(result.job_id)
    assert len(trials) == 2 and all(t.state == "failed" for t in trials)
    assert all("exit status 1" in (t.error or "") for t in trials), [t.error for t in trials]
    assert result.state == "failed"
    assert "every trial failed (2)" in (store.job(result.job_id).error or "")
