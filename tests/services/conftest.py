"""Fixtures of the service tests: the toy problem as an installed plug-in, and a served app."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nas.admission import service_policy
from nas.store import Store
from services.app import ServiceConfig
from services.testing import ENTRY_POINTS, TOKEN, Served, serve


@pytest.fixture(scope="session")
def toy_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder on ``sys.path`` holding the dist-info of an installed toy plug-in (for subprocesses too)."""
    site = tmp_path_factory.mktemp("site")
    info = site / "hwnas_toy_plugin-0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hwnas-toy-plugin\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    sys.path.insert(0, str(site))
    try:
        yield site
    finally:
        sys.path.remove(str(site))


@pytest.fixture
def served(tmp_path: Path, toy_plugin: Path) -> Iterator[Served]:
    """The service on 127.0.0.1 with a token, one data root, and the toy plug-in installed."""
    data_root = tmp_path / "data"
    data_root.mkdir()
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    config = ServiceConfig(token=TOKEN, policy=service_policy([data_root]))
    url, server, thread = serve(store, config)
    yield Served(url, store, data_root, config)
    server.should_exit = True
    thread.join(timeout=30)
