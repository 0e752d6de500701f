"""Behind the token: requests that froze, exhausted or fooled the service (issue 24), each sent to a
real server on 127.0.0.1 (or to the piece of the runner it reached), and now refused or contained."""

from __future__ import annotations

import concurrent.futures
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy.engine import make_url

from nas.admission import service_policy
from nas.core.limits import json_depth
from nas.store import JobCancelled, Store
from nas.testing.toy import ToyEvaluator, ToySpace, toy_job_spec
from services.app import ServiceConfig
from services.testing import AUTH, TOKEN, Served, chromium, serve, toy_job, wait_for_state

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20


def _adversarial_bodies() -> dict[str, str]:
    """1 MiB bodies shaped to hit a slow path of a scanner or parser (row 1 and its relatives)."""
    shapes = {
        "escaped quotes after an open quote": '"' + '\\"' * (MiB // 2),
        "backslashes after an open quote": '"' + "\\" * MiB,
        "open brackets": "[" * MiB,
        "bracket pairs": "[]" * (MiB // 2),
        "a flat list": "[" + "0," * (MiB // 2),
        "one long string": '"' + "a" * MiB + '"',
        "many keys": "{" + ",".join(f'"k{i}":1' for i in range(MiB // 10)) + "}",
        "unicode escapes": '"' + "\\u0041" * (MiB // 6) + '"',
        "spaces then an object": " " * MiB + "{}",
        "quotes": '"' * MiB,
        "YAML documents": "---\n" * (MiB // 4),
        "YAML anchors": "\n".join(f"k{i}: &a{i} v" for i in range(MiB // 16)),
    }
    return {name: body[: MiB - 16] for name, body in shapes.items()}


def test_json_depth_is_linear_and_ignores_strings() -> None:
    assert json_depth('{"a": [1, "]]]", {"b": "\\"["}]}') == 3
    assert json_depth('"\\\\"[[') == 2  # an escaped backslash ends the escape: the quote closes the string
    assert json_depth('"[[[') == 0  # an unclosed string runs to the end (json.loads then refuses it)
    assert json_depth("[" * 1000) == 1000


def test_a_1mib_adversarial_body_of_any_shape_is_answered_within_a_second(served: Served) -> None:
    """Row 1: the quadratic string scan held the GIL for minutes; now every shape is answered in
    under a second (the issue's bound) while ``/api/health`` keeps answering."""
    url = served.url
    slowest: dict[str, float] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        for name, body in _adversarial_bodies().items():
            for media in ("application/json", "application/yaml"):
                post = pool.submit(httpx.post, f"{url}/api/jobs", content=body.encode(),
                                   headers={**AUTH, "content-type": media}, timeout=30)  # fmt: skip
                start = time.perf_counter()
                health = httpx.get(f"{url}/api/health", timeout=5)  # answered while the body is parsed
                assert health.status_code == 200
                response = post.result()
                slowest[f"{name} ({media})"] = time.perf_counter() - start
                assert response.status_code in (400, 413, 422), (name, media, response.status_code)
    assert max(slowest.values()) < 1.0, sorted(slowest.items(), key=lambda kv: -kv[1])[:3]
    assert served.store.jobs() == []


def test_errors_never_show_the_database_password(tmp_path: Path, toy_plugin: Path, postgres_url: str) -> None:
    """Row 2: "not found" and cancel errors quoted the store's raw URL, password and all."""
    secret_url = make_url(postgres_url).set(password="hunter2-db").render_as_string(hide_password=False)
    store = Store(secret_url)  # the test server trusts local connections: any password connects
    url, server, thread = serve(store, ServiceConfig(token=TOKEN, policy=service_policy([])))
    try:
        answers = [
            httpx.get(f"{url}/api/jobs/nope", headers=AUTH),
            httpx.post(f"{url}/api/jobs/nope/cancel", json={}, headers=AUTH),
            httpx.delete(f"{url}/api/jobs/nope", headers=AUTH),
            httpx.get(f"{url}/api/jobs/nope/trials", headers=AUTH),
            httpx.get(f"{url}/api/jobs/nope/pareto", headers=AUTH),
            httpx.get(f"{url}/api/info", headers=AUTH),
        ]
        for response in answers:
            assert "hunter2-db" not in response.text, response.text
        assert answers[0].status_code == 404 and "***" in answers[0].json()["detail"]
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert store.url == store.safe_url and "hunter2-db" in store.connection_url


def test_a_cancel_stored_before_the_runner_starts_is_final(tmp_path: Path) -> None:
    """Row 4: a cancel that landed between the worker's check and the runner's start was overwritten
    by ``state=running`` and the job ran on. The service's runner now refuses, in one compare-and-set."""
    from nas.job import job_from_dict
    from nas.runner import run_job

    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    spec = job_from_dict(toy_job_spec())
    job_id = store.create_job(spec.name, spec.to_dict(), ToySpace().space_id, spec.budget.evaluations)
    store.cancel_job(job_id)
    with pytest.raises(JobCancelled, match="cancelled before it started"):
        run_job(None, store, job_id=job_id, progress=False, evaluator=ToyEvaluator(ToySpace()),
                continue_cancelled=False)  # fmt: skip
    assert store.job(job_id).state == "cancelled" and store.trials(job_id) == []
    # `nas resume` (continue_cancelled, the default) still continues a cancelled job on purpose
    result = run_job(None, store, job_id=job_id, progress=False, evaluator=ToyEvaluator(ToySpace()))
    assert result.state == "done" and store.job(job_id).state == "done"


def test_cancel_right_after_submit_stays_cancelled(served: Served) -> None:
    """Row 4 over HTTP: submit, cancel at once, and the job neither runs on nor comes back."""
    for _ in range(5):
        job = toy_job(budget={"evaluations": 5000}, evaluator={"kind": "toy", "options": {"sleep_s": 0.01}})
        job_id = httpx.post(f"{served.url}/api/jobs", json=job, headers=AUTH).json()["job_id"]
        cancelled = httpx.post(f"{served.url}/api/jobs/{job_id}/cancel", json={}, headers=AUTH)
        assert cancelled.status_code == 200, cancelled.text
        final = wait_for_state(served.url, job_id, {"cancelled", "done", "failed"}, seconds=60)
        assert final["state"] == "cancelled"
        time.sleep(0.3)
        counted = len(served.store.trials(job_id))
        time.sleep(1.0)
        assert served.store.job(job_id).state == "cancelled" and len(served.store.trials(job_id)) == counted


def test_spec_check_runs_no_code_a_spec_names(tmp_path: Path) -> None:
    """Row 12: ``nas spec check`` imported and called ``space: {name: "os:system"}``."""
    marker = tmp_path / "ran"
    spec = toy_job_spec(space={"name": "os:system", "options": {"command": f"touch {marker}"}})
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    done = subprocess.run([sys.executable, "-m", "nas.cli", "spec", "check", str(path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "not run: space.name = os:system" in done.stdout
    assert not marker.exists()
    missing = tmp_path / "missing.yaml"
    missing.write_text(yaml.safe_dump(toy_job_spec(space={"name": "no_such_pkg.spaces:make"})))
    refused = subprocess.run([sys.executable, "-m", "nas.cli", "spec", "check", str(missing)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert refused.returncode == 2 and "space.name" in refused.stderr and "not installed" in refused.stderr


def test_searcher_settings_that_size_a_step_are_bounded(served: Served) -> None:
    """Row 5: ``random_candidates: 1e8`` was admitted and kept a core busy for hours."""
    cases = {
        "random_candidates": ({"random_candidates": 1e8}, "random_candidates must be in [0, 100000]"),
        "population": ({"population": 10**7}, "population must be in [2, 10000]"),
        "product": ({"population": 5000, "generations": 5000}, "population x generations = 25,000,000"),
        "type": ({"generations": "many"}, "generations must be an integer"),
    }
    for name, (settings, message) in cases.items():
        job = toy_job(searcher={"kind": "predictor", "settings": settings})
        refused = httpx.post(f"{served.url}/api/jobs", json=job, headers=AUTH)
        assert refused.status_code == 422 and message in refused.json()["detail"], (name, refused.text)
    evolution = toy_job(searcher={"kind": "evolution", "settings": {"population": 10**6}})
    assert httpx.post(f"{served.url}/api/jobs", json=evolution, headers=AUTH).status_code == 422
    schema = httpx.get(f"{served.url}/api/openapi.json", headers=AUTH).json()
    assert "100000" in str(schema["components"]["schemas"]["SearcherSpec"])  # the bounds are documented
    assert served.store.jobs() == []


def test_a_cancel_stops_a_runner_inside_a_long_searcher_step(
    tmp_path: Path, toy_plugin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row 5: the runner only looked for a cancel between trials; a surrogate search of a million
    scores now checks once per generation, so the worker is free for the next job within seconds."""
    monkeypatch.setenv("NAS_LEASE_TTL_S", "3")  # heartbeats every half second
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    url, server, thread = serve(store, ServiceConfig(token=TOKEN, policy=service_policy([])))
    try:
        slow = toy_job(budget={"evaluations": 50}, searcher={"kind": "predictor", "settings": {
            "initial": 4, "exhaustive_below": 0, "population": 1000, "generations": 1000,
            "random_candidates": 0}})  # fmt: skip
        job_id = httpx.post(f"{url}/api/jobs", json=slow, headers=AUTH).json()["job_id"]
        deadline = time.monotonic() + 60
        while len(store.trials(job_id, ["complete", "failed"])) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # inside the first surrogate search now
        assert store.job(job_id).state == "running"
        assert httpx.post(f"{url}/api/jobs/{job_id}/cancel", json={}, headers=AUTH).status_code == 200
        start = time.monotonic()
        quick = httpx.post(f"{url}/api/jobs", json=toy_job(budget={"evaluations": 4}), headers=AUTH).json()
        done = wait_for_state(url, quick["job_id"], {"done", "failed"}, seconds=60)
        assert done["state"] == "done" and time.monotonic() - start < 30
        assert store.job(job_id).state == "cancelled"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_space_options_that_would_exhaust_memory_are_refused(served: Served) -> None:
    """Row 6: 100,000 blocks, four million classes or widths x 1000 were admitted and the server
    grew by gigabytes; each option is bounded, and so is the largest subnet as a whole."""
    accuracy = [{"metric": "accuracy", "direction": "max"}, {"metric": "macs", "direction": "min"}]
    imagenet = {"stage_widths": [4096] * 5, "stage_fixed_depths": [32] * 5, "feature_mix_width": 8192,
                "final_expand_width": 8192}  # fmt: skip
    cases = {
        "depth": ({"stage_fixed_depths": [0, 0, 0, 0, 100000]}, "stage_fixed_depths: at most 32"),
        "classes": ({"num_classes": 4000000}, "num_classes: at most 100000"),
        "widths": ({"stage_widths": [24000, 40000, 80000, 112000, 160000]}, "stage_widths: at most 4096"),
        "whole network": (imagenet, "parameters; this service runs networks of at most 2.5e+08"),
    }
    for name, (options, message) in cases.items():
        job = toy_job(space={"name": "ofa_mbv3", "config": "imagenet", "options": options},
                      evaluator={"kind": "zero_cost", "proxy": "synflow"}, objectives=accuracy,
                      constraints=[], reference=None)  # fmt: skip
        start = time.perf_counter()
        refused = httpx.post(f"{served.url}/api/jobs", json=job, headers=AUTH, timeout=30)
        assert refused.status_code == 422 and message in refused.json()["detail"], (name, refused.text)
        assert time.perf_counter() - start < 5
    assert served.store.jobs() == []


def test_the_page_shows_user_text_as_text_under_a_strict_policy(served: Served) -> None:
    """Row 10 and item 4: a metric named ``<a href=...>click</a>`` became a live link in the plot's
    axis title. Admission now refuses such names; a job already in the store with them (or with
    markup in its name and archs) is still drawn as text, and the page runs under a CSP that
    forbids inline and foreign code and framing, with no policy violation of its own."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from nas.testing.toy import ToySpace

    link = '<a href="https://evil.example/x">click</a>'
    name = '<img src=x onerror="window.pwned=1">'
    spec = toy_job_spec(name=name, objectives=[{"metric": link, "direction": "max"},
                                               {"metric": "lat", "direction": "min"}],
                        constraints=[], reference=None)  # fmt: skip
    store = served.store
    job_id = store.create_job(name, spec, "toy", 4)
    space = ToySpace()
    for i in range(4):
        store.add_trial(job_id, i, space.make({"x": [i, 0, 0, 0, 0, 0]}), worker="test")
        store.finish_trial(job_id, i, {link: i / 4, "lat": 4.0 - i})
    store.update_job(job_id, state="done")

    page = httpx.get(f"{served.url}/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-eval" not in policy
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" in httpx.get(f"{served.url}/api/jobs", headers=AUTH).headers

    browser = chromium()
    try:
        wait = WebDriverWait(browser, 30)
        browser.get(served.url + "/")
        login = wait.until(lambda b: b.find_element(By.ID, "login") if b.find_element(By.ID, "login").is_displayed()
                           else None)  # fmt: skip
        login.find_element(By.NAME, "token").send_keys(TOKEN)
        login.find_element(By.CSS_SELECTOR, "button").click()
        row = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, f'tr[data-job="{job_id}"]'))
        assert name in row.text  # the name, shown as the characters it is
        row.click()
        titles = "return [...document.querySelectorAll('#scatter .xtitle, #scatter .ytitle')].map(t => t.textContent)"
        shown = wait.until(lambda b: b.execute_script(titles) or None)
        assert any(link in t for t in shown), shown
        assert browser.execute_script("return document.querySelectorAll('#scatter a, #jobs a, #jobs img').length") == 0
        assert browser.execute_script("return window.pwned === undefined")
        # an inline script injected now is refused by the policy
        browser.execute_script("const s = document.createElement('script'); s.textContent = 'window.ran = 1';"
                               "document.body.append(s);")  # fmt: skip
        assert browser.execute_script("return window.ran === undefined")
        refused = [m["message"] for m in browser.get_log("browser") if "Content Security Policy" in m["message"]]
        assert len(refused) == 1 and "inline script" in refused[0], refused  # the injected one; none of the page's
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained tiny supernet (seconds), copied into each test's data root."""
    from nas.testing.tiny_train import tiny
    from search_spaces.training.config import load_train_config
    from search_spaces.training.trainer import SupernetTrainer

    folder = tmp_path_factory.mktemp("tiny") / "run"
    SupernetTrainer(load_train_config(tiny()), folder).run()
    return folder


def _supernet_job(checkpoint: str) -> dict:
    from nas.testing.tiny_train import TINY_SPACE

    return toy_job(space=TINY_SPACE, evaluator={"kind": "supernet", "checkpoint": checkpoint, "recal_batches": 1},
                   objectives=[{"metric": "accuracy", "direction": "max"}, {"metric": "macs", "direction": "min"}],
                   constraints=[], reference=None, budget={"evaluations": 2})  # fmt: skip


def _copy_run(tiny_run: Path, where: Path, data: dict | None = None) -> Path:
    import json
    import shutil

    shutil.copytree(tiny_run, where)
    if data is not None:
        meta = json.loads((where / "supernet.json").read_text())
        meta["data"] = {**meta["data"], **data}
        (where / "supernet.json").write_text(json.dumps(meta))
    return where


def test_a_checkpoint_cannot_name_a_command_or_files_outside_the_roots(
    served: Served, tiny_run: Path, tmp_path: Path
) -> None:
    """Rows 7 and 8: a ``supernet.json`` inside the data root named WebDataset shards ``pipe:touch
    marker`` (the command ran when a job used it), or reached outside the root through symlinks or
    its dataset root; each is now refused at admission, naming the entry, never quoting a file."""
    marker = tmp_path / "pwned"
    outside = tmp_path / "outside"
    outside.mkdir()
    root = served.data_root
    cases: dict[str, tuple[str, str]] = {}
    _copy_run(tiny_run, root / "pipe", {"name": "webdataset", "train_shards": f"pipe:touch {marker}",
                                        "val_shards": f"pipe:touch {marker}"})  # fmt: skip
    cases["pipe"] = ("pipe", "checkpoint's data.train_shards: a command (pipe:) or URL is not accepted")
    _copy_run(tiny_run, root / "url", {"name": "webdataset", "train_shards": "https://evil.example/{0..3}.tar"})
    cases["url"] = ("url", "checkpoint's data.train_shards: a command (pipe:) or URL is not accepted")
    _copy_run(tiny_run, root / "dataroot", {"name": "imagefolder-stream", "root": str(outside)})
    cases["dataset root"] = ("dataroot", "checkpoint's data.root")
    _copy_run(tiny_run, root / "download", {"download": True})
    cases["download"] = ("download", "data.download is true")
    # the description itself a symlink to a file outside
    _copy_run(tiny_run, outside / "run")
    (root / "linked").mkdir()
    (root / "linked" / "supernet.json").symlink_to(outside / "run" / "supernet.json")
    cases["description symlink"] = ("linked", "evaluator.checkpoint")
    # the weights a symlink to a file outside
    weights = _copy_run(tiny_run, root / "weights")
    name = next(weights.glob("*.safetensors")).name
    (weights / name).unlink()
    (weights / name).symlink_to(outside / "run" / name)
    cases["weights symlink"] = ("weights", "checkpoint's weights_file")
    for case, (folder, message) in cases.items():
        refused = httpx.post(f"{served.url}/api/jobs", json=_supernet_job(folder), headers=AUTH)
        detail = refused.json()["detail"]
        assert refused.status_code == 422 and message in detail, (case, refused.text)
        assert "outside the data roots" in detail or "not accepted" in detail or "download" in detail, case
    # the same checkpoint, contained, is admitted and runs
    _copy_run(tiny_run, root / "clean")
    admitted = httpx.post(f"{served.url}/api/jobs", json=_supernet_job("clean"), headers=AUTH)
    assert admitted.status_code == 202, admitted.text
    assert wait_for_state(served.url, admitted.json()["job_id"], {"done", "failed"})["state"] == "done"
    assert not marker.exists()


def test_a_checkpoint_changed_after_admission_is_checked_again_when_the_job_runs(
    tiny_run: Path, tmp_path: Path
) -> None:
    """Row 7 at run time: the runner applies the data roots again, so a description swapped for a
    ``pipe:`` one between admission and the run is refused before any shard is opened."""
    from nas.core.config import ConfigError
    from nas.evaluators import build_evaluator
    from nas.testing.tiny_train import TINY_SPACE

    root = tmp_path / "data"
    root.mkdir()
    marker = tmp_path / "pwned"
    run = _copy_run(tiny_run, root / "run")
    policy = service_policy([root])
    spec = {"kind": "supernet", "checkpoint": str(run), "recal_batches": 1}
    from nas.core.space import SpaceRef

    space = SpaceRef(**TINY_SPACE).build()
    build_evaluator(spec, space, allow_code=False, check_path=policy.check_path)  # clean: builds
    _copy_run(tiny_run, root / "swapped", {"name": "webdataset", "train_shards": f"pipe:touch {marker}"})
    with pytest.raises(ConfigError, match="not accepted here"):
        build_evaluator({**spec, "checkpoint": str(root / "swapped")}, space, allow_code=False,
                        check_path=policy.check_path)  # fmt: skip
    assert not marker.exists()


def test_paths_the_system_cannot_resolve_are_a_422_not_a_500(served: Served) -> None:
    """Row 9: a path component over 255 bytes raised ``ENAMETOOLONG`` inside admission (a 500)."""
    for path in ("a" * 300 + "/x.csv", "x/" + "é" * 200 + ".csv", "/" + "b" * 1000):
        objectives = [{"metric": "accuracy", "direction": "max"}]
        job = toy_job(space={"name": "nb201"}, evaluator={"kind": "tabular", "accuracy_csv": path},
                      objectives=objectives, constraints=[], reference=None)  # fmt: skip
        refused = httpx.post(f"{served.url}/api/jobs", json=job, headers=AUTH)
        assert refused.status_code == 422 and "evaluator.accuracy_csv: not a valid path" in refused.json()["detail"]


def _slow_socket(port: int, source: str, text: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    sock.sendall(text)
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0.5)
    try:
        return sock.recv(1024) == b"" or True  # closed (b"") or answered before closing
    except TimeoutError:
        return False
    except OSError:  # reset: closed too
        return True


def test_slowloris_neither_locks_others_out_nor_holds_sockets(served: Served) -> None:
    """Row 3 and item 2: ~200 sockets that send a request line and one header and stop made every
    other client get 503 and were never timed out. Now one address holds at most 20 connections
    (the rest are closed at once), other clients are served throughout, and heads that do not
    finish within the default 10 s are closed. Real sockets; the attacker uses 127.0.0.2."""
    port = int(served.url.rsplit(":", 1)[1])
    head = b"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    attackers = [_slow_socket(port, "127.0.0.2", head) for _ in range(200)]
    try:
        time.sleep(0.5)
        refused = sum(_closed_by_server(s) for s in attackers)
        assert refused >= 180, refused  # beyond the per-client cap: closed as soon as they opened
        for _ in range(10):  # another client meanwhile: answered at once, never a 503
            assert httpx.get(f"{served.url}/api/health", timeout=2).status_code == 200
            assert httpx.get(f"{served.url}/api/jobs", headers=AUTH, timeout=2).status_code == 200
        time.sleep(11)  # the default head timeout (10 s) passes
        assert all(_closed_by_server(s) for s in attackers)
    finally:
        for sock in attackers:
            sock.close()


def test_a_body_trickled_in_is_answered_408(tmp_path: Path, toy_plugin: Path) -> None:
    """Item 2: a complete head announcing a body that never fully arrives ends with 408."""
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    config = ServiceConfig(token=TOKEN, policy=service_policy([]), body_timeout_s=1.5)
    url, server, thread = serve(store, config)
    try:
        port = int(url.rsplit(":", 1)[1])
        head = (f"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{").encode()  # fmt: skip
        sock = _slow_socket(port, "127.0.0.1", head)
        sock.settimeout(10)
        start = time.monotonic()
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - start < 5, answer[:200]
        sock.close()
        assert store.jobs() == []
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_quotas_refuse_clearly(tmp_path: Path, toy_plugin: Path) -> None:
    """Item 3: a server-wide cap on jobs queued or running (429) and on a job's budget (422)."""
    from services.app import Quotas

    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    config = ServiceConfig(token=TOKEN, policy=service_policy([]), quotas=Quotas(max_active_jobs=2, max_evaluations=50))
    url, server, thread = serve(store, config)
    try:
        big = httpx.post(f"{url}/api/jobs", json=toy_job(budget={"evaluations": 51}), headers=AUTH)
        assert big.status_code == 422 and "at most 50 per job" in big.json()["detail"]
        endless = httpx.post(f"{url}/api/jobs", json=toy_job(budget={"evaluations": None, "wall_time_s": 60}),
                             headers=AUTH)  # fmt: skip
        assert endless.status_code == 422 and "budget.evaluations: this service needs one" in endless.text
        slow = toy_job(budget={"evaluations": 50}, evaluator={"kind": "toy", "options": {"sleep_s": 0.2}})
        ids = [httpx.post(f"{url}/api/jobs", json=slow, headers=AUTH).json()["job_id"] for _ in range(2)]
        third = httpx.post(f"{url}/api/jobs", json=slow, headers=AUTH)
        assert third.status_code == 429 and "at most 2" in third.json()["detail"]
        assert third.headers["retry-after"] == "60"
        httpx.post(f"{url}/api/jobs/{ids[0]}/cancel", json={}, headers=AUTH)
        assert httpx.post(f"{url}/api/jobs", json=slow, headers=AUTH).status_code == 202  # room again
    finally:
        for job in store.jobs():
            if job.state in ("created", "running"):
                store.cancel_job(job.id)
        server.should_exit = True
        thread.join(timeout=30)


def test_lists_come_a_page_at_a_time(served: Served) -> None:
    """Item 3: ``/trials`` sent every trial (467 KB for 1,246) and ``/api/jobs`` every job."""
    job_id = httpx.post(f"{served.url}/api/jobs", json=toy_job(), headers=AUTH).json()["job_id"]
    wait_for_state(served.url, job_id, {"done"})
    every = served.store.trials(job_id)
    url = f"{served.url}/api/jobs/{job_id}/trials"
    first = httpx.get(url, params={"limit": 5}, headers=AUTH)
    assert [t["trial_id"] for t in first.json()] == [t.trial_id for t in every[:5]]
    assert first.headers["x-total-count"] == str(len(every)) and first.headers["x-next-offset"] == "5"
    pages, offset = [], 0
    while True:
        page = httpx.get(url, params={"limit": 7, "offset": offset}, headers=AUTH)
        pages += page.json()
        if "x-next-offset" not in page.headers:
            break
        offset = int(page.headers["x-next-offset"])
    assert [t["trial_id"] for t in pages] == [t.trial_id for t in every]
    newest = httpx.get(url, params={"order": "desc", "limit": 3}, headers=AUTH).json()
    assert [t["trial_id"] for t in newest] == [t.trial_id for t in every[::-1][:3]]
    failed = httpx.get(url, params={"contains": "CANNOT evaluate"}, headers=AUTH)
    assert failed.headers["x-total-count"] == str(sum(t.state == "failed" for t in every)) != "0"
    assert failed.headers["x-job-trials"] == str(len(every))
    for bad in ({"limit": 0}, {"limit": 100_000}, {"offset": -1}, {"contains": "x" * 201}, {"order": "up"}):
        assert httpx.get(url, params=bad, headers=AUTH).status_code == 422, bad
    jobs = httpx.get(f"{served.url}/api/jobs", params={"limit": 1}, headers=AUTH)
    assert len(jobs.json()) == 1 and jobs.headers["x-total-count"] == "1"


def test_token_files_are_the_owners_own_plain_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Weaker points: a 0600 symlink to another user's file was accepted, and the owner not checked."""
    import os

    from services.auth import AuthSetupError, read_or_create_token_file

    real = tmp_path / "real.token"
    created = read_or_create_token_file(real)
    assert created.created and read_or_create_token_file(real).token == created.token
    link = tmp_path / "link.token"
    link.symlink_to(real)
    with pytest.raises(AuthSetupError, match="symbolic link"):
        read_or_create_token_file(link)
    monkeypatch.setattr(os, "getuid", lambda: real.stat().st_uid + 1)
    with pytest.raises(AuthSetupError, match="owned by another user"):
        read_or_create_token_file(real)


def test_all_interfaces_serve_this_machines_names_not_any_host() -> None:
    """Weaker point: with ``--host 0.0.0.0`` any ``Host`` header was accepted (DNS rebinding)."""
    import socket

    from services.auth import served_names

    names = served_names("0.0.0.0")
    assert "*" not in names and "attacker.example" not in names
    assert socket.gethostname() in names and "127.0.0.1" in names
    assert served_names("127.0.0.1") == ("localhost", "127.0.0.1", "::1")
    assert served_names("10.1.2.3") == ("10.1.2.3",)


def test_errors_say_what_is_wrong_without_internals(served: Served) -> None:
    """Weaker points: 409s named the runner's host and pid; 400s carried Python exception text."""
    store = served.store
    busy = store.create_job("busy", toy_job(), "toy")
    store.acquire_lease(busy, "secret-host:4242", ttl_s=300)
    refused = httpx.delete(f"{served.url}/api/jobs/{busy}", headers=AUTH)
    assert refused.status_code == 409 and "secret-host" not in refused.text and "4242" not in refused.text
    job_id = httpx.post(f"{served.url}/api/jobs", json=toy_job(budget={"evaluations": 4}), headers=AUTH).json()
    wait_for_state(served.url, job_id["job_id"], {"done"})
    ours = httpx.get(f"{served.url}/api/jobs/{job_id['job_id']}/pareto", params={"latency_metric": "nope"},
                     headers=AUTH)  # fmt: skip
    assert ours.status_code == 400 and "has no metric 'nope'" in ours.json()["detail"]  # our own message stays


def test_nas_jobs_shows_stored_names_without_obeying_them(tmp_path: Path) -> None:
    """Weaker point: ``nas jobs`` printed a stored name's U+009B (the terminal's CSI) raw."""
    db = tmp_path / "nas.db"
    store = Store(f"sqlite:///{db}")
    store.create_job("evil\u009b31m\u202ename", toy_job(), "toy", 3)
    done = subprocess.run([sys.executable, "-m", "nas.cli", "jobs", "--store", f"sqlite:///{db}"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "\u009b" not in done.stdout and "\u202e" not in done.stdout and "evil\\x9b31m\\u202ename" in done.stdout


def test_objectives_must_name_metrics_the_evaluator_offers(served: Served) -> None:
    """Weaker point: admission did not check that objective metrics exist; such a job failed every
    trial and still ended ``done``. Now a typo is a 422 with the metrics on offer and a suggestion."""
    typo = toy_job(space={"name": "nb201"}, evaluator={"kind": "zero_cost", "proxy": "synflow"},
                   objectives=[{"metric": "synflw", "direction": "max"}, {"metric": "params"}],
                   constraints=[{"metric": "latency_ms@pixel4", "max": 5}], reference=None)  # fmt: skip
    refused = httpx.post(f"{served.url}/api/jobs", json=typo, headers=AUTH)
    detail = refused.json()["detail"]
    assert refused.status_code == 422 and "objectives[0].metric: 'synflw' is not a metric" in detail
    assert "synflow, macs, params" in detail and "did you mean 'synflow'" in detail
    typo["objectives"][0]["metric"] = "synflow"
    refused = httpx.post(f"{served.url}/api/jobs", json=typo, headers=AUTH)
    assert refused.status_code == 422 and "constraints[0].metric: 'latency_ms@pixel4'" in refused.json()["detail"]
    assert served.store.jobs() == []


def test_nas_serve_on_a_busy_port_says_so_first(tmp_path: Path) -> None:
    """Issue 27, finding 16: ``nas serve`` printed its URL, then "address already in use"."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "nas.cli", "serve", "--port", str(port), "--store", f"sqlite:///{tmp_path / 'n.db'}",
             "--token", TOKEN], capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 2 and f"--port {port}: cannot listen" in done.stderr and "serving" not in done.stderr
    assert not (tmp_path / "n.db").exists()  # nothing created
