"""Failures that looked like successes (issue 27, findings 3, 6, 7): each now says what is wrong."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from nas.cli import main
from nas.core.arch import Arch
from nas.core.config import ConfigError
from nas.job import job_from_dict
from nas.queries import front_query
from nas.runner import run_job
from nas.store import Store
from nas.testing.toy import ToyEvaluator, ToySpace, toy_job_spec


class AlwaysFails(ToyEvaluator):
    """A toy evaluator whose every evaluation raises, mostly with one message."""

    def evaluate(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        if archs[0]["x"][0] == 0:
            raise ValueError("rare failure")
        raise RuntimeError("CUDA out of memory (toy)")


def test_a_job_whose_every_trial_failed_is_failed_naming_the_commonest_error(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    spec = job_from_dict(toy_job_spec(budget={"evaluations": 12}, parallelism=1))
    result = run_job(spec, store, progress=False, evaluator=AlwaysFails(ToySpace()))
    job = store.job(result.job_id)
    assert result.state == "failed" and job.state == "failed"
    assert job.error is not None and "every trial failed (12)" in job.error
    assert "CUDA out of memory (toy)" in job.error and "nas trials JOB --state failed" in job.error
    ok = run_job(job_from_dict(toy_job_spec(budget={"evaluations": 12})), store, progress=False,
                 evaluator=ToyEvaluator(ToySpace(), fail_when=4))  # fmt: skip
    assert ok.state == "done"  # some trials failing is still a search


def test_nas_search_exits_2_when_every_trial_failed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    failing = {"kind": "custom", "target": "tests.nas.test_failures_say_so:AlwaysFails"}
    spec = toy_job_spec(budget={"evaluations": 6}, parallelism=1, evaluator=failing)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    code = main(["search", str(path), "--store", f"sqlite:///{tmp_path / 'nas.db'}"])
    err = capsys.readouterr().err
    assert code == 2 and "every trial failed (6)" in err and "nas resume" in err


def test_spec_check_refuses_metrics_the_evaluator_does_not_offer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = {"space": {"name": "nb201"}, "evaluator": {"kind": "zero_cost", "proxy": "synflow"},
            "objectives": [{"metric": "acc", "direction": "max"}, {"metric": "params"}],
            "budget": {"evaluations": 10}}  # fmt: skip
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["spec", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "objectives[0].metric: 'acc' is not a metric of this evaluator (zero_cost: synflow, macs, params)" in err


def test_a_percentage_for_a_fraction_is_an_error_not_an_empty_front(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    objectives = [{"metric": "accuracy", "direction": "max"}, {"metric": "lat", "direction": "min"}]
    spec = toy_job_spec(objectives=objectives, constraints=[], reference=None)
    job_id = store.create_job("fractions", spec, "toy", 4)
    space = ToySpace()
    for i in range(4):
        store.add_trial(job_id, i, space.make({"x": [i, 0, 0, 0, 0, 0]}), worker="test")
        store.finish_trial(job_id, i, {"accuracy": 0.6 + 0.1 * i, "lat": 1.0 + i})
    with pytest.raises(ConfigError, match=r"--min-accuracy 90: accuracy of job .* is a fraction .* give 0\.9"):
        front_query(store, job_id, min_accuracy=90)
    assert [t["trial_id"] for t in front_query(store, job_id, min_accuracy=0.75)["front"]] == [2, 3]


def test_a_space_mismatch_names_the_options_that_differ(tmp_path: Path) -> None:
    """Issue 27, finding 14: mismatches named only hashes (``ofa_mbv3/cifar+52de252a`` vs ``+9c54f0d3``)."""
    import copy

    from nas.admission import admit_job
    from nas.testing.tiny_train import TINY_SPACE, tiny
    from search_spaces.training.config import load_train_config
    from search_spaces.training.trainer import SupernetTrainer

    run = tmp_path / "run"
    SupernetTrainer(load_train_config(tiny()), run).run()
    space = copy.deepcopy(TINY_SPACE)
    space["options"]["num_classes"] = 12
    spec = {"space": space, "evaluator": {"kind": "supernet", "checkpoint": str(run)},
            "objectives": [{"metric": "accuracy", "direction": "max"}, {"metric": "macs"}]}  # fmt: skip
    with pytest.raises(ConfigError, match=r"they differ in num_classes \(checkpoint 10, spec 12\); set space"):
        admit_job(spec)


def test_an_unreachable_ray_head_is_one_line_in_seconds_and_no_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 27, finding 4: a wrong --ray-address retried forever and left an ``interrupted`` job."""
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(toy_job_spec(budget={"evaluations": 4})))
    db = tmp_path / "nas.db"
    start = time.monotonic()
    code = main(["search", str(path), "--store", f"sqlite:///{db}", "--ray-address", f"127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert code == 2 and time.monotonic() - start < 30
    assert f"--ray-address 127.0.0.1:{port}: cannot reach a Ray head there" in err and "ray start --head" in err
    assert "Traceback" not in err and (not db.exists() or Store(f"sqlite:///{db}").jobs() == [])
    assert main(["search", str(path), "--store", f"sqlite:///{db}", "--ray-address", "nohost"]) == 2
    assert "expected HOST:PORT" in capsys.readouterr().err


def test_training_config_paths_resolve_against_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 27, finding 11: a config's relative data root resolved against the working directory and
    was stored relative in the run folder, so `nas train` elsewhere and Ray workers did not find it."""
    from search_spaces.training.config import load_train_config

    folder = tmp_path / "project"
    (folder / "images").mkdir(parents=True)
    config = {"space": {"name": "ofa_mbv3", "config": "mnist"}, "data": {"name": "imagefolder", "root": "images"}}
    (folder / "train.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)  # another directory
    loaded = load_train_config(folder / "train.yaml")
    assert loaded.data.root == str(folder / "images")
    (tmp_path / "old").mkdir()  # an older config whose root exists only from the working directory: kept
    config["data"]["root"] = "old"
    (folder / "train.yaml").write_text(yaml.safe_dump(config))
    assert load_train_config(folder / "train.yaml").data.root == str(tmp_path / "old")


def test_a_checkpoint_named_after_a_published_supernet_with_a_suffix_gets_its_space() -> None:
    """Issue 27, finding 12: ``ofa_resnet50.pth`` was read as ``ofa_mbv3`` (only bare zoo names matched)."""
    from nas.published import published_names, zoo_name

    assert zoo_name("ofa_resnet50.pth") == "ofa_resnet50" and published_names()["ofa_resnet50"][0] == "ofa_resnet50"
    assert zoo_name("ofa_mbv3_d234_e346_k357_w1.0.pth.tar") == "ofa_mbv3_d234_e346_k357_w1.0"
    assert zoo_name("ofa_resnet50") == "ofa_resnet50" and zoo_name("mine.pth") is None


def test_data_with_more_classes_than_the_classifier_is_a_clear_error() -> None:
    """Issue 27, finding 13: a supernet with ``num_classes=3`` evaluated on 10-class data raised a raw
    ``IndexError: Target 5 is out of bounds``; synthetic data now has the space's classes, other data
    that does not fit is an error saying what to change."""
    from nas.core.space import create_space
    from search_spaces.datasets import DatasetError
    from search_spaces.training.config import DataSpec
    from search_spaces.training.evaluation import load_training_data

    space = create_space("ofa_mbv3", config="mnist", num_classes=3)
    assert load_training_data(DataSpec(name="synthetic"), space).num_classes == 3
    with pytest.raises(DatasetError, match=r"digits has 10 classes, the space's classifier 3 outputs"):
        load_training_data(DataSpec(name="digits"), space)


def test_ctrl_c_in_a_search_says_once_how_to_continue(tmp_path: Path) -> None:
    """Issue 27, finding 16: an interrupted search printed two messages (one without the job id)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[2]
    slow = {"kind": "custom", "target": "nas.testing.toy:ToyEvaluator", "options": {"sleep_s": 0.2}}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(toy_job_spec(budget={"evaluations": 500}, parallelism=1, evaluator=slow)))
    db = tmp_path / "nas.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nas.cli", "search", str(path), "--store", f"sqlite:///{db}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(root)},
        # as from a terminal: a suite run in the background (`nohup pytest &`) ignores SIGINT, and a
        # Python started with SIGINT ignored never raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 120
    store: Store | None = None  # opened once the search made the file: opening it again and again
    while time.monotonic() < deadline:  # on a busy machine waited on the writer's lock every time
        if store is None and db.exists():
            store = Store(f"sqlite:///{db}")
        if store is not None and any(store.trials(j.id) for j in store.jobs()):
            break
        time.sleep(0.3)
    assert proc.poll() is None, "the search ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    (job,) = Store(f"sqlite:///{db}").jobs()
    said = [line for line in err.splitlines() if "interrupted" in line]
    assert proc.returncode == 130 and len(said) == 1, err[-2000:]
    assert f"nas resume {job.id} --store sqlite:///{db}" in said[0] and job.state == "interrupted"
