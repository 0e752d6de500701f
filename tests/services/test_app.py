"""The HTTP service on a real uvicorn server on 127.0.0.1: submit a job, watch it run, query its front."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml

from nas.job import job_from_dict
from nas.queries import front_query
from nas.store import Store
from services.app import create_app

ROOT = Path(__file__).resolve().parents[2]
TOY_JOB = {
    "name": "toy-http",
    "space": {"name": "tests.nas.toy:ToySpace"},
    "evaluator": {"kind": "custom", "target": "tests.nas.toy:ToyEvaluator", "options": {"fail_when": 4}},
    "objectives": [{"metric": "acc", "direction": "max"}, {"metric": "lat", "direction": "min"}],
    "constraints": [{"metric": "lat", "max": 6.0}],
    "searcher": {"kind": "evolution", "settings": {"population": 6}},
    "budget": {"evaluations": 18},
    "reference": {"acc": 0.0, "lat": 10.0},
    "executor": "local",
    "seed": 0,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not come up in {seconds} s")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    _wait_until_up(url)
    yield url, store
    server.should_exit = True
    thread.join(timeout=30)


def _wait_for_state(url: str, job_id: str, states: set[str], seconds: float = 120.0) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/api/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} still {job['state']} after {seconds} s")


def test_submitted_job_runs_and_its_front_is_served(served) -> None:
    url, store = served
    response = httpx.post(f"{url}/api/jobs", json=TOY_JOB)
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    job = _wait_for_state(url, job_id, {"done", "failed"})
    assert job["state"] == "done" and job["done"] == 18 and job["failed"] > 0 and job["spec"]["name"] == "toy-http"
    assert [j["job_id"] for j in httpx.get(f"{url}/api/jobs").json()] == [job_id]

    trials = httpx.get(f"{url}/api/jobs/{job_id}/trials").json()
    failed = httpx.get(f"{url}/api/jobs/{job_id}/trials", params={"state": "failed"}).json()
    assert len(trials) == 18 and failed and all("cannot evaluate arch with x0=4" in t["error"] for t in failed)

    front = httpx.get(f"{url}/api/jobs/{job_id}/pareto").json()
    assert front == front_query(store, job_id) and front["front"] and front["evaluated"] == 18 - len(failed)
    assert all(t["metrics"]["lat"] <= 6.0 for t in front["front"])
    bound = sorted(t["metrics"]["lat"] for t in front["front"])[len(front["front"]) // 2]
    no_metric = httpx.get(f"{url}/api/jobs/{job_id}/pareto", params={"max_latency": bound})
    assert no_metric.status_code == 400 and "no latency objective" in no_metric.json()["detail"]
    bounds = {"max_latency": bound, "latency_metric": "lat"}
    narrowed = httpx.get(f"{url}/api/jobs/{job_id}/pareto", params=bounds).json()
    assert narrowed["front"] and all(t["metrics"]["lat"] <= bound for t in narrowed["front"])
    assert len(narrowed["front"]) < len(front["front"]) or bound == max(t["metrics"]["lat"] for t in front["front"])
    plot = httpx.get(f"{url}/api/jobs/{job_id}/pareto.png", params=bounds)
    assert plot.headers["content-type"] == "image/png" and plot.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_requests_get_clear_errors(served) -> None:
    url, _ = served
    bad = httpx.post(f"{url}/api/jobs", json={**TOY_JOB, "searcher": {"kind": "bayes"}})
    assert bad.status_code == 422 and "searcher.kind: unknown searcher 'bayes'" in bad.json()["detail"]
    broken = httpx.post(f"{url}/api/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["detail"]
    missing = httpx.get(f"{url}/api/jobs/nope/pareto")
    assert missing.status_code == 404 and "job 'nope' not found" in missing.json()["detail"]
    # YAML as `nas search` reads it is accepted too
    as_yaml = httpx.post(
        f"{url}/api/jobs", content=yaml.safe_dump({**TOY_JOB, "budget": {"evaluations": 4}}),
        headers={"content-type": "application/yaml"},
    )  # fmt: skip
    assert as_yaml.status_code == 202
    assert _wait_for_state(url, as_yaml.json()["job_id"], {"done", "failed"})["state"] == "done"


def test_web_page_uses_the_api(served) -> None:
    url, _ = served
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for endpoint in ("/api/jobs", "/api/health", "/pareto?", "/pareto.png?"):
        assert endpoint in page.text
    # every element the script looks up exists on the page
    import re

    ids = set(re.findall(r'id="([^"]+)"', page.text))
    used = set(re.findall(r'getElementById\("([^"]+)"\)', page.text))
    used |= {m.split()[0] for m in re.findall(r'querySelector(?:All)?\("#([^"]+)"\)', page.text)}
    assert used and used <= ids


def test_nas_serve_command_serves_the_store(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'nas.db'}"
    store = Store(store_url)
    spec = job_from_dict({**TOY_JOB, "name": "queued"})
    store.create_job("queued", spec.to_dict(), spec.space.build().space_id, 18)  # left "created": gets run
    broken = store.create_job("broken", spec.to_dict(), "other-space", 18)  # cannot start: recorded as failed
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nas.cli", "serve", "--port", str(port), "--store", store_url],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(url)
        jobs = {j["name"]: j for j in httpx.get(f"{url}/api/jobs").json()}
        assert set(jobs) == {"queued", "broken"}
        job = jobs["queued"]
        assert _wait_for_state(url, job["job_id"], {"done", "failed"})["state"] == "done"
        failed = _wait_for_state(url, broken, {"done", "failed"})
        assert failed["state"] == "failed" and "searched space other-space" in failed["error"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _browser() -> object:
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no Chromium/chromedriver here (make test installs them: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_web_page_in_a_real_browser(served) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, store = served
    job_id = httpx.post(f"{url}/api/jobs", json=TOY_JOB).json()["job_id"]
    _wait_for_state(url, job_id, {"done"})
    browser = _browser()
    # the page redraws its tables every 3 s: look elements up again rather than keep them
    wait = WebDriverWait(browser, 30, ignored_exceptions=[StaleElementReferenceException])

    def row_text(job: str) -> str:
        return browser.find_element(By.CSS_SELECTOR, f'tr[data-job="{job}"]').text

    try:
        browser.get(url + "/")
        assert wait.until(lambda b: "done" in row_text(job_id) and "18/18" in row_text(job_id))
        assert wait.until(lambda b: "store: sqlite" in b.find_element(By.ID, "store").text)
        wait.until(lambda b: b.find_element(By.CSS_SELECTOR, f'tr[data-job="{job_id}"]').click() or True)
        expected = len(front_query(store, job_id)["front"])
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#front tbody tr")) == expected)
        assert f"{expected} Pareto-optimal of" in browser.find_element(By.ID, "front-summary").text
        loaded = "const i = document.getElementById('plot'); return i.complete && i.naturalWidth > 0"
        wait.until(lambda b: b.execute_script(loaded))

        spec = browser.find_element(By.NAME, "spec")
        spec.send_keys(yaml.safe_dump({**TOY_JOB, "searcher": {"kind": "bayes"}}))
        browser.find_element(By.CSS_SELECTOR, "#submit button").click()
        wait.until(lambda b: "unknown searcher 'bayes'" in b.find_element(By.ID, "error").text)
        spec.clear()
        spec.send_keys(yaml.safe_dump({**TOY_JOB, "name": "from-the-page", "budget": {"evaluations": 4}}))
        browser.find_element(By.CSS_SELECTOR, "#submit button").click()
        wait.until(lambda b: len(httpx.get(f"{url}/api/jobs").json()) == 2)
        new = next(j["job_id"] for j in httpx.get(f"{url}/api/jobs").json() if j["name"] == "from-the-page")
        assert wait.until(lambda b: "done" in row_text(new) and "from-the-page" in row_text(new))
        assert browser.find_element(By.ID, "error").text == ""
    finally:
        browser.quit()
