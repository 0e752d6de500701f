"""The HTTP service on a real uvicorn server on 127.0.0.1: submit a job, watch it run, query its front."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from nas.job import job_from_dict
from nas.queries import front_query
from nas.store import Store
from services.testing import AUTH, TOKEN, chromium, free_port, toy_job, wait_for_state, wait_until_up

ROOT = Path(__file__).resolve().parents[2]
TOY_JOB = toy_job()


def test_submitted_job_runs_and_its_front_is_served(served) -> None:
    url, store = served.url, served.store
    response = httpx.post(f"{url}/api/jobs", json=TOY_JOB, headers=AUTH)
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    job = wait_for_state(url, job_id, {"done", "failed"})
    assert job["state"] == "done" and job["done"] == 18 and job["failed"] > 0 and job["spec"]["name"] == "toy-http"
    assert [j["job_id"] for j in httpx.get(f"{url}/api/jobs", headers=AUTH).json()] == [job_id]

    trials = httpx.get(f"{url}/api/jobs/{job_id}/trials", headers=AUTH).json()
    failed = httpx.get(f"{url}/api/jobs/{job_id}/trials", params={"state": "failed"}, headers=AUTH).json()
    assert len(trials) == 18 and failed and all("cannot evaluate arch with x0=4" in t["error"] for t in failed)

    front = httpx.get(f"{url}/api/jobs/{job_id}/pareto", headers=AUTH).json()
    assert front == front_query(store, job_id) and front["front"] and front["evaluated"] == 18 - len(failed)
    assert all(t["metrics"]["lat"] <= 6.0 for t in front["front"])
    bound = sorted(t["metrics"]["lat"] for t in front["front"])[len(front["front"]) // 2]
    no_metric = httpx.get(f"{url}/api/jobs/{job_id}/pareto", params={"max_latency": bound}, headers=AUTH)
    assert no_metric.status_code == 400 and "no latency objective" in no_metric.json()["detail"]
    bounds = {"max_latency": bound, "latency_metric": "lat"}
    narrowed = httpx.get(f"{url}/api/jobs/{job_id}/pareto", params=bounds, headers=AUTH).json()
    assert narrowed["front"] and all(t["metrics"]["lat"] <= bound for t in narrowed["front"])
    assert len(narrowed["front"]) < len(front["front"]) or bound == max(t["metrics"]["lat"] for t in front["front"])
    plot = httpx.get(f"{url}/api/jobs/{job_id}/pareto.png", params=bounds, headers=AUTH)
    assert plot.headers["content-type"] == "image/png" and plot.content[:8] == b"\x89PNG\r\n\x1a\n"

    history = httpx.get(f"{url}/api/jobs/{job_id}/history", headers=AUTH).json()
    assert history["evaluations"] == [f.evaluations for f in store.fronts(job_id)]
    assert history["hypervolume"] == [f.hypervolume for f in store.fronts(job_id)] and history["evaluations"]

    # a trial landing from elsewhere (another process's store) shows in the cached front within a moment
    from nas.testing.toy import ToySpace

    other = Store(store.connection_url)
    done_archs = {t.arch_id for t in store.trials(job_id)}
    arch = next(a for a in ToySpace().sample_unique(60, np.random.default_rng(9)) if a.arch_id not in done_archs)
    other.add_trial(job_id, 1000, arch)
    other.finish_trial(job_id, 1000, {"acc": 2.0, "lat": 0.5})  # dominates everything
    other.close()
    deadline = time.monotonic() + 5
    while True:
        latest = httpx.get(f"{url}/api/jobs/{job_id}/pareto", headers=AUTH).json()
        if latest["evaluated"] == front["evaluated"] + 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert latest["evaluated"] == front["evaluated"] + 1 and 1000 in [t["trial_id"] for t in latest["front"]]


def test_bad_requests_get_clear_errors(served) -> None:
    url = served.url
    bad = httpx.post(f"{url}/api/jobs", json={**TOY_JOB, "searcher": {"kind": "bayes"}}, headers=AUTH)
    assert bad.status_code == 422 and "searcher.kind: unknown searcher 'bayes'" in bad.json()["detail"]
    broken = httpx.post(f"{url}/api/jobs", content=b"{not json", headers={"content-type": "application/json", **AUTH})
    assert broken.status_code == 400 and "invalid JSON at line 1, column 2" in broken.json()["detail"]
    missing = httpx.get(f"{url}/api/jobs/nope/pareto", headers=AUTH)
    assert missing.status_code == 404 and "job 'nope' not found" in missing.json()["detail"]
    settings = httpx.post(f"{url}/api/jobs", json={**TOY_JOB, "searcher": {"kind": "evolution",
                          "settings": {"populaton": 6}}}, headers=AUTH)  # fmt: skip
    assert settings.status_code == 422 and "unknown settings ['populaton']" in settings.json()["detail"]
    options = httpx.post(f"{url}/api/jobs", json={**TOY_JOB, "evaluator": {"kind": "toy", "options": {"x": 1}}},
                         headers=AUTH)  # fmt: skip
    assert options.status_code == 422 and "evaluator.options: x not accepted" in options.json()["detail"]
    assert served.store.jobs() == []  # an invalid spec leaves no job row
    # YAML as `nas search` reads it is accepted too
    as_yaml = httpx.post(
        f"{url}/api/jobs", content=yaml.safe_dump({**TOY_JOB, "budget": {"evaluations": 4}}),
        headers={"content-type": "application/yaml", **AUTH},
    )  # fmt: skip
    assert as_yaml.status_code == 202
    assert wait_for_state(url, as_yaml.json()["job_id"], {"done", "failed"})["state"] == "done"


def test_plugins_installed_as_entry_points_are_what_a_request_can_name(served) -> None:
    from nas.core.registry import plugin_names
    from nas.core.space import list_spaces

    assert "toy" in list_spaces() and plugin_names("searcher") == ["plugin-random"]
    spec = {**TOY_JOB, "searcher": {"kind": "plugin-random"}, "budget": {"evaluations": 5}}
    response = httpx.post(f"{served.url}/api/jobs", json=spec, headers=AUTH)
    assert response.status_code == 202, response.text
    job = wait_for_state(served.url, response.json()["job_id"], {"done", "failed"})
    assert job["state"] == "done" and job["searcher"] == "plugin-random" and job["done"] == 5
    unknown = httpx.post(f"{served.url}/api/jobs", json={**TOY_JOB, "space": {"name": "toy2"}}, headers=AUTH)
    assert (
        unknown.status_code == 422
        and "unknown space 'toy2'; known spaces: ofa_mbv3, ofa_resnet50, vit, nb201, toy" in unknown.text
    )


def test_web_page_uses_the_api(served) -> None:
    url = served.url
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/page.js">' in page.text and "<script>" not in page.text  # no inline code
    script = httpx.get(f"{url}/static/page.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    for endpoint in ("/api/jobs", "/api/info", "/pareto?", "/points?", "/history", "/cancel", "Authorization",
                     "sessionStorage"):  # fmt: skip
        assert endpoint in script.text
    # nothing is loaded from another site: Plotly.js comes from this service (the plotly package)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)
    plotly = httpx.get(f"{url}/static/plotly.min.js")
    assert plotly.status_code == 200 and plotly.headers["content-type"].startswith("text/javascript")
    assert len(plotly.content) > 1_000_000 and b"plotly" in plotly.content[:2000].lower()
    # every element the script looks up exists on the page
    ids = set(re.findall(r'id="([^"]+)"', page.text))
    used = set(re.findall(r'getElementById\("([^"]+)"\)', script.text))
    used |= {m.split()[0] for m in re.findall(r'querySelector(?:All)?\("#([^"]+)"\)', script.text)}
    assert used and used <= ids


def test_nas_serve_command_serves_the_store(tmp_path: Path, toy_plugin: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'nas.db'}"
    store = Store(store_url)
    spec = job_from_dict({**TOY_JOB, "name": "queued"})
    store.create_job("queued", spec.to_dict(), spec.space.build().space_id, 18)  # left "created": gets run
    broken = store.create_job("broken", spec.to_dict(), "other-space", 18)  # cannot start: recorded as failed
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(toy_plugin), str(ROOT)])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nas.cli", "serve", "--port", str(port), "--store", store_url, "--token", TOKEN],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url)
        assert httpx.get(f"{url}/api/jobs").status_code == 401
        jobs = {j["name"]: j for j in httpx.get(f"{url}/api/jobs", headers=AUTH).json()}
        assert set(jobs) == {"queued", "broken"}
        job = jobs["queued"]
        assert wait_for_state(url, job["job_id"], {"done", "failed"})["state"] == "done"
        failed = wait_for_state(url, broken, {"done", "failed"})
        assert failed["state"] == "failed" and "searched space other-space" in failed["error"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "access token: from --token" in err and "data roots: none" in err


ARTIFACTS = Path(os.environ.get("HWNAS_TEST_ARTIFACTS", ROOT / "test-artifacts"))


def b_find(browser: Any, element_id: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.ID, element_id)


def open_job_signed_in(browser: Any, wait: Any, url: str, job_id: str) -> None:
    """Loads the page, signs in with the test token and opens job ``job_id``."""
    from selenium.webdriver.common.by import By

    browser.get(url + "/")
    login = wait.until(lambda b: b.find_element(By.ID, "login") if b.find_element(By.ID, "login").is_displayed()
                       else None)  # fmt: skip
    login.find_element(By.NAME, "token").send_keys(TOKEN)
    login.find_element(By.CSS_SELECTOR, "button").click()
    wait.until(lambda b: b.find_element(By.CSS_SELECTOR, f'tr[data-job="{job_id}"]')).click()


def test_the_page_offers_the_export_command_for_a_supernet_job(served) -> None:
    """A job evaluated by a supernet (its record in the store: the page reads only the store) gets
    the `nas export` command for a front member, pasteable as written."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from nas.cli import build_parser
    from nas.testing.toy import ToySpace

    spec = {**TOY_JOB, "evaluator": {"kind": "supernet", "checkpoint": "/runs/x"},
            "objectives": [{"metric": "acc", "direction": "max"}, {"metric": "latency_ms@cpu", "direction": "min"}],
            "constraints": [], "reference": None}  # fmt: skip
    store = served.store
    job_id = store.create_job("supernet-job", spec, "toy", 3)
    for i in range(3):
        store.add_trial(job_id, i, ToySpace().make({"x": [i, 0, 0, 0, 0, 0]}), worker="test")
        store.finish_trial(job_id, i, {"acc": 0.5 + 0.1 * i, "latency_ms@cpu": 1.0 + i})
    store.update_job(job_id, state="done")
    browser = chromium()
    try:
        wait = WebDriverWait(browser, 30)
        open_job_signed_in(browser, wait, served.url, job_id)
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#front tbody tr button.export"))[0].click()
        command = wait.until(lambda b: b.find_element(By.ID, "export-command").text)
        assert command.startswith(f"nas export {job_id} --trial ") and "--device cpu" in command
        build_parser().parse_args(command.split()[1:])  # pasteable as written
    finally:
        browser.quit()


def test_web_page_in_a_real_browser(served) -> None:
    """The page in headless Chromium: sign-in, the interactive front (hover, bounds), hypervolume
    history, trial table filters, export of a front member, errors that stay until dismissed,
    cancel and delete. Screenshots go to test-artifacts/ (or $HWNAS_TEST_ARTIFACTS)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url, store = served.url, served.store
    job_id = httpx.post(f"{url}/api/jobs", json=TOY_JOB, headers=AUTH).json()["job_id"]
    wait_for_state(url, job_id, {"done"})
    browser = chromium()
    browser.set_window_size(1400, 1800)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # the page redraws its tables every 3 s: look elements up again rather than keep them
    wait = WebDriverWait(browser, 30, ignored_exceptions=[StaleElementReferenceException])
    by_id = lambda name: browser.find_element(By.ID, name)  # noqa: E731

    def row_text(job: str) -> str:
        return browser.find_element(By.CSS_SELECTOR, f'tr[data-job="{job}"]').text

    try:
        browser.get(url + "/")
        # no token yet: the page asks for it and shows nothing else
        login = wait.until(lambda b: by_id("login") if by_id("login").is_displayed() else None)
        assert not browser.find_elements(By.CSS_SELECTOR, "tr[data-job]")
        login.find_element(By.NAME, "token").send_keys("wrong-token-0123456789")
        login.find_element(By.CSS_SELECTOR, "button").click()
        wait.until(lambda b: by_id("login").is_displayed())
        assert wait.until(lambda b: "refused that token" in by_id("login-error").text)  # a wrong token says so
        assert not browser.find_elements(By.CSS_SELECTOR, "tr[data-job]")
        login.find_element(By.NAME, "token").send_keys(TOKEN)
        login.find_element(By.CSS_SELECTOR, "button").click()
        assert wait.until(lambda b: "done" in row_text(job_id) and "18/18" in row_text(job_id))
        assert not by_id("login").is_displayed()
        assert wait.until(lambda b: "store: sqlite" in by_id("store").text)

        # the front: table, interactive scatter (three traces, every evaluated arch), hypervolume history
        wait.until(lambda b: b.find_element(By.CSS_SELECTOR, f'tr[data-job="{job_id}"]').click() or True)
        expected = front_query(store, job_id)
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#front tbody tr")) == len(expected["front"]))
        assert f"{len(expected['front'])} Pareto-optimal of" in by_id("front-summary").text
        assert "measured from the reference" in by_id("front-summary").text  # the page says what it is
        traces = "return (document.getElementById('scatter').data || []).map(t => t.x.length)"
        counts = wait.until(lambda b: b.execute_script(traces) or None)
        assert sum(counts) == expected["evaluated"] and counts[2] == len(expected["front"])
        history = "return (document.getElementById('hv').data || [{x: []}])[0].x"
        assert wait.until(lambda b: b.execute_script(history)) == [f.evaluations for f in store.fronts(job_id)]
        hover = "Plotly.Fx.hover('scatter', [{curveNumber: 2, pointNumber: 0}]); " \
                "return (document.querySelector('#scatter .hovertext') || {}).textContent || ''"  # fmt: skip
        first = min(expected["front"], key=lambda t: t["metrics"]["lat"])
        text = wait.until(lambda b: b.execute_script(hover) or None)
        assert f"trial {first['trial_id']}" in text and "acc = " in text and "lat = " in text
        browser.save_screenshot(str(ARTIFACTS / "page_front.png"))

        # bounds on any metric: at most a latency narrows the front and draws its line
        bound = sorted(t["metrics"]["lat"] for t in expected["front"])[len(expected["front"]) // 2]
        Select(browser.find_element(By.NAME, "latency_metric")).select_by_visible_text("lat")
        browser.find_element(By.NAME, "max_latency").send_keys(str(bound))
        browser.find_element(By.CSS_SELECTOR, "#bounds button").click()
        narrowed = front_query(store, job_id, max_latency=bound, latency="lat")
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#front tbody tr")) == len(narrowed["front"]))
        shapes = "return ((document.getElementById('scatter').layout || {}).shapes || []).map(s => s.x0)"
        assert wait.until(lambda b: bound in b.execute_script(shapes))

        # export of a front member: its record as a file; this toy job has no weights, so no command
        # (a command that would fail: issue 27, finding 9), and the page says why
        browser.find_element(By.CSS_SELECTOR, "#front tbody tr button.export").click()
        why = wait.until(lambda b: by_id("export-unavailable").text)
        assert "evaluator (toy) has no weights to export" in why and not b_find(browser, "export-command")

        # the trial table and its filters
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#trials tbody tr")) == 18)
        Select(by_id("trial-state")).select_by_visible_text("failed")
        failed = [t for t in store.trials(job_id) if t.state == "failed"]
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#trials tbody tr")) == len(failed))
        assert all("failed" in r.text for r in browser.find_elements(By.CSS_SELECTOR, "#trials tbody tr"))
        Select(by_id("trial-state")).select_by_visible_text("all")
        by_id("trial-filter").send_keys("cannot evaluate")
        wait.until(lambda b: by_id("trials-summary").text.startswith(f"{len(failed)} of 18"))
        browser.save_screenshot(str(ARTIFACTS / "page_bounds_export_trials.png"))

        # a refused spec: its error stays (past several refreshes) until dismissed
        spec = browser.find_element(By.NAME, "spec")
        spec.send_keys(yaml.safe_dump({**TOY_JOB, "searcher": {"kind": "bayes"}}))
        browser.find_element(By.CSS_SELECTOR, "#submit button").click()
        wait.until(lambda b: "unknown searcher 'bayes'" in by_id("submit-error").text)
        time.sleep(4)  # longer than the page's 3-second refresh, which must leave the message alone
        assert "unknown searcher 'bayes'" in by_id("submit-error").text
        browser.save_screenshot(str(ARTIFACTS / "page_submit_error.png"))
        browser.find_element(By.CSS_SELECTOR, 'button.dismiss[data-for="submit-error"]').click()
        assert by_id("submit-error").text == ""
        spec.clear()
        spec.send_keys(yaml.safe_dump({**TOY_JOB, "name": "from-the-page", "budget": {"evaluations": 4}}))
        browser.find_element(By.CSS_SELECTOR, "#submit button").click()
        wait.until(lambda b: len(httpx.get(f"{url}/api/jobs", headers=AUTH).json()) == 2)
        listed = httpx.get(f"{url}/api/jobs", headers=AUTH).json()
        new = next(j["job_id"] for j in listed if j["name"] == "from-the-page")
        assert wait.until(lambda b: "done" in row_text(new) and "from-the-page" in row_text(new))

        # cancel a queued job, then delete it (the delete button asks twice)
        queued = store.create_job("queued", TOY_JOB, "toy")  # stored, not handed to the worker
        wait.until(lambda b: b.find_element(By.CSS_SELECTOR, f'tr[data-job="{queued}"]').click() or True)
        wait.until(lambda b: by_id("detail-id").text == queued and by_id("cancel-job").is_enabled())
        by_id("cancel-job").click()
        assert wait.until(lambda b: "cancelled" in row_text(queued))
        assert store.job(queued).state == "cancelled"
        by_id("delete-job").click()
        assert "confirm" in by_id("delete-job").text and store.jobs()[-1].id == queued
        by_id("delete-job").click()
        wait.until(lambda b: not b.find_elements(By.CSS_SELECTOR, f'tr[data-job="{queued}"]'))
        assert queued not in [j.id for j in store.jobs()]
        assert by_id("error").text == ""
        browser.save_screenshot(str(ARTIFACTS / "page_after_delete.png"))
    finally:
        browser.quit()


def test_delete_removes_a_finished_job_and_refuses_a_running_one(served) -> None:
    url, store = served.url, served.store
    job_id = httpx.post(f"{url}/api/jobs", json=TOY_JOB, headers=AUTH).json()["job_id"]
    wait_for_state(url, job_id, {"done", "failed"})
    assert httpx.delete(f"{url}/api/jobs/{job_id}").status_code == 401  # credentials first
    evil = httpx.delete(f"{url}/api/jobs/{job_id}", headers={**AUTH, "Origin": "https://evil.example"})
    assert evil.status_code == 403 and store.job(job_id)
    # a job another runner holds (live lease) is not deleted under it
    busy = store.create_job("busy", TOY_JOB, "toy")
    store.acquire_lease(busy, "someone-else", ttl_s=300)
    refused = httpx.delete(f"{url}/api/jobs/{busy}", headers=AUTH)
    assert refused.status_code == 409 and "being run by another runner" in refused.json()["detail"]
    assert "stop it first (`nas cancel" in refused.json()["detail"]  # says how
    assert "someone-else" not in refused.text  # never a runner's host and process id
    done = httpx.delete(f"{url}/api/jobs/{job_id}", headers=AUTH)
    assert done.status_code == 200 and done.json() == {"job_id": job_id, "deleted": True}
    assert httpx.get(f"{url}/api/jobs/{job_id}", headers=AUTH).status_code == 404
    assert httpx.get(f"{url}/api/jobs/{job_id}/trials", headers=AUTH).status_code == 404
    assert store.trials(job_id) == [] and store.fronts(job_id) == []
    assert [j["job_id"] for j in httpx.get(f"{url}/api/jobs", headers=AUTH).json()] == [busy]
    assert httpx.delete(f"{url}/api/jobs/{job_id}", headers=AUTH).status_code == 404


def test_cancel_over_http(served) -> None:
    url, store = served.url, served.store
    queued = store.create_job("queued", TOY_JOB, "toy")  # stored, not handed to the worker
    assert httpx.post(f"{url}/api/jobs/{queued}/cancel", json={}).status_code == 401
    assert httpx.post(f"{url}/api/jobs/{queued}/cancel", headers=AUTH).status_code == 415  # JSON or YAML only
    answer = httpx.post(f"{url}/api/jobs/{queued}/cancel", json={}, headers=AUTH)
    assert answer.status_code == 200 and answer.json() == {"job_id": queued, "state": "cancelled", "was": "created"}
    assert httpx.get(f"{url}/api/jobs/{queued}", headers=AUTH).json()["state"] == "cancelled"
    again = httpx.post(f"{url}/api/jobs/{queued}/cancel", json={}, headers=AUTH)
    assert again.status_code == 409 and "nothing to cancel" in again.json()["detail"]
    assert httpx.post(f"{url}/api/jobs/nope/cancel", json={}, headers=AUTH).status_code == 404


def test_api_reference_page_shows_the_job_spec(served) -> None:
    """/docs in headless Chromium: after the token, every route, and POST /api/jobs's body with the spec's keys."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = chromium()
    wait = WebDriverWait(browser, 30)
    try:
        browser.get(served.url + "/docs")
        login = wait.until(lambda b: b.find_element(By.ID, "login") if b.find_element(By.ID, "login").is_displayed()
                           else None)  # fmt: skip
        login.find_element(By.NAME, "token").send_keys(TOKEN)
        login.find_element(By.CSS_SELECTOR, "button").click()
        post = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, 'section[data-route="POST /api/jobs"]'))
        text = post.text
        for key in ("objectives", "evaluator", "searcher", "budget", "evaluations", "accuracy_csv", "evolution"):
            assert key in text, key
        routes = {e.get_attribute("data-route") for e in browser.find_elements(By.CSS_SELECTOR, "section")}
        assert {
            "GET /api/jobs/{job_id}/pareto",
            "POST /api/jobs/{job_id}/cancel",
            "DELETE /api/jobs/{job_id}",
        } <= routes
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "api_reference.png"))
    finally:
        browser.quit()


def test_nb201_archs_read_as_the_cli_writes_them(served) -> None:
    """Issue 27, finding 15: the page showed NB201 archs as ``{"ops": [...]}`` while the CLI and the
    hover use ``|op~0|+...``, and filtering trials by the CLI's notation found nothing."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    from search_spaces.nb201.space import NB201Space

    space = NB201Space()
    spec = {**TOY_JOB, "space": {"name": "nb201"}, "evaluator": {"kind": "tabular", "path": "/x.csv"},
            "objectives": [{"metric": "acc", "direction": "max"}, {"metric": "lat", "direction": "min"}],
            "constraints": [], "reference": None}  # fmt: skip
    store = served.store
    job_id = store.create_job("nb201-job", spec, space.space_id, 4)
    archs = space.sample_unique(4, np.random.default_rng(0))
    for i, arch in enumerate(archs):
        store.add_trial(job_id, i, arch, worker="test")
        store.finish_trial(job_id, i, {"acc": 0.5 + 0.1 * i, "lat": 1.0 + i})
    store.update_job(job_id, state="done")
    written = [space.to_string(a) for a in archs]
    rows = httpx.get(f"{served.url}/api/jobs/{job_id}/trials", headers=AUTH).json()
    assert [r["arch_text"] for r in rows] == written and all(r["arch"] for r in rows)
    front = httpx.get(f"{served.url}/api/jobs/{job_id}/pareto", headers=AUTH).json()["front"]
    assert {r["arch_text"] for r in front} == set(written)
    needle = written[2].split("+")[0]  # the first node's input, as the CLI prints it
    found = httpx.get(f"{served.url}/api/jobs/{job_id}/trials", params={"contains": needle}, headers=AUTH).json()
    assert found and all(needle in r["arch_text"] for r in found) and 2 in [r["trial_id"] for r in found]
    browser = chromium()
    try:
        wait = WebDriverWait(browser, 30, ignored_exceptions=[StaleElementReferenceException])
        open_job_signed_in(browser, wait, served.url, job_id)
        shown = "return [...document.querySelectorAll('#trials tbody code')].map(c => c.textContent)"
        assert sorted(wait.until(lambda b: b.execute_script(shown) or None)) == sorted(written)
        front_shown = "return [...document.querySelectorAll('#front tbody code')].map(c => c.textContent)"
        assert sorted(wait.until(lambda b: b.execute_script(front_shown) or None)) == sorted(written)
    finally:
        browser.quit()
