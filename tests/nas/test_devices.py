"""Devices as records of the store: settings checked, tables measured where the device is
(here, or through a command in another process), kept with their provenance, used by jobs by
name, exported and imported, and a new device calibrated from a few measurements."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

from nas.cli import main
from nas.core.config import ConfigError
from nas.core.space import create_space
from nas.device_measure import Job, measure
from nas.devices import Device, DeviceCatalog
from nas.store import Store
from predictors.latency import LatencyTable
from predictors.latency.command import CommandError, CommandSpec, CommandTimer

SMALL = ["--space", "ofa_mbv3", "--config", "mnist", "--option", "ks_choices=[3]", "--option",
         "expand_choices=[3,6]", "--option", "depth_choices=[1,2]", "--option", "resolutions=[28]"]  # fmt: skip
ORT = f"{shlex.quote(sys.executable)} -m nas.testing.ort_benchmark --model {{model}} --threads {{threads}} --runs 5"


OPTIONS = {"ks_choices": [3], "expand_choices": [3, 6], "depth_choices": [1, 2], "resolutions": [28]}


@pytest.fixture(scope="module")
def space():
    """18 op signatures: a table is measured in seconds."""
    return create_space("ofa_mbv3", config="mnist", **OPTIONS)


@pytest.fixture
def catalog(tmp_path):
    return DeviceCatalog(Store(f"sqlite:///{tmp_path / 'nas.db'}"))


def _accepted(table_dict):
    """Tests run beside other work: a table is kept whatever the machine's load."""
    table = LatencyTable.from_dict(table_dict)
    table.provenance["accepted"] = True
    return table


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"name": "pi 4"}, "use letters, digits"),
        ({"name": "cuda:1"}, "means this machine's cuda:1"),
        ({"name": "d", "place": "ray"}, "needs --resource"),
        ({"name": "d", "place": "command"}, "needs --command"),
        ({"name": "d", "place": "command", "command": "bench {model} {size}"}, "unknown placeholder {size}"),
        ({"name": "d", "place": "command", "command": "bench model.onnx"}, "has no {model}"),
        ({"name": "d", "place": "command", "command": "bench {model}", "pattern": "([0-9]+) ms"}, "group named ms"),
        ({"name": "d", "place": "command", "command": "bench {model}", "backend": "torch"}, "ONNX files"),
        ({"name": "d", "backend": "onnxrt"}, "unknown backend 'onnxrt'"),
        ({"name": "d", "backend": "onnxruntime", "target": "cuda"}, "onnxruntime measures on the CPU"),
        ({"name": "d", "command": "bench {model}"}, "are for place command"),
    ],
)
def test_bad_settings_are_named_with_the_fix(settings, error):
    with pytest.raises(ConfigError, match=error.replace("{", r"\{").replace("(", r"\(")):
        Device(**settings).validate()


def test_devices_are_stored_listed_replaced_and_removed(catalog):
    catalog.add(Device("pi4-ort", backend="onnxruntime", threads=4, description="the lab's Pi"))
    catalog.add(Device("phone", place="command", command="bench {model}"))
    assert [d.name for d in catalog.all()] == ["phone", "pi4-ort"]
    assert catalog.get("pi4-ort").threads == 4
    with pytest.raises(Exception, match=r"exists.*--replace"):
        catalog.add(Device("pi4-ort"))
    catalog.add(Device("pi4-ort", backend="onnxruntime", threads=2), replace=True)
    assert catalog.get("pi4-ort").threads == 2
    catalog.remove("phone")
    with pytest.raises(ConfigError, match=r"device 'phone' not found.*known: pi4-ort"):
        catalog.get("phone")


def test_a_command_device_measures_like_the_same_runtime_here_and_a_job_reads_it(catalog, space, tmp_path):
    """The command backend (ONNX Runtime in another process, per model file) and the local
    onnxruntime backend time the same ops: their tables agree within timing noise."""
    here = catalog.add(Device("here-ort", backend="onnxruntime", threads=1))
    remote = catalog.add(Device("cmd-ort", place="command", command=ORT, threads=1))
    job = Job("table", rounds=1, calibration=4)
    local = _accepted(measure(here, space, job, progress=False)["table"])
    table = _accepted(measure(remote, space, job, work=tmp_path / "work", progress=False)["table"])
    assert table.provenance["place"] == "command" and table.provenance["command"] == ORT
    assert table.device_name == "cmd-ort" and table.metric_device == "cmd-ort"
    assert set(table.entries) == set(local.entries)
    ratios = [table.entries[k]["mean_ms"] / local.entries[k]["mean_ms"] for k in local.entries]
    assert 0.5 < float(np.median(ratios)) < 2.0, sorted(ratios)  # same runtime, same ops: not a unit slip
    assert not (tmp_path / "work" / space.space_id.replace("/", "_") / "measured.json").exists()  # done: forgotten
    catalog.save_table("cmd-ort", table)
    resolved = catalog.table("cmd-ort", space)
    arch = space.sample(np.random.default_rng(0))
    assert resolved.predict(space, arch) == pytest.approx(table.predict(space, arch))
    assert resolved.metric_device == "cmd-ort"


def test_an_interrupted_command_build_resumes_where_it_stopped(space, tmp_path):
    """The command fails from its 6th model on (a device unplugged); run again, only the models
    not yet measured are measured."""
    counter = tmp_path / "calls"
    wrapper = tmp_path / "bench.py"
    wrapper.write_text(
        "import os, pathlib, sys\n"
        f"c = pathlib.Path({str(counter)!r}); n = int(c.read_text()) if c.exists() else 0; c.write_text(str(n + 1))\n"
        "if n >= int(os.environ.get('LIMIT', '1000000')): sys.exit('device unplugged')\n"
        "from nas.testing.ort_benchmark import main; sys.exit(main(sys.argv[1:]))\n"
    )
    spec = CommandSpec(f"{shlex.quote(sys.executable)} {wrapper} --model {{model}} --runs 3", retries=0)
    layers = list(__import__("predictors.latency", fromlist=["op_signatures"]).op_signatures(space).values())
    import os

    os.environ["LIMIT"] = "5"
    try:
        timer = CommandTimer(spec, tmp_path / "work", batch=1, threads=1)
        with pytest.raises(CommandError, match=r"failed 1 times.*device unplugged"):
            for layer in layers:
                timer.layer(layer)
    finally:
        del os.environ["LIMIT"]
    assert len(json.loads((tmp_path / "work" / "measured.json").read_text())) == 5
    counter.write_text("0")
    again = CommandTimer(spec, tmp_path / "work", batch=1, threads=1)
    timings = [again.layer(layer) for layer in layers]
    assert int(counter.read_text()) == len(layers) - 5  # the first five came from the work folder
    assert all(t["mean_ms"] > 0 for t in timings)


def test_a_command_whose_output_does_not_match_says_what_it_printed(tmp_path, space):
    from predictors.latency import op_signatures

    spec = CommandSpec(f"{shlex.quote(sys.executable)} -c 'print(\"took 3 seconds\")' {{model}}", retries=1)
    timer = CommandTimer(spec, tmp_path, batch=1, threads=1)
    with pytest.raises(CommandError, match=r"failed 2 times.*matched nothing.*took 3 seconds"):
        timer.layer(next(iter(op_signatures(space).values())))
    assert CommandSpec("x {model}", pattern=r"(?P<us>\d+) us").parse("run 1: 900 us\nrun 2: 1500 us") == 1.5


def test_unusable_tables_are_skipped_and_a_missing_one_says_how_to_measure_it(catalog, space):
    catalog.add(Device("pi4-ort", backend="onnxruntime"))
    with pytest.raises(ConfigError, match=r"no latency table of ofa_mbv3/mnist.*nas latency build --device pi4-ort"):
        catalog.table("pi4-ort", space)
    table = LatencyTable(space.space_id, "cpu", "float32", 1, {}, provenance={"reliable": False, "reasons": ["load"]})
    catalog.save_table("pi4-ort", table)
    with pytest.raises(ConfigError, match="marked unreliable"):
        catalog.table("pi4-ort", space)
    # a table stored before summaries said "usable" (reliable/accepted only) keeps its verdict
    catalog.store.add_device_latency("pi4-ort", space.space_id, "table", table.to_dict(),
                                     {"reliable": False, "accepted": False})  # fmt: skip
    assert catalog.usable("pi4-ort", space.space_id) == []


def test_the_cli_adds_builds_lists_exports_imports_calibrates_and_validates(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = ["--store", f"sqlite:///{tmp_path / 'nas.db'}"]

    def run(*args):
        code = main([*args, *store, "--json"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        return json.loads(captured.out)

    run("devices", "add", "here-ort", "--backend", "onnxruntime", "--threads", "1")
    run("devices", "add", "cmd-ort", "--command", ORT, "--threads", "1")
    built = run("latency", "build", "--device", "here-ort", *SMALL, "--calibration", "4", "--validate", "10",
                "--accept-unreliable", "--out", "here.json")  # fmt: skip
    assert built["device"] == "here-ort" and built["validation"]["archs"] == 10
    assert Path("here.json").is_file()
    listed = run("devices")
    assert [d["name"] for d in listed] == ["cmd-ort", "here-ort"]
    assert listed[1]["latency"][0]["validation"]["archs"] == 10 and listed[1]["latency"][0]["host"]
    # a device's options are its own
    assert main(["latency", "build", "--device", "here-ort", *SMALL, "--batch", "8", *store]) != 0
    assert "device here-ort has its own" in capsys.readouterr().err
    run("latency", "export", "--device", "here-ort", *SMALL, "--out", "copy.json")
    assert json.loads(Path("copy.json").read_text())["device_name"] == "here-ort"
    run("devices", "add", "other", "--backend", "onnxruntime")
    assert run("latency", "import", "copy.json", "--device", "other")["id"] > 0
    # a new device from 5 measurements, the two others as its fleet
    calibrated = run("latency", "calibrate", "--device", "cmd-ort", *SMALL, "--archs", "5", "--rounds", "1")
    assert calibrated["method"] == "fleet" and set(calibrated["fleet"]) == {"here-ort", "other"}
    assert calibrated["measured"] == 5 and 0 <= calibrated["expected"]["loo_median_rel_error"] < 1
    shown = run("devices", "show", "cmd-ort")
    assert shown["latency"][0]["kind"] == "fleet"
    # a job reads the calibrated model like a table: its predictions of the measured archs are close
    space = create_space("ofa_mbv3", config="mnist", **OPTIONS)
    model = DeviceCatalog(Store(store[1])).table("cmd-ort", space)
    predicted = [model.predict(space, a) for a in calibrated["archs"]]
    assert model.metric_device == "cmd-ort"
    assert np.median(np.abs(np.array(predicted) / np.array(calibrated["latency_ms"]) - 1)) < 0.5
    assert main(["devices", "show", "nope", *store]) != 0
    assert "device 'nope' not found" in capsys.readouterr().err

    # validated on the device, where it is: a table (here) and a calibrated model (through the
    # command, another process); the figures are stored with each and listed
    table_id = run("devices", "show", "here-ort")["latency"][0]["id"]
    checked = run("latency", "validate", "--device", "here-ort", *SMALL, "--archs", "12")
    assert checked["kind"] == "table" and checked["latency_id"] == table_id and checked["archs"] == 12
    assert len(checked["per_arch"]) == 12 and "table_sum" in checked
    stored = run("devices", "show", "here-ort")["latency"][0]["validation"]
    assert (
        stored["archs"] == 12
        and stored["within_10pct"] == checked.get("corrected", checked["table_sum"])["within_10pct"]
    )
    fleet = run("latency", "validate", "--device", "cmd-ort", *SMALL, "--archs", "12")
    assert fleet["kind"] == "fleet" and 0 <= fleet["calibrated"]["within_10pct"] <= 1
    assert all(row["measured_ms"] > 0 and row["predicted_ms"] > 0 for row in fleet["per_arch"])
    assert run("devices", "show", "cmd-ort")["latency"][0]["validation"]["archs"] == 12
    for wrong, error in (([], "give a table file"), (["--device", "cpu"], "is this machine"),
                         (["here.json", "--device", "here-ort"], "not both"),
                         (["--device", "here-ort", "--threads", "2"], "has its own")):  # fmt: skip
        assert main(["latency", "validate", *wrong, *SMALL, *store]) != 0
        assert error in capsys.readouterr().err


def test_a_job_reads_latency_of_a_device_by_name(tmp_path, space):
    """A spec names the device, not a file: its metric is latency_ms@NAME, from the store's table."""
    from nas.job import job_from_dict
    from nas.runner import run_job
    from predictors.learned import Predictor

    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    catalog = DeviceCatalog(store)
    catalog.add(Device("pi4-ort", backend="onnxruntime"))
    entries = {}
    from predictors.latency import op_signatures

    for sig, layer in op_signatures(space).items():
        entries[sig] = {"mean_ms": 0.01 + layer.get("out_ch", 1) / 1000, "std_ms": 0.0}
    catalog.save_table("pi4-ort", LatencyTable(space.space_id, "cpu", "float32", 1, entries))
    archs = space.sample_unique(12, np.random.default_rng(0))
    predictor = Predictor(space, "ridge", target="accuracy").fit(archs, [0.5 + 0.01 * i for i in range(12)])
    predictor.save(tmp_path / "acc.json")
    spec = {
        "name": "by-device",
        "space": {"name": "ofa_mbv3", "config": "mnist", "options": OPTIONS},
        "evaluator": {"kind": "predictor", "path": str(tmp_path / "acc.json"), "latency_device": "pi4-ort"},
        "searcher": {"kind": "random"},
        "objectives": [
            {"metric": "accuracy", "direction": "max"},
            {"metric": "latency_ms@pi4-ort", "direction": "min"},
        ],
        "budget": {"evaluations": 6},
        "executor": "local",
    }
    result = run_job(job_from_dict(spec), store, progress=False)
    trials = store.trials(result.job_id)
    assert len(trials) == 6
    table = catalog.table("pi4-ort", space)
    for t in trials:
        assert t.metrics["latency_ms@pi4-ort"] == pytest.approx(table.predict(space, space.make(t.arch)))
    bad = {**spec, "evaluator": {**spec["evaluator"], "latency_device": "pi5"}}
    with pytest.raises(ConfigError, match="device 'pi5' not found"):
        run_job(job_from_dict(bad), store, progress=False)
