"""HTTP API and web page over the job store (FastAPI), with a background worker running submitted jobs.

Endpoints (JSON unless noted):

- ``GET /api/health`` — the store the service reads;
- ``GET /api/jobs`` — every job's state, progress, best values and hypervolume (as ``nas jobs``);
- ``POST /api/jobs`` — submit a job spec (JSON, or YAML with a ``yaml`` content type); it is
  validated (422 with the error otherwise), stored as ``created`` and run by the worker
  through the same ``run_job`` as ``nas search``; answers 202 with the job id;
- ``GET /api/jobs/{id}`` — one job's summary and spec; ``GET /api/jobs/{id}/trials[?state=]``;
- ``GET /api/jobs/{id}/pareto[?max_latency=&min_accuracy=&latency_metric=&accuracy_metric=]``
  — the feasible front under extra bounds (as ``nas pareto``); ``.../pareto.png`` its plot;
- ``GET /`` — a small web page over the same endpoints.

Jobs left ``created`` by a stopped service are queued again when it starts; a job the
service was running when stopped stays ``running`` in the store and continues with
``nas resume JOB_ID``.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from nas.config import ConfigError
from nas.job import job_from_dict
from nas.queries import front_query, job_summaries, job_summary
from nas.store import Store, StoreError

logger = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("static") / "index.html"


class JobWorker:
    """Runs submitted jobs in background threads (``threads`` at a time), each with ``run_job``."""

    def __init__(self, store: Store, threads: int = 1) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="nas-job")
        self._lock = threading.Lock()
        self._queued: set[str] = set()

    def submit(self, job_id: str) -> None:
        with self._lock:
            if job_id in self._queued:
                return
            self._queued.add(job_id)
        self._pool.submit(self._run, job_id)

    def _run(self, job_id: str) -> None:
        from nas.runner import run_job

        try:
            result = run_job(None, self.store, job_id=job_id, progress=False)
            logger.info("job %s: %s after %d evaluations", job_id, result.state, result.evaluations)
        except Exception as exc:  # run_job stores the job as failed with its error, once it has started it
            logger.exception("job %s failed", job_id)
            if self.store.job(job_id).state == "created":
                self.store.update_job(job_id, state="failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._queued.discard(job_id)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _parse_spec(body: bytes, content_type: str) -> Any:
    text = body.decode("utf-8", errors="replace")
    try:
        return yaml.safe_load(text) if "yaml" in content_type else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        kind = "YAML" if "yaml" in content_type else "JSON"
        raise HTTPException(400, f"job spec is not valid {kind}: {exc}") from exc


def create_app(store: Store | str, threads: int = 1) -> FastAPI:
    """The service over ``store`` (a :class:`Store` or its URL), running ``threads`` jobs at a time."""
    store = Store(store) if isinstance(store, str) else store
    worker = JobWorker(store, threads)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for job in store.jobs():
            if job.state == "created":
                worker.submit(job.id)
        yield
        worker.shutdown()

    app = FastAPI(title="hwnas", summary="Hardware-aware NAS jobs and Pareto fronts", lifespan=lifespan)
    app.state.store, app.state.worker = store, worker

    @app.exception_handler(StoreError)
    async def not_found(request: Request, exc: StoreError) -> JSONResponse:
        status = 404 if "not found" in str(exc) else 400
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(ValueError)
    async def bad_request(request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        from sqlalchemy.engine import make_url

        return {"status": "ok", "store": make_url(store.url).render_as_string(hide_password=True)}

    @app.get("/api/jobs")
    def jobs() -> list[dict[str, Any]]:
        return job_summaries(store)

    @app.post("/api/jobs", status_code=202)
    async def submit(request: Request) -> dict[str, Any]:
        data = _parse_spec(await request.body(), request.headers.get("content-type", ""))
        try:
            spec = job_from_dict(data)
            space = spec.space.build()
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from exc
        except ValueError as exc:
            raise HTTPException(422, f"space: {exc}") from exc
        job_id = store.create_job(spec.name, spec.to_dict(), space.space_id, spec.budget.evaluations)
        worker.submit(job_id)
        return {"job_id": job_id, "state": "created", "url": f"/api/jobs/{job_id}"}

    @app.get("/api/jobs/{job_id}")
    def job(job_id: str) -> dict[str, Any]:
        record = store.job(job_id)
        return {**job_summary(store, record), "spec": record.spec}

    @app.get("/api/jobs/{job_id}/trials")
    def trials(job_id: str, state: str | None = None) -> list[dict[str, Any]]:
        store.job(job_id)
        return [t.to_dict() for t in store.trials(job_id, [state] if state else None)]

    @app.get("/api/jobs/{job_id}/pareto")
    def pareto(
        job_id: str,
        max_latency: float | None = None,
        min_accuracy: float | None = None,
        latency_metric: str | None = None,
        accuracy_metric: str = "accuracy",
    ) -> dict[str, Any]:
        return front_query(
            store, job_id, max_latency=max_latency, min_accuracy=min_accuracy, latency=latency_metric,
            accuracy_metric=accuracy_metric,
        )  # fmt: skip

    @app.get("/api/jobs/{job_id}/pareto.png")
    def pareto_png(
        job_id: str,
        max_latency: float | None = None,
        min_accuracy: float | None = None,
        latency_metric: str | None = None,
        accuracy_metric: str = "accuracy",
    ) -> Response:
        buf = io.BytesIO()
        front_query(
            store, job_id, max_latency=max_latency, min_accuracy=min_accuracy, latency=latency_metric,
            accuracy_metric=accuracy_metric, plot=buf,
        )  # fmt: skip
        return Response(buf.getvalue(), media_type="image/png")

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text()

    return app
