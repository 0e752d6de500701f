"""HTTP API and web page over the job store (FastAPI), with a background worker running submitted jobs.

Endpoints (JSON unless noted; every ``/api`` route but health needs ``Authorization: Bearer TOKEN``):

- ``GET /api/health`` — liveness, no credentials, no database access;
- ``GET /api/info`` — the store the service reads and its settings;
- ``GET /api/jobs`` — every job's state, progress, best values and hypervolume (as ``nas jobs``);
- ``POST /api/jobs`` — submit a job spec (``application/json`` or ``application/yaml``). It is
  admitted under the service's policy (registered names only, files inside the data roots,
  bounded values; 422 naming the key otherwise), stored as ``created`` and run by the worker
  through the same ``run_job`` as ``nas search``; answers 202 with the job id;
- ``GET /api/jobs/{id}`` — one job's summary and spec; ``GET /api/jobs/{id}/trials[?state=]``;
  ``GET /api/jobs/{id}/history`` — hypervolume against evaluations;
- ``GET /api/jobs/{id}/pareto[?max_latency=&min_accuracy=&latency_metric=&accuracy_metric=]``
  — the feasible front under extra bounds (as ``nas pareto``); ``.../pareto.png`` its plot;
- ``GET /api/jobs/{id}/points[?bounds]`` — every completed trial as columns, for the page's plot;
- ``POST /api/jobs/{id}/cancel`` (body ``{}``), ``DELETE /api/jobs/{id}``;
- ``GET /api/openapi.json`` — the API's schema;
- ``GET /`` — a small web page over the same endpoints (it asks for the token);
- ``GET /docs`` — the API reference, read from the OpenAPI document (the job spec's keys included).

Requests that change state must be JSON or YAML (415 otherwise) and, when a browser sends an
``Origin``, come from the page's own origin (403 otherwise), so another site cannot post a
job through a user's browser. Parsing, admission and every store access run off the event
loop. Jobs left ``created`` by a stopped service are queued again when it starts.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from nas.admission import SpecPolicy, admit_job
from nas.core.config import ConfigError
from nas.core.limits import DEFAULT_LIMITS, DocumentSyntaxError, InputLimits, load_json_text, load_yaml_text
from nas.queries import QueryCache, arch_formatter, job_summaries, job_summary
from nas.store import JobBusy, JobCancelled, Store, StoreError
from services.auth import token_matches

logger = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("static") / "index.html"
# the pages' own code and styles, by name (a fixed list: a request never names a file)
ASSETS = {"page.js": "text/javascript", "page.css": "text/css", "docs.js": "text/javascript", "docs.css": "text/css"}
# Every answer: no inline or foreign code, no framing, no sniffing. Plotly sets style attributes and
# injects its own stylesheet, hence style-src 'unsafe-inline'; no 'unsafe-eval', so no WebGL traces.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
SPEC_TYPES = {"application/json": "JSON", "application/yaml": "YAML"}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

JobId = Annotated[str, PathParam(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Metric = Annotated[str | None, Query(max_length=200)]
Bound = Annotated[float | None, Query(allow_inf_nan=False)]


def front_bounds(
    max_latency: Bound = None,
    min_accuracy: Bound = None,
    latency_metric: Metric = None,
    accuracy_metric: Annotated[str, Query(max_length=200)] = "accuracy",
) -> dict[str, Any]:
    """The extra bounds a front query takes (query parameters), as :func:`front_query`'s keywords."""
    return {"max_latency": max_latency, "min_accuracy": min_accuracy, "latency": latency_metric,
            "accuracy_metric": accuracy_metric}  # fmt: skip


Bounds = Annotated[dict[str, Any], Depends(front_bounds)]
MAX_PAGE = 1000
PAGE_HEADERS = ("X-Total-Count", "X-Next-Offset", "X-Job-Trials")
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"items per page (at most {MAX_PAGE})")]
PageOffset = Annotated[int, Query(ge=0, le=2**31, description="items skipped")]


def _page_headers(total: int, limit: int, offset: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """``X-Total-Count`` (all items) and, when more follow, the next page's offset in ``X-Next-Offset``."""
    out = {"X-Total-Count": str(total), **(extra or {})}
    if offset + limit < total:
        out["X-Next-Offset"] = str(offset + limit)
    return out


def _page(items: list[Any], limit: int, offset: int) -> JSONResponse:
    """One page of ``items`` as JSON, with :func:`_page_headers`."""
    return JSONResponse(items[offset : offset + limit], headers=_page_headers(len(items), limit, offset))


@dataclass(frozen=True)
class Quotas:
    """Server-wide limits on the work token holders may ask for (``nas serve --max-...``).

    Attributes:
        max_active_jobs: Jobs queued or running at once; another submission gets 429.
        max_evaluations: A job's budget of evaluations (422 above; a budget must name it).
        max_wall_time_s: A job's wall-time budget (422 above).
    """

    max_active_jobs: int = 20
    max_evaluations: int = 100_000
    max_wall_time_s: float = 7 * 24 * 3600.0

    def check_budget(self, evaluations: int | None, wall_time_s: float | None) -> None:
        if evaluations is None:
            raise ConfigError(f"budget.evaluations: this service needs one (at most {self.max_evaluations})")
        if evaluations > self.max_evaluations:
            raise ConfigError(
                f"budget.evaluations: this service runs at most {self.max_evaluations} per job, got {evaluations}"
            )
        if wall_time_s is not None and wall_time_s > self.max_wall_time_s:
            raise ConfigError(f"budget.wall_time_s: this service runs jobs of at most {self.max_wall_time_s:g} s")


@dataclass(frozen=True)
class ServiceConfig:
    """How the service admits requests.

    Attributes:
        token: The bearer token every ``/api`` route but health requires; ``None`` turns
            authentication off (``nas serve`` allows that only on a loopback host).
        policy: What a submitted spec may name (registered plug-ins, files in data roots).
        threads: Jobs run at the same time.
        allowed_hosts: ``Host`` header values served (DNS-rebinding guard); ``("*",)`` any.
        cors_origins: Other origins whose pages may call the API (none by default).
        body_timeout_s: Seconds a request body may take to arrive after its head (408 after).
        quotas: Jobs at once and budgets per job.
    """

    token: str | None
    policy: SpecPolicy = field(default_factory=lambda: SpecPolicy(allow_code=False, data_roots=()))
    threads: int = 1
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    cors_origins: tuple[str, ...] = ()
    body_timeout_s: float = 30.0
    quotas: Quotas = field(default_factory=Quotas)

    @property
    def limits(self) -> InputLimits:
        return self.policy.limits


class JobWorker:
    """Runs submitted jobs in background threads (``threads`` at a time), each with ``run_job``."""

    def __init__(self, store: Store, threads: int = 1, policy: SpecPolicy | None = None) -> None:
        self.store = store
        self.policy = policy
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
            if self.store.job(job_id).state == "cancelled":  # cancelled while it waited in the queue
                return
            # Jobs from the network never name code, also when they were queued before a restart.
            policy = self.policy
            check_path = policy.check_path if policy is not None and policy.data_roots is not None else None
            result = run_job(None, self.store, job_id=job_id, progress=False, allow_code=False,
                             continue_cancelled=False, check_path=check_path)  # fmt: skip
            logger.info("job %s: %s after %d evaluations", job_id, result.state, result.evaluations)
        except JobCancelled:
            logger.info("job %s: cancelled", job_id)
        except JobBusy as exc:
            logger.warning("job %s not started: %s", job_id, exc)
        except Exception as exc:  # run_job stores the job as failed with its error, once it has started it
            logger.error("job %s failed: %s", job_id, str(exc).splitlines()[0][:500] if str(exc) else type(exc))
            try:
                if self.store.job(job_id).state == "created":
                    self.store.update_job(job_id, state="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
            except StoreError as store_error:
                logger.error("job %s: could not record the failure: %s", job_id, store_error)
        finally:
            with self._lock:
                self._queued.discard(job_id)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        import sys

        ray = sys.modules.get("ray")  # a parallel job started a local Ray: its processes stop with the service
        if ray is not None and ray.is_initialized():
            ray.shutdown()


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes, and with 408 when
    it has not all arrived ``timeout_s`` seconds after its head (a client trickling it in)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body larger than {limit} bytes")
    chunks, size = [], 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), max(deadline - loop.time(), 0.0))
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise HTTPException(408, f"request body not received within {timeout_s:g} s",
                                headers={"Connection": "close"}) from None  # fmt: skip
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_spec(body: bytes, media_type: str, limits: InputLimits) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "job spec is not UTF-8 text") from None
    loader = load_yaml_text if media_type == "application/yaml" else load_json_text
    try:
        return loader(text, limits, what="job spec")
    except DocumentSyntaxError as exc:
        raise HTTPException(400, str(exc)) from None
    except ConfigError as exc:  # valid syntax, out of bounds (size, depth, aliases, NaN)
        raise HTTPException(422, str(exc)) from None


def _has_token(request: Request, token: str | None) -> bool:
    if token is None:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token_matches(token, given.strip() or None)


def _unauthorized() -> JSONResponse:
    return JSONResponse({"detail": "missing or wrong bearer token"}, status_code=401,
                        headers={"WWW-Authenticate": "Bearer"})  # fmt: skip


def _write_guard(allowed: tuple[str, ...], token: str | None) -> Callable[[Request, Any], Awaitable[Response]]:
    """Requests that change state: with the token (401 first: nothing else is said to a stranger),
    JSON or YAML only (415), and only from this origin (403).

    A form or a ``no-cors`` fetch from another site can only send ``text/plain``, form or
    multipart bodies, which are refused before anything else looks at them.
    """

    async def guard(request: Request, call_next: Any) -> Response:
        if request.method in SAFE_METHODS:
            return await call_next(request)
        if not _has_token(request, token):
            return _unauthorized()
        # a DELETE carries no body; other sites cannot send one without a CORS preflight we refuse
        bodiless = request.method == "DELETE" and request.headers.get("content-length", "0") == "0"
        if not bodiless and _media_type(request) not in SPEC_TYPES:
            return JSONResponse(
                {"detail": "send the request body as application/json or application/yaml"}, status_code=415
            )
        origin = request.headers.get("origin")
        if origin is not None:
            own = f"{request.url.scheme}://{request.headers.get('host', '')}"
            if origin != own and origin not in allowed:
                return JSONResponse({"detail": f"cross-origin request from {origin[:100]} refused"}, status_code=403)
        return await call_next(request)

    return guard


async def _security_headers(request: Request, call_next: Any) -> Response:
    response: Response = await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def plotly_bundle() -> Path | None:
    """The minified Plotly.js shipped inside the ``plotly`` Python package, if installed."""
    try:
        from importlib import resources

        path = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    except ModuleNotFoundError:
        return None
    return path if path.is_file() else None


def with_job_schema(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with the job spec's JSON Schema (``nas spec schema``) as the
    ``JobSpec`` component, its definitions beside it, so ``POST /api/jobs`` documents its body."""
    from nas.spec_schema import job_schema

    schema = job_schema()
    defs = schema.pop("$defs", {})
    schema.pop("$schema", None)
    text = json.dumps(schema).replace('"#/$defs/', '"#/components/schemas/')
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name, entry in defs.items():
        components[name] = json.loads(json.dumps(entry).replace('"#/$defs/', '"#/components/schemas/'))
    components["JobSpec"] = json.loads(text)
    return document


def create_app(store: Store | str, config: ServiceConfig) -> FastAPI:
    """The service over ``store`` (a :class:`Store` or its URL) under ``config``."""
    store = Store(store) if isinstance(store, str) else store
    worker = JobWorker(store, config.threads, config.policy)
    cache = QueryCache(store)
    limits = config.limits

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for job in await run_in_threadpool(store.jobs):
            if job.state == "created":
                worker.submit(job.id)
        yield
        worker.shutdown()

    app = FastAPI(
        title="hwnas", summary="Hardware-aware NAS jobs and Pareto fronts", lifespan=lifespan,
        docs_url=None, redoc_url=None, openapi_url=None,
    )  # fmt: skip
    app.state.store, app.state.worker, app.state.config = store, worker, config
    app.middleware("http")(_write_guard(config.cors_origins, config.token))
    app.middleware("http")(_security_headers)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"], expose_headers=list(PAGE_HEADERS),
        )  # fmt: skip
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(config.allowed_hosts))

    async def authenticated(request: Request) -> None:
        if not _has_token(request, config.token):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        status = 404 if "not found" in str(exc) else 409 if isinstance(exc, JobBusy) else 400
        detail = exc.public if isinstance(exc, JobBusy) else str(exc)  # never the runner's host and pid
        return JSONResponse({"detail": detail}, status_code=status)

    @app.exception_handler(ValueError)
    async def bad_request(request: Request, exc: ValueError) -> JSONResponse:
        """Our own errors (:class:`ConfigError`) say what is wrong; any other ``ValueError`` is
        answered without its text (it may quote internals) and logged."""
        if isinstance(exc, ConfigError):
            return JSONResponse({"detail": str(exc)}, status_code=400)
        logger.warning("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return JSONResponse({"detail": f"the request cannot be answered ({type(exc).__name__})"}, status_code=400)

    @app.get("/api/health")
    async def health() -> dict[str, str]:
        """Liveness only: answers without credentials and without touching the database."""
        return {"status": "ok"}

    api = APIRouter(prefix="/api", dependencies=[Depends(authenticated)])

    @api.get("/info")
    def info() -> dict[str, Any]:
        return {
            "store": store.safe_url,
            "auth": config.token is not None,
            "data_roots": [str(r) for r in config.policy.data_roots or ()],
            "max_body_bytes": limits.max_bytes,
        }

    async def recent(kind: str, job_id: str, compute: Callable[[], Any], **query: Any) -> Any:
        """An answer at most ``fresh_s`` old: from memory on the event loop, else computed off it."""
        found = cache.peek(kind, job_id, **query)
        if found is None:
            found = await run_in_threadpool(functools.partial(cache.recent, kind, job_id, compute, **query))
        return found

    @api.get("/jobs")
    async def jobs(limit: PageLimit = 100, offset: PageOffset = 0) -> JSONResponse:
        """Every job's summary, oldest first, a page at a time (``X-Total-Count`` says how many in all)."""
        return _page(await recent("jobs", "*", functools.partial(job_summaries, store)), limit, offset)

    admission = threading.Lock()  # counting active jobs and storing a new one happen as one step

    def admit_and_store(body: bytes, media_type: str) -> dict[str, Any]:
        data = _parse_spec(body, media_type, limits)
        try:
            spec, space = admit_job(data, config.policy)
            config.quotas.check_budget(spec.budget.evaluations, spec.budget.wall_time_s)
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from None
        with admission:
            active = sum(job.state in ("created", "running") for job in store.jobs())
            if active >= config.quotas.max_active_jobs:
                raise HTTPException(
                    429, f"this service already has {active} jobs queued or running (at most "
                    f"{config.quotas.max_active_jobs}); wait for one to finish or cancel one",
                    headers={"Retry-After": "60"},
                )  # fmt: skip
            job_id = store.create_job(spec.name, spec.to_dict(), space.space_id, spec.budget.evaluations)
        cache.forget("*")  # the job list shows it at once
        return {"job_id": job_id, "state": "created", "url": f"/api/jobs/{job_id}"}

    @api.post(
        "/jobs", status_code=202,
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/JobSpec"}},
            "application/yaml": {"schema": {"type": "string", "description": "a job spec in YAML (same keys as JSON)"}},
        }}},
    )  # fmt: skip
    async def submit(request: Request) -> dict[str, Any]:
        """Submit a job spec (JSON or YAML; the write guard refused other types); 202 with its id once stored."""
        body = await _read_body(request, limits.max_bytes, config.body_timeout_s)
        created = await run_in_threadpool(admit_and_store, body, _media_type(request))
        worker.submit(created["job_id"])
        return created

    def one_job(job_id: str) -> dict[str, Any]:
        record = store.job(job_id)
        return {**job_summary(store, record), "spec": record.spec}

    @api.get("/jobs/{job_id}")
    async def job(job_id: JobId) -> JSONResponse:
        """The job's summary and spec (at most a quarter second old)."""
        return JSONResponse(await recent("job", job_id, functools.partial(one_job, job_id)))

    @api.delete("/jobs/{job_id}")
    def delete_job(job_id: JobId) -> dict[str, Any]:
        """Deletes a job that is not running, with its trials and fronts (409 while it runs)."""
        store.delete_job(job_id)
        cache.forget(job_id)
        cache.forget("*")
        return {"job_id": job_id, "deleted": True}

    @api.post("/jobs/{job_id}/cancel")
    def cancel_job(job_id: JobId) -> dict[str, Any]:
        """Stops a queued or running job (409 once it has finished); its runner stops within a heartbeat
        (10 s by default), dropping evaluations in flight. Send ``{}`` as JSON."""
        before = store.cancel_job(job_id)
        cache.forget(job_id)
        cache.forget("*")
        return {"job_id": job_id, "state": "cancelled", "was": before}

    def trials_page(job_id: str, state: str | None, contains: str | None, order: str, limit: int,
                    offset: int) -> tuple[list[dict[str, Any]], dict[str, str]]:  # fmt: skip
        job = store.job(job_id)
        text = arch_formatter(job.space_id, job.spec.get("space"))  # the CLI's notation: the page shows and filters it
        rows = [{**t.to_dict(), "arch_text": text(t.arch)} for t in store.trials(job_id, [state] if state else None)]
        matching = rows
        if contains:
            needle = contains.lower()
            matching = [r for r in rows if needle in json.dumps(r, default=str).lower()]
        if order == "desc":
            matching = matching[::-1]
        headers = _page_headers(len(matching), limit, offset, {"X-Job-Trials": str(len(rows))})
        return matching[offset : offset + limit], headers

    @api.get("/jobs/{job_id}/trials")
    async def trials(
        job_id: JobId, state: Literal["running", "complete", "failed"] | None = None,
        contains: Annotated[str | None, Query(max_length=200)] = None,
        order: Literal["asc", "desc"] = "asc", limit: PageLimit = 100, offset: PageOffset = 0,
    ) -> Response:  # fmt: skip
        """The job's trials in id order (``order=desc``: newest first), optionally those in one ``state``
        or whose arch, metrics or error contain ``contains``; a page at a time: ``X-Total-Count`` is how
        many match, ``X-Job-Trials`` how many the job has in that state. Computed again only when a
        trial was added or finished since."""
        query = {"state": state, "contains": contains, "order": order, "limit": limit, "offset": offset}
        found = cache.peek_trials_page(job_id, **query)
        if found is None:
            compute = functools.partial(trials_page, job_id, state, contains, order, limit, offset)
            found = await run_in_threadpool(functools.partial(cache.trials_page, job_id, compute, **query))
        body, headers = found
        return Response(body, media_type="application/json", headers=headers)

    async def cached(request: Request, kind: str, job_id: str, query: dict[str, Any]) -> Response:
        """A cached answer (JSON rendered, and gzip-compressed for clients that accept it, once per
        entry) on the event loop when fresh (no I/O), else read/computed off it."""
        packed = "gzip" in request.headers.get("accept-encoding", "")
        found = cache.peek_json(kind, job_id, compressed=packed, **query)
        if found is None:
            found = await run_in_threadpool(functools.partial(cache.get_json, kind, job_id, compressed=packed, **query))
        headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"} if packed else {"Vary": "Accept-Encoding"}
        return Response(found, media_type="application/json", headers=headers)

    @api.get("/jobs/{job_id}/pareto")
    async def pareto(request: Request, job_id: JobId, query: Bounds) -> Response:
        """The feasible front under the job's constraints and these bounds (cached until a trial lands;
        the store is asked at most every quarter second per query)."""
        return await cached(request, "front", job_id, query)

    @api.get("/jobs/{job_id}/points")
    async def points(request: Request, job_id: JobId, query: Bounds) -> Response:
        """Every completed trial as columns (metrics, feasible, within the bounds, on the front, arch),
        for the page's interactive plot; cached as the front is."""
        return await cached(request, "points", job_id, query)

    @api.get("/jobs/{job_id}/history")
    async def history(request: Request, job_id: JobId) -> Response:
        """Hypervolume each time the front changed, against evaluations (cached as the front is)."""
        return await cached(request, "history", job_id, {})

    @api.get("/jobs/{job_id}/pareto.png", response_class=Response)
    async def pareto_png(job_id: JobId, query: Bounds) -> Response:
        """The front's plot (redrawn only when a trial has completed since)."""
        found = cache.peek_png(job_id, **query)
        if found is None:
            found = await run_in_threadpool(functools.partial(cache.png, job_id, **query))
        return Response(found, media_type="image/png")

    @api.get("/openapi.json", include_in_schema=False)
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_job_schema(app.openapi())
        return app.openapi_schema

    app.include_router(api)

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> Response:
        """Plotly.js from the installed ``plotly`` package (library code, no data: no token needed;
        the page loads nothing from other sites)."""
        path = plotly_bundle()
        if path is None:
            raise HTTPException(404, "plotly is not installed: pip install 'hwnas[serve]'")
        return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: Annotated[str, PathParam(max_length=20)]) -> Response:
        """The pages' scripts and styles (code, no data: no token needed)."""
        if name not in ASSETS:
            raise HTTPException(404, "not found")
        return Response((PAGE.parent / name).read_bytes(), media_type=ASSETS[name],
                        headers={"Cache-Control": "no-cache"})  # fmt: skip

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs() -> str:
        """The API reference: a page (no data) that reads ``/api/openapi.json`` with the token."""
        return (PAGE.parent / "docs.html").read_text()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        """The page itself holds no data; it asks for the token and calls the API with it."""
        return PAGE.read_text()

    return app


__all__ = ["DEFAULT_LIMITS", "JobWorker", "ServiceConfig", "create_app"]
