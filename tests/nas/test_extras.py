"""Optional extras: a feature whose dependency is missing says which extra installs it."""

from __future__ import annotations

import sys

import pytest

from nas.cli import main
from nas.core.extras import MissingExtra, require_extra
from nas.job import job_from_dict
from nas.runner import run_job
from nas.store import Store
from nas.testing import toy_job_spec


def test_missing_module_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if not installed
    with pytest.raises(MissingExtra, match=r"nas serve needs the optional dependency 'fastapi'.*hwnas\[serve\]"):
        require_extra("serve", "nas serve")


def test_ray_executor_without_ray_fails_with_the_extra_and_no_traceback(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    with pytest.raises(MissingExtra, match=r"executor: ray needs .*pip install 'hwnas\[ray\]'"):
        run_job(job_from_dict(toy_job_spec(executor="ray")), store, progress=False)


def test_cli_reports_a_missing_extra_in_one_line(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    code = main(["serve", "--no-auth", "--store", f"sqlite:///{tmp_path / 'nas.db'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "pip install 'hwnas[serve]'" in err
