"""The CLI never misleads about stores and metrics: read-only commands create nothing, hints carry
the store in use, an unknown metric name is an error listing the job's metrics; --version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from nas.cli import main
from nas.core.space import create_space
from nas.testing.nb201 import write_nb201_tables


def _spec(tmp_path: Path) -> Path:
    acc, lat = write_nb201_tables(tmp_path, create_space("nb201"))
    spec = {
        "name": "tabular",
        "space": {"name": "nb201"},
        "evaluator": {"kind": "tabular", "accuracy_csv": str(acc), "latency_csv": str(lat), "devices": ["cpu"]},
        "objectives": [{"metric": "accuracy", "direction": "max"}, {"metric": "latency_ms@cpu", "direction": "min"}],
        "searcher": {"kind": "random"},
        "budget": {"evaluations": 6},
        "seed": 0,
        "executor": "local",
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("nas (hwnas) ")


@pytest.mark.parametrize(
    "command", [["jobs"], ["pareto", "20260101-000000-abcdef"], ["resume", "x"], ["trials", "20260101-000000-abcdef"]]
)
def test_read_only_commands_create_nothing(command: list[str], tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'nas.dbb'}"
    assert main([*command, "--store", url]) == 2
    err = capsys.readouterr().err
    assert f"no database at {url} (nothing was created)" in err and "nas search" in err
    assert not (tmp_path / "missing").exists()


def test_hints_carry_the_store_and_wrong_metrics_are_errors(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    assert main(["search", str(_spec(tmp_path)), "--store", url]) == 0
    out = capsys.readouterr().out
    job_id = out.split("job ", 1)[1].split(":", 1)[0]
    assert "|+|" in out and '"ops"' not in out  # NB201 archs in their usual notation
    assert f"more: nas pareto {job_id} --store {url} --plot front.png" in out
    # the hint works as printed
    assert main(["pareto", job_id, "--store", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["evaluated"] == 6
    # a metric the job does not have is an error naming the ones it has
    assert main(["pareto", job_id, "--store", url, "--latency-metric", "latency_ms@gpu", "--max-latency", "3"]) == 2
    err = capsys.readouterr().err
    assert (
        "--latency-metric: job" in err and "no metric 'latency_ms@gpu'; its metrics are accuracy, latency_ms@cpu" in err
    )
    assert main(["pareto", job_id, "--store", url, "--accuracy-metric", "acc", "--min-accuracy", "0.5"]) == 2
    assert "--accuracy-metric: job" in capsys.readouterr().err


def test_space_info_of_one_arch(tmp_path: Path, capsys) -> None:
    from predictors.flops import count_cost
    from predictors.latency import LatencyTable, signature

    nb201 = create_space("nb201")
    text = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert main(["space", "info", "nb201", "--arch", text, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    arch = nb201.from_string(text)
    assert payload["arch_id"] == arch.arch_id and payload["macs"] == count_cost(nb201.static_config(arch)).macs
    # with a table: its latency too (a table of one arch's layers, 1 ms each)
    space = create_space("ofa_mbv3", config="cifar")
    arch = space.max_arch()
    entries = {signature(layer): {"mean_ms": 1.0} for layer in space.static_config(arch)}
    table = LatencyTable(space.space_id, "cpu", "float32", 1, entries).save(tmp_path / "t.json")
    argv = ["space", "info", "ofa_mbv3", "--config", "cifar", "--arch", json.dumps(arch.to_dict())]
    assert main([*argv, "--table", str(table), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["latency_ms@cpu"] == len(space.static_config(arch))
    assert main(["space", "info", "ofa_mbv3", "--table", str(table)]) == 2
    assert "--table needs --arch" in capsys.readouterr().err


def test_trials_as_table_csv_and_json(tmp_path: Path, capsys) -> None:
    import csv
    import io

    url = f"sqlite:///{tmp_path / 'nas.db'}"
    assert main(["search", str(_spec(tmp_path)), "--store", url]) == 0
    job_id = capsys.readouterr().out.split("job ", 1)[1].split(":", 1)[0]
    assert main(["trials", job_id, "--store", url]) == 0
    out = capsys.readouterr().out
    assert f"job {job_id} (done): 6 trials" in out and out.count("|+|") == 12  # two per NB201 arch string
    assert main(["trials", job_id, "--store", url, "--csv", "-"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 6 and {r["state"] for r in rows} == {"complete"}
    assert list(rows[0]) == ["trial_id", "state", "accuracy", "latency_ms@cpu", "arch", "error"]
    space = create_space("nb201")
    assert all(space.from_string(r["arch"]) for r in rows)  # pasteable
    assert float(rows[0]["latency_ms@cpu"]) > 0
    assert main(["trials", job_id, "--store", url, "--csv", str(tmp_path / "out" / "t.csv")]) == 0
    assert (tmp_path / "out" / "t.csv").read_text().count("\n") == 7
    capsys.readouterr()
    assert main(["trials", job_id, "--store", url, "--state", "failed", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trials"] == []


def test_space_info_prints_corner_archs_that_paste_back(capsys) -> None:
    assert main(["space", "info", "nb201"]) == 0
    out = capsys.readouterr().out
    lines = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in out.splitlines()}
    space = create_space("nb201")
    assert space.from_string(lines["max_arch"].split("  ")[0]) == space.max_arch()
    assert "invalid=the cell has no input-to-output path" in lines["min_arch"] and lines["arch_keys"] == '["ops"]'
    assert main(["space", "info", "ofa_mbv3", "--config", "cifar"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("max_arch: "))
    mbv3 = create_space("ofa_mbv3", config="cifar")
    assert mbv3.make(json.loads(line.split(": ", 1)[1].split("  ")[0])) == mbv3.max_arch()
