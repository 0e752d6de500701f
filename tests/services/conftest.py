"""Fixtures of the service tests: the toy problem as an installed plug-in, and a served app."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from nas.admission import service_policy
from nas.store import Store
from services.app import ServiceConfig, create_app

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# The toy space and evaluator of tests/nas/toy.py, declared as entry points the way a
# plug-in package declares them; the service reaches them only through that.
ENTRY_POINTS = """\
[hwnas.spaces]
toy = tests.nas.toy:ToySpace

[hwnas.evaluators]
toy = tests.nas.toy:ToyEvaluator

[hwnas.searchers]
plugin-random = nas.searchers.simple:RandomSearcher
"""


def toy_job(**overrides: object) -> dict:
    spec = {
        "name": "toy-http",
        "space": {"name": "toy"},
        "evaluator": {"kind": "toy", "options": {"fail_when": 4}},
        "objectives": [{"metric": "acc", "direction": "max"}, {"metric": "lat", "direction": "min"}],
        "constraints": [{"metric": "lat", "max": 6.0}],
        "searcher": {"kind": "evolution", "settings": {"population": 6}},
        "budget": {"evaluations": 18},
        "reference": {"acc": 0.0, "lat": 10.0},
        "executor": "local",
        "seed": 0,
    }
    spec.update(overrides)
    return spec


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


def chromium() -> Any:
    """Headless Chromium through Selenium, or a skip where Chromium/chromedriver are missing."""
    import shutil

    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        pytest.skip("no Chromium/chromedriver here (make test installs them: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not come up in {seconds} s")


def wait_for_state(url: str, job_id: str, states: set[str], seconds: float = 120.0) -> dict:
    deadline = time.monotonic() + seconds
    job: dict = {}
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/api/jobs/{job_id}", headers=AUTH).json()
        if job["state"] in states:
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} still {job.get('state')} after {seconds} s")


@dataclass
class Served:
    url: str
    store: Store
    data_root: Path
    config: ServiceConfig


def serve(store: Store, config: ServiceConfig) -> tuple[str, uvicorn.Server, threading.Thread]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store, config), host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url)
    return url, server, thread


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
