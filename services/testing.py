"""Helpers for tests of the service (and of plug-ins that extend it): a served app, waits, a browser.

Used by the project's tests and available to plug-in authors as ``services.testing``.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from nas.store import Store
from nas.testing.toy import toy_job_spec
from services.app import ServiceConfig, create_app
from services.server import ConnectionLimits, server_config

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# The toy space and evaluator of tests/nas/toy.py, declared as entry points the way a
# plug-in package declares them; the service reaches them only through that.
ENTRY_POINTS = """\
[hwnas.spaces]
toy = nas.testing.toy:ToySpace

[hwnas.evaluators]
toy = nas.testing.toy:ToyEvaluator

[hwnas.searchers]
plugin-random = nas.searchers.simple:RandomSearcher
"""


def toy_job(**overrides: Any) -> dict[str, Any]:
    """:func:`nas.testing.toy.toy_job_spec` as a request names it: the toy plug-in's registered names
    (:data:`ENTRY_POINTS`), one evaluation at a time, with ``overrides`` applied."""
    spec = toy_job_spec(
        name="toy-http", space={"name": "toy"}, evaluator={"kind": "toy", "options": {"fail_when": 4}},
        searcher={"kind": "evolution", "settings": {"population": 6}}, budget={"evaluations": 18},
    )  # fmt: skip
    del spec["parallelism"]
    spec.update(overrides)
    return spec


def chromium() -> Any:
    """Headless Chromium through Selenium, or a skip where Chromium/chromedriver are missing."""
    import shutil

    import pytest

    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        pytest.skip("no Chromium/chromedriver here (make test installs them: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console messages (CSP reports among them)
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


def serve(
    store: Store, config: ServiceConfig, limits: ConnectionLimits | None = None
) -> tuple[str, uvicorn.Server, threading.Thread]:
    """The app on a free port of 127.0.0.1, served as ``nas serve`` serves it (:func:`server_config`)."""
    port = free_port()
    server = uvicorn.Server(server_config(create_app(store, config), "127.0.0.1", port, limits or ConnectionLimits()))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url)
    return url, server, thread
