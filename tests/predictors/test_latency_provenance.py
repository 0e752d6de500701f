"""A table records where and in what state it was measured; one measured under load is marked,
refused by jobs and by the build command, unless kept knowingly."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from nas.core.config import ConfigError
from nas.core.space import create_space
from predictors.flops import layer_cost
from predictors.latency import LatencyTable, build_table
from predictors.latency import provenance as prov

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="load is read from /proc")


def _busy_timer(layer):
    """A 'clock' that does real CPU work (so the build runs for a while) and returns a fixed value."""
    deadline = time.perf_counter() + 0.004
    while time.perf_counter() < deadline:
        pass
    ms = layer_cost(layer).macs / 1e7 + 0.01
    return {"mean_ms": ms, "std_ms": 0.0, "median_ms": ms, "count": 1}


@pytest.fixture(scope="module")
def space():
    return create_space("ofa_mbv3", config="mnist")


@pytest.fixture
def load():
    """Two processes spinning on the CPU (this machine has two cores or more)."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    time.sleep(0.5)
    yield
    for p in spinners:
        p.kill()
        p.wait()


def test_a_build_records_the_machine_and_its_load(space):
    table = build_table(space, layer_timer=_busy_timer, calibration_archs=0, progress=False)
    record = table.provenance
    assert record is not None and record["place"] == "local"
    assert record["machine"]["cpu_count"] >= 1 and record["machine"]["host"]
    assert "torch" in record["machine"] and record["machine"]["torch_threads"] >= 1
    assert record["load"]["wall_s"] > 0 and record["load"]["own_cores"] > 0
    assert {"probe_ms", "probe_spread", "probe_drift"} <= set(record["noise"])
    again = LatencyTable.from_dict(json.loads(json.dumps(table.to_dict())))
    assert again.provenance == record and again.reliable == table.reliable


def test_a_table_built_while_other_processes_load_the_cpu_is_marked_and_refused(space, load, tmp_path):
    from nas.evaluators import _load_latency_table

    table = build_table(space, layer_timer=_busy_timer, calibration_archs=0, progress=False)
    assert not table.reliable
    assert any("other processes used" in r and "idle machine" in r for r in table.provenance["reasons"])
    path = table.save(tmp_path / "t.json")
    with pytest.raises(ConfigError, match=r"marked unreliable.*--accept-unreliable"):
        _load_latency_table(str(path), space)
    table.provenance["accepted"] = True  # what `nas latency build --accept-unreliable` records
    table.save(path)
    assert _load_latency_table(str(path), space).space_id == space.space_id
    # a stand-in table (timings not read from this machine's clock) is not judged by its load
    stand_in = build_table(space, layer_timer=_busy_timer, calibration_archs=0, progress=False, judge=False)
    assert stand_in.reliable and stand_in.provenance["judged"] is False and stand_in.provenance["load"]


def test_the_build_command_fails_on_an_unreliable_table_and_keeps_it(space, load, tmp_path, capsys, monkeypatch):
    from nas.cli import main
    from predictors.latency import build

    monkeypatch.setattr(build, "measure_layer", lambda layer, *args: _busy_timer(layer))  # real work, cheap
    out = tmp_path / "t.json"
    args = ["latency", "build", "--config", "mnist", "--calibration", "0", "--out", str(out)]
    assert main(args) != 0
    assert "marked unreliable" in capsys.readouterr().err
    assert LatencyTable.load(out).reliable is False  # written, marked: nothing measured is lost
    assert main([*args, "--accept-unreliable", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["provenance"]["accepted"] is True


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"load": {"other_cores": 0.9}}, "other processes used 0.90 CPU cores"),
        ({"noise": {"probe_spread": 0.4}}, "varied by 40% between repeats"),
        ({"noise": {"probe_drift": 0.3}}, "drifted by 30%"),
        ({"noise": {"op_spread": 0.15}}, "ops varied by 15%"),
    ],
)
def test_each_reason_names_what_to_do(record, reason):
    reliable, reasons = prov.verdict(record)
    assert not reliable and len(reasons) == 1 and reason in reasons[0]
    assert any(hint in reasons[0] for hint in prov.HINTS.values())


def test_a_quiet_record_is_reliable_and_a_powersave_governor_is_only_noted():
    record = {
        "load": {"other_cores": 0.05},
        "noise": {"probe_spread": 0.02, "probe_drift": 0.01, "op_spread": 0.03},
        "machine": {"governor": ["powersave"]},
    }
    assert prov.verdict(record) == (True, [])
    assert "performance governor" in prov.warnings(record)[0]
    assert prov.op_spread({"a": {"mean_ms": 1.0, "std_ms": 0.1, "rounds": 3}, "b": {"mean_ms": 1.0}}) == 0.1
