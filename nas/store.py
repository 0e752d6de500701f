"""Job store: jobs, trials, Pareto fronts and artifacts in SQL (SQLAlchemy).

One URL selects the database: ``sqlite:///runs/nas.db`` by default, or
``postgresql://user:pass@host/db``. Tables are prefixed ``nas_`` so the same
database can also hold an Optuna storage. Methods return plain dataclasses, never
live ORM objects, so callers can keep them after the session closes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import CursorResult, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from nas.core.io import sha256_file

logger = logging.getLogger(__name__)

DEFAULT_URL = "sqlite:///runs/nas.db"
JOB_STATES = ("created", "running", "done", "failed", "interrupted", "cancelled")
TRIAL_STATES = ("running", "complete", "failed")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class StoreError(ValueError):
    """Bad store URL, unknown job, or a request the store cannot satisfy."""


class JobBusy(StoreError):
    """Another runner holds the job's lease (its heartbeat is recent).

    ``public`` says the same without naming the runner (its host and process id), for answers
    to clients of the HTTP service.
    """

    def __init__(self, message: str, public: str | None = None) -> None:
        super().__init__(message)
        self.public = public if public is not None else message


def is_job_study(name: str, job_id: str) -> bool:
    """Whether the Optuna study ``name`` holds job ``job_id`` (``nas-<id>`` or ``nas-<id>-<name>``)."""
    return name == f"nas-{job_id}" or name.startswith(f"nas-{job_id}-")


class LeaseLost(StoreError):
    """This runner's lease on a job was taken over (its heartbeats stopped for too long)."""


class JobCancelled(LeaseLost):
    """The job was cancelled while this runner ran it (its lease revoked); ``nas resume`` continues it."""


# Messages of lock contention that a later attempt can get past (SQLite, PostgreSQL).
_LOCK_MESSAGES = (
    "database is locked", "database table is locked", "deadlock detected", "could not obtain lock",
    "could not serialize", "lock timeout", "canceling statement due to lock timeout",
)  # fmt: skip
F = TypeVar("F", bound=Callable[..., Any])


def _retry_locked(method: F) -> F:
    """Re-runs a store transaction while the database is locked, with backoff, up to ``lock_retry_s``.

    Each retry is one log line; if the lock outlasts the retry window the error is a
    one-line :class:`StoreError`, never a driver traceback.
    """

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        delay, attempt = 0.05, 0
        deadline = time.monotonic() + self.lock_retry_s
        while True:
            try:
                return method(self, *args, **kwargs)
            except OperationalError as exc:
                message = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0][:200]
                if not any(m in message.lower() for m in _LOCK_MESSAGES):
                    raise StoreError(f"store {self.safe_url}: {message}") from None
                attempt += 1
                if time.monotonic() + delay > deadline:
                    raise StoreError(
                        f"store {self.safe_url}: still locked after {attempt} attempts over {self.lock_retry_s:g} s "
                        f"({message}); another process holds a long write lock"
                    ) from None
                logger.warning("store busy (%s) in %s; retry %d in %.2f s", message, method.__name__, attempt, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    return wrapper  # type: ignore[return-value]


def _host() -> str:
    return socket.gethostname()[:100]


def runner_id() -> str:
    """A new runner identity: host, process and a random part (two runners in one process differ)."""
    return f"{_host()}:{os.getpid()}:{secrets.token_hex(4)}"


def _runner_is_dead(runner: str) -> bool:
    """Whether ``runner`` was a process on this host that no longer exists (a killed runner)."""
    host, _, rest = runner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _host() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class _Base(DeclarativeBase):
    pass


class _Job(_Base):
    __tablename__ = "nas_jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict] = mapped_column(JSON)
    space_id: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20), default="created")
    budget: Mapped[int | None] = mapped_column(Integer, nullable=True)
    elapsed_s: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now, onupdate=_now)


class _Trial(_Base):
    __tablename__ = "nas_trials"
    __table_args__ = (UniqueConstraint("job_id", "trial_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("nas_jobs.id", ondelete="CASCADE"), index=True)
    trial_id: Mapped[int] = mapped_column(Integer)
    arch_id: Mapped[str] = mapped_column(String(64), index=True)
    arch: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20), default="running")
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


# What `trial_version` reads: a job's finished trials, answered from the index alone.
_TRIALS_BY_STATE = Index("ix_nas_trials_job_state_finished", _Trial.job_id, _Trial.state, _Trial.finished_at)


class _Front(_Base):
    __tablename__ = "nas_fronts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("nas_jobs.id", ondelete="CASCADE"), index=True)
    evaluations: Mapped[int] = mapped_column(Integer)
    trial_ids: Mapped[list] = mapped_column(JSON)
    hypervolume: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class _Artifact(_Base):
    __tablename__ = "nas_artifacts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("nas_jobs.id", ondelete="CASCADE"), nullable=True)
    kind: Mapped[str] = mapped_column(String(50))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    meta: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class _Lease(_Base):
    """Who runs a job: one row per running job, renewed by its runner's heartbeat."""

    __tablename__ = "nas_leases"
    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    runner: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)


class _Device(_Base):
    """A named target device (``nas.devices.Device``): where and how its latencies are measured."""

    __tablename__ = "nas_devices"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    settings: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now, onupdate=_now)


class _DeviceLatency(_Base):
    """A device's latency model of one space: a measured table, or a fleet-calibrated model."""

    __tablename__ = "nas_device_latency"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device: Mapped[str] = mapped_column(ForeignKey("nas_devices.name", ondelete="CASCADE"), index=True)
    space_id: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    data: Mapped[dict] = mapped_column(JSON)
    summary: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


@dataclass(frozen=True)
class DeviceRow:
    name: str
    settings: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class LatencyRecord:
    id: int
    device: str
    space_id: str
    kind: str  # table | fleet
    summary: dict[str, Any]
    created_at: dt.datetime
    data: dict[str, Any] | None = None  # only when asked for (a table is large)


@dataclass(frozen=True)
class LeaseRecord:
    job_id: str
    runner: str
    acquired_at: dt.datetime
    heartbeat_at: dt.datetime
    expires_at: dt.datetime

    def live(self, now: dt.datetime | None = None) -> bool:
        """Whether the lease still holds: heartbeat not expired, and not a dead process on this host."""
        return (now or _now()) < self.expires_at and not _runner_is_dead(self.runner)


@dataclass(frozen=True)
class JobRecord:
    id: str
    name: str
    spec: dict[str, Any]
    space_id: str
    state: str
    budget: int | None
    elapsed_s: float
    error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class TrialRecord:
    job_id: str
    trial_id: int
    arch_id: str
    arch: dict[str, Any]
    state: str
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    worker: str | None = None
    created_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "trial_id": self.trial_id,
            "arch_id": self.arch_id,
            "arch": self.arch,
            "state": self.state,
            "metrics": self.metrics,
            "error": self.error,
            "worker": self.worker,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


@dataclass(frozen=True)
class FrontRecord:
    job_id: str
    evaluations: int
    trial_ids: list[int]
    hypervolume: float | None
    created_at: dt.datetime


@dataclass(frozen=True)
class ArtifactRecord:
    job_id: str | None
    kind: str
    path: str
    sha256: str
    meta: dict[str, Any]
    created_at: dt.datetime


def _job(row: _Job) -> JobRecord:
    return JobRecord(
        row.id, row.name, row.spec, row.space_id, row.state, row.budget, row.elapsed_s, row.error,
        row.created_at, row.updated_at,
    )  # fmt: skip


def _trial(row: _Trial) -> TrialRecord:
    return TrialRecord(
        row.job_id, row.trial_id, row.arch_id, row.arch, row.state, dict(row.metrics or {}), row.error, row.worker,
        row.created_at, row.finished_at,
    )  # fmt: skip


def _latency(row: _DeviceLatency, data: bool) -> LatencyRecord:
    return LatencyRecord(
        row.id, row.device, row.space_id, row.kind, dict(row.summary or {}), row.created_at,
        dict(row.data) if data else None,
    )  # fmt: skip


def _lease(row: _Lease) -> LeaseRecord:
    return LeaseRecord(row.job_id, row.runner, row.acquired_at, row.heartbeat_at, row.expires_at)


def _finite(metrics: Mapping[str, float]) -> dict[str, float | None]:
    """JSON columns cannot hold NaN/inf portably: store them as null."""
    out: dict[str, float | None] = {}
    for key, value in metrics.items():
        value = float(value)
        out[key] = value if value == value and abs(value) != float("inf") else None
    return out


def database_url(url: str) -> str:
    """The SQLAlchemy URL to open: ``postgresql://`` (or ``postgres://``) without a driver uses psycopg 3.

    SQLAlchemy's default PostgreSQL driver is psycopg2; the project installs psycopg (3), so a
    plain URL as PostgreSQL tools write it works as given. An explicit ``+driver`` is kept.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"store: {url!r} is not a database URL (e.g. sqlite:///runs/nas.db)") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed.render_as_string(hide_password=False)
    return url


class Store:
    """SQL store of search jobs.

    Args:
        url: SQLAlchemy URL (see :func:`database_url`); for SQLite the parent folder is created.
        create: Create the database and its tables when missing; ``False`` (read-only commands)
            refuses a store that does not exist instead, creating nothing.
        lock_timeout_s: How long one SQLite statement waits for a lock (default 30 s, or
            ``$NAS_STORE_LOCK_TIMEOUT``).
        lock_retry_s: How long a transaction is retried while the database stays locked
            (default 600 s, or ``$NAS_STORE_LOCK_RETRY``); each retry is logged in one line.
    """

    def __init__(self, url: str = DEFAULT_URL, lock_timeout_s: float | None = None,
                 lock_retry_s: float | None = None, *, create: bool = True) -> None:  # fmt: skip
        url = database_url(url)
        parsed = make_url(url)
        self.lock_timeout_s = float(lock_timeout_s or os.environ.get("NAS_STORE_LOCK_TIMEOUT") or 30)
        self.lock_retry_s = float(lock_retry_s or os.environ.get("NAS_STORE_LOCK_RETRY") or 600)
        self.safe_url = parsed.render_as_string(hide_password=True)
        kwargs: dict[str, Any] = {}
        missing = (
            f"store: no database at {self.safe_url} (nothing was created); a search creates one "
            "(`nas search SPEC.yaml --store URL`), or give the store you used with --store / $NAS_STORE"
        )
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                if not create and not Path(parsed.database).is_file():
                    raise StoreError(missing)
                if create:
                    Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": self.lock_timeout_s}
        self.connection_url = url  # holds the password: only to connect, never shown
        try:
            self.engine: Engine = create_engine(url, **kwargs)
            if create:
                _Base.metadata.create_all(self.engine)
                _TRIALS_BY_STATE.create(self.engine, checkfirst=True)  # databases made before the index
            elif not inspect(self.engine).has_table(_Job.__tablename__):
                raise StoreError(missing.replace("no database", "no hwnas tables in the database"))
        except StoreError:
            raise
        except Exception as exc:  # driver missing, server unreachable, ...
            raise StoreError(f"store: cannot open {self.safe_url}: {exc}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _not_found(self, job_id: str) -> str:
        """A "not found" naming the store and the command that lists its jobs (with its --store)."""
        return f"job {job_id!r} not found in {self.safe_url}; `nas jobs --store {self.safe_url}` lists its jobs"

    @property
    def url(self) -> str:
        """The store's URL as it may be shown (password hidden); :attr:`connection_url` connects."""
        return self.safe_url

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------ jobs
    @_retry_locked
    def create_job(self, name: str, spec: Mapping[str, Any], space_id: str, budget: int | None = None) -> str:
        job_id = f"{_now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        with self._session() as s:
            s.add(_Job(id=job_id, name=name, spec=json.loads(json.dumps(spec)), space_id=space_id, budget=budget))
        return job_id

    @_retry_locked
    def job(self, job_id: str) -> JobRecord:
        with self._session() as s:
            row = s.get(_Job, job_id)
            if row is None:
                raise StoreError(self._not_found(job_id))
            return _job(row)

    @_retry_locked
    def jobs(self) -> list[JobRecord]:
        with self._session() as s:
            return [_job(r) for r in s.scalars(select(_Job).order_by(_Job.created_at, _Job.id))]

    @_retry_locked
    def set_reference(self, job_id: str, reference: Mapping[str, float]) -> None:
        """Records the hypervolume's reference point in the job's spec (``reference``): fixed for
        the job from then on, so its hypervolume never decreases and resumes use the same one."""
        with self._session() as s:
            row = s.get(_Job, job_id)
            if row is None:
                raise StoreError(f"job {job_id!r} not found in {self.safe_url}")
            row.spec = {**row.spec, "reference": {k: float(v) for k, v in reference.items()}}

    @_retry_locked
    def update_job(self, job_id: str, **fields: Any) -> None:
        allowed = {"state", "elapsed_s", "error", "budget"}
        unknown = set(fields) - allowed
        if unknown:
            raise StoreError(f"update_job: cannot set {sorted(unknown)}")
        if "state" in fields and fields["state"] not in JOB_STATES:
            raise StoreError(f"update_job: state must be one of {JOB_STATES}")
        with self._session() as s:
            row = s.get(_Job, job_id)
            if row is None:
                raise StoreError(f"job {job_id!r} not found")
            for key, value in fields.items():
                setattr(row, key, value)

    @_retry_locked
    def transition_job(self, job_id: str, state: str, *, unless: Sequence[str] = ("cancelled",), **fields: Any) -> bool:
        """Sets the job's ``state`` (and ``fields``) in one compare-and-set, unless its stored state is
        one of ``unless``; ``False`` when it was (a cancel that landed first is never overwritten)."""
        if state not in JOB_STATES:
            raise StoreError(f"transition_job: state must be one of {JOB_STATES}")
        unknown = set(fields) - {"elapsed_s", "error"}
        if unknown:
            raise StoreError(f"transition_job: cannot set {sorted(unknown)}")
        with self._session() as s:
            done: CursorResult[Any] = s.execute(  # type: ignore[assignment]
                update(_Job).where(_Job.id == job_id, _Job.state.not_in(list(unless))).values(state=state, **fields)
            )
            return done.rowcount == 1

    @_retry_locked
    def record_elapsed(self, job_id: str, elapsed_s: float) -> bool:
        """Stores a running job's elapsed time; ``False`` (nothing written) once it is no longer
        ``running`` — a cancel landed — so its runner stops at its next trial, not its next heartbeat."""
        with self._session() as s:
            done: CursorResult[Any] = s.execute(  # type: ignore[assignment]
                update(_Job).where(_Job.id == job_id, _Job.state == "running").values(elapsed_s=elapsed_s)
            )
            return done.rowcount == 1

    def delete_job(self, job_id: str) -> None:
        """Deletes a job with its trials, fronts, artifact rows and lease (files an artifact names
        stay on disk), and its Optuna study if it has one in this database.

        Raises:
            StoreError: the job does not exist.
            JobBusy: a runner is running it (stop it first; a lease left by a dead runner is
                taken over and the job deleted).
        """
        self.job(job_id)  # a clear "not found"
        runner = f"delete-{secrets.token_hex(4)}"
        try:
            self.acquire_lease(job_id, runner, ttl_s=60.0)  # no runner can start it while it goes
        except JobBusy as exc:
            stop = f"; stop it first (`nas cancel {job_id}`, or cancel on the page), then delete it"
            raise JobBusy(f"{exc}{stop}", f"{exc.public}{stop}") from None
        with self._session() as s:
            for table in (_Trial, _Front, _Artifact):
                s.execute(delete(table).where(table.job_id == job_id))
            s.execute(delete(_Job).where(_Job.id == job_id))
            s.execute(delete(_Lease).where(_Lease.job_id == job_id))
        self._delete_studies(job_id)

    @_retry_locked
    def cancel_job(self, job_id: str) -> str:
        """Stops a job that has not finished; returns the state it had.

        A queued (``created``) or ``interrupted`` job is marked ``cancelled``; a running one also
        loses its lease, so its runner stops at its next heartbeat (every lease TTL / 6: 10 s by
        default), dropping the evaluations in flight, and leaves the state alone. ``nas resume``
        continues a cancelled job.

        Raises:
            StoreError: the job does not exist, or has already finished (``done``, ``failed``,
                ``cancelled``).
        """
        with self._session() as s:
            row = s.get(_Job, job_id)
            if row is None:
                raise StoreError(self._not_found(job_id))
            if row.state in ("done", "failed", "cancelled"):
                raise JobBusy(f"job {job_id} is {row.state}: there is nothing to cancel")
            before = row.state
            row.state, row.error = "cancelled", "cancelled; `nas resume` continues it"
            s.execute(delete(_Lease).where(_Lease.job_id == job_id))
            return str(before)

    def _delete_studies(self, job_id: str) -> None:
        """Deletes the job's Optuna study (``nas-<id>`` or ``nas-<id>-<name>``)."""
        if not inspect(self.engine).has_table("studies"):  # no Optuna job ever used this database
            return
        try:
            import optuna
        except ImportError:
            return
        for name in optuna.get_all_study_names(storage=self.connection_url):
            if is_job_study(name, job_id):
                with contextlib.suppress(KeyError):  # deleted meanwhile
                    optuna.delete_study(study_name=name, storage=self.connection_url)

    # ------------------------------------------------------------ leases (one runner per job)
    @_retry_locked
    def acquire_lease(self, job_id: str, runner: str, ttl_s: float) -> LeaseRecord:
        """Makes ``runner`` the only runner of ``job_id`` for ``ttl_s`` seconds (renew with :meth:`renew_lease`).

        A lease whose heartbeat expired, or whose runner was a process of this host that no
        longer exists, is taken over; the takeover is a compare-and-set, so of two runners
        racing for a job exactly one wins.

        Raises:
            JobBusy: while another runner's lease is live.
        """
        now = _now()
        expires = now + dt.timedelta(seconds=ttl_s)
        try:
            with self._session() as s:
                row = s.get(_Lease, job_id)
                if row is None:
                    s.add(_Lease(job_id=job_id, runner=runner, acquired_at=now, heartbeat_at=now, expires_at=expires))
                    s.flush()
                else:
                    held = _lease(row)
                    if held.runner != runner and held.live(now):
                        raise JobBusy(self._busy_message(held, now), self._busy_message(held, now, public=True))
                    taken: CursorResult[Any] = s.execute(  # type: ignore[assignment]
                        update(_Lease)
                        .where(_Lease.job_id == job_id, _Lease.runner == held.runner,
                               _Lease.expires_at == held.expires_at)
                        .values(runner=runner, acquired_at=now, heartbeat_at=now, expires_at=expires)
                    )  # fmt: skip
                    if taken.rowcount != 1:
                        raise JobBusy(f"job {job_id}: another runner took it over at the same moment")
                    if held.runner != runner:
                        logger.warning("job %s: taking over from runner %s (no heartbeat since %s)", job_id,
                                       held.runner, held.heartbeat_at.isoformat(timespec="seconds"))  # fmt: skip
        except IntegrityError:
            raise JobBusy(f"job {job_id}: another runner started it at the same moment") from None
        return LeaseRecord(job_id, runner, now, now, expires)

    def _busy_message(self, held: LeaseRecord, now: dt.datetime, public: bool = False) -> str:
        age = (now - held.heartbeat_at).total_seconds()
        left = (held.expires_at - now).total_seconds()
        who = "another runner" if public else held.runner
        return (
            f"job {held.job_id} is being run by {who} (last heartbeat {age:.0f} s ago); only one runner "
            f"may run a job. If that runner is gone, `nas resume {held.job_id}` takes over once its lease "
            f"expires (in {max(left, 0):.0f} s)"
        )

    @_retry_locked
    def renew_lease(self, job_id: str, runner: str, ttl_s: float) -> bool:
        """Extends ``runner``'s lease; ``False`` if it no longer holds it (taken over)."""
        now = _now()
        with self._session() as s:
            result: CursorResult[Any] = s.execute(  # type: ignore[assignment]
                update(_Lease).where(_Lease.job_id == job_id, _Lease.runner == runner)
                .values(heartbeat_at=now, expires_at=now + dt.timedelta(seconds=ttl_s))
            )  # fmt: skip
            return result.rowcount == 1

    @_retry_locked
    def release_lease(self, job_id: str, runner: str) -> None:
        """Ends ``runner``'s lease (no effect if another runner holds it)."""
        with self._session() as s:
            s.execute(delete(_Lease).where(_Lease.job_id == job_id, _Lease.runner == runner))

    @_retry_locked
    def lease(self, job_id: str) -> LeaseRecord | None:
        """The job's lease row, live or expired, or ``None``."""
        with self._session() as s:
            row = s.get(_Lease, job_id)
            return _lease(row) if row is not None else None

    @_retry_locked
    def leases(self) -> dict[str, LeaseRecord]:
        with self._session() as s:
            return {r.job_id: _lease(r) for r in s.scalars(select(_Lease))}

    # ------------------------------------------------------------ trials
    @_retry_locked
    def add_trial(self, job_id: str, trial_id: int, arch: Any, worker: str | None = None) -> None:
        """Records a trial as running (idempotent for a trial already running)."""
        with self._session() as s:
            existing = s.scalar(select(_Trial).where(_Trial.job_id == job_id, _Trial.trial_id == trial_id))
            if existing is not None:
                if existing.state != "running":
                    raise StoreError(f"job {job_id}: trial {trial_id} already finished ({existing.state})")
                existing.worker = worker
                return
            s.add(_Trial(job_id=job_id, trial_id=trial_id, arch_id=arch.arch_id, arch=arch.to_dict(), worker=worker))

    @_retry_locked
    def finish_trial(
        self,
        job_id: str,
        trial_id: int,
        metrics: Mapping[str, float] | None = None,
        error: str | None = None,
        worker: str | None = None,
    ) -> None:
        """Marks a trial complete (with metrics) or failed (with its error)."""
        with self._session() as s:
            row = s.scalar(select(_Trial).where(_Trial.job_id == job_id, _Trial.trial_id == trial_id))
            if row is None:
                raise StoreError(f"job {job_id}: no trial {trial_id}")
            row.state = "failed" if metrics is None else "complete"
            row.metrics = _finite(metrics or {})
            row.error = error if metrics is None else None
            row.finished_at = _now()
            if worker is not None:
                row.worker = worker

    @_retry_locked
    def trials(self, job_id: str, states: Sequence[str] | None = None) -> list[TrialRecord]:
        with self._session() as s:
            query = select(_Trial).where(_Trial.job_id == job_id)
            if states is not None:
                query = query.where(_Trial.state.in_(list(states)))
            return [_trial(r) for r in s.scalars(query.order_by(_Trial.trial_id))]

    @_retry_locked
    def trials_by_id(self, job_id: str, trial_ids: Sequence[int]) -> list[TrialRecord]:
        """The job's trials with these ids (a front's members), in id order."""
        if not trial_ids:
            return []
        with self._session() as s:
            query = select(_Trial).where(_Trial.job_id == job_id, _Trial.trial_id.in_([int(i) for i in trial_ids]))
            return [_trial(r) for r in s.scalars(query.order_by(_Trial.trial_id))]

    @_retry_locked
    def counts(self, job_id: str) -> dict[str, int]:
        """Trials per state."""
        out = dict.fromkeys(TRIAL_STATES, 0)
        with self._session() as s:
            query = select(_Trial.state, func.count()).where(_Trial.job_id == job_id).group_by(_Trial.state)
            for state, n in s.execute(query):
                out[state] = int(n)
        return out

    @staticmethod
    def _version_columns(job_id: Any) -> tuple[Any, Any]:
        done = (_Trial.job_id == job_id, _Trial.state == "complete")
        last = select(func.max(_Trial.finished_at)).where(*done).scalar_subquery()
        count = select(func.count()).where(*done, _Trial.finished_at == last).scalar_subquery()
        return last, count

    @_retry_locked
    def trial_version(self, job_id: str) -> tuple[str | None, int]:
        """Changes whenever a trial of the job completes: (last completion time, trials completed
        at that time). Finished trials never change, so a front computed at one version holds
        until the next. Two index lookups, however many trials the job has."""
        with self.engine.connect() as c:
            when, n = c.execute(select(*self._version_columns(job_id))).one()
            return None if when is None else str(when), int(n)

    @_retry_locked
    def trials_version(self, job_id: str) -> tuple[int, int, str | None]:
        """Changes whenever a trial of the job is added or finishes: (trials, finished trials, last
        finish time), in one indexed query."""
        query = select(func.count(), func.count(_Trial.finished_at), func.max(_Trial.finished_at)).where(
            _Trial.job_id == job_id
        )
        with self.engine.connect() as c:
            n, finished, last = c.execute(query).one()
            return int(n), int(finished), None if last is None else str(last)

    @_retry_locked
    def job_status(self, job_id: str) -> tuple[str, LeaseRecord | None, tuple[str | None, int]]:
        """The job's stored state, its lease and :meth:`trial_version`, in one query (what a
        cached front needs per request)."""
        lease = (_Lease.runner, _Lease.acquired_at, _Lease.heartbeat_at, _Lease.expires_at)
        query = (
            select(_Job.state, *lease, *self._version_columns(job_id))
            .select_from(_Job)
            .outerjoin(_Lease, _Lease.job_id == _Job.id)
            .where(_Job.id == job_id)
        )
        with self.engine.connect() as c:
            row = c.execute(query).first()
        if row is None:
            raise StoreError(self._not_found(job_id))
        state, runner, acquired, heartbeat, expires, when, n = row
        held = None if runner is None else LeaseRecord(job_id, runner, acquired, heartbeat, expires)
        return str(state), held, (None if when is None else str(when), int(n))

    # ------------------------------------------------------------ fronts and artifacts
    @_retry_locked
    def save_front(self, job_id: str, evaluations: int, trial_ids: Sequence[int], hypervolume: float | None) -> None:
        with self._session() as s:
            s.add(
                _Front(job_id=job_id, evaluations=evaluations, trial_ids=[int(t) for t in trial_ids],
                       hypervolume=hypervolume)
            )  # fmt: skip

    @_retry_locked
    def fronts(self, job_id: str) -> list[FrontRecord]:
        """Every recorded front of a job, oldest first (hypervolume over evaluations)."""
        with self._session() as s:
            rows = s.scalars(select(_Front).where(_Front.job_id == job_id).order_by(_Front.id))
            return [FrontRecord(r.job_id, r.evaluations, list(r.trial_ids), r.hypervolume, r.created_at) for r in rows]

    @_retry_locked
    def last_front(self, job_id: str) -> FrontRecord | None:
        """The job's latest front (None before its first)."""
        with self._session() as s:
            r = s.scalars(select(_Front).where(_Front.job_id == job_id).order_by(_Front.id.desc()).limit(1)).first()
            return (
                None
                if r is None
                else FrontRecord(r.job_id, r.evaluations, list(r.trial_ids), r.hypervolume, r.created_at)
            )

    @_retry_locked
    def hypervolume_history(self, job_id: str) -> list[tuple[int, float | None]]:
        """(evaluations, hypervolume) each time the front changed, oldest first (no member lists)."""
        with self._session() as s:
            query = select(_Front.evaluations, _Front.hypervolume).where(_Front.job_id == job_id).order_by(_Front.id)
            return [(int(e), None if h is None else float(h)) for e, h in s.execute(query)]

    @_retry_locked
    def add_artifact(
        self, kind: str, path: str | Path, job_id: str | None = None, meta: Mapping[str, Any] | None = None
    ) -> ArtifactRecord:
        path = Path(path)
        if not path.is_file():
            raise StoreError(f"artifact {path} is not a file")
        record = ArtifactRecord(job_id, kind, str(path.resolve()), sha256_file(path), dict(meta or {}), _now())
        with self._session() as s:
            # One record per (job, kind, path): writing the file again updates its checksum and meta.
            same = (_Artifact.job_id == job_id, _Artifact.kind == kind, _Artifact.path == record.path)
            row = s.scalars(select(_Artifact).where(*same)).first()
            if row is None:
                s.add(_Artifact(job_id=job_id, kind=kind, path=record.path, sha256=record.sha256, meta=record.meta))
            else:
                row.sha256, row.meta = record.sha256, record.meta
        return record

    @_retry_locked
    def artifacts(self, job_id: str | None = None, kind: str | None = None) -> list[ArtifactRecord]:
        with self._session() as s:
            query = select(_Artifact)
            if job_id is not None:
                query = query.where(_Artifact.job_id == job_id)
            if kind is not None:
                query = query.where(_Artifact.kind == kind)
            return [
                ArtifactRecord(r.job_id, r.kind, r.path, r.sha256, dict(r.meta or {}), r.created_at)
                for r in s.scalars(query.order_by(_Artifact.id))
            ]

    # ------------------------------------------------------------ devices
    @_retry_locked
    def put_device(self, name: str, settings: Mapping[str, Any], *, replace: bool = False) -> None:
        """Adds a device (``replace``: or overwrites its settings, keeping its latencies)."""
        with self._session() as s:
            row = s.get(_Device, name)
            if row is not None and not replace:
                raise StoreError(f"device {name!r} exists in {self.safe_url}; give --replace to change its settings")
            if row is None:
                s.add(_Device(name=name, settings=dict(settings)))
            else:
                row.settings = dict(settings)

    @_retry_locked
    def devices(self) -> list[DeviceRow]:
        with self._session() as s:
            rows = s.scalars(select(_Device).order_by(_Device.name))
            return [DeviceRow(r.name, dict(r.settings), r.created_at, r.updated_at) for r in rows]

    @_retry_locked
    def device(self, name: str) -> DeviceRow | None:
        with self._session() as s:
            row = s.get(_Device, name)
            return None if row is None else DeviceRow(row.name, dict(row.settings), row.created_at, row.updated_at)

    @_retry_locked
    def delete_device(self, name: str) -> bool:
        """Removes a device and its latency tables and models; False when there was none."""
        with self._session() as s:
            s.execute(delete(_DeviceLatency).where(_DeviceLatency.device == name))
            result: CursorResult[Any] = s.execute(delete(_Device).where(_Device.name == name))  # type: ignore[assignment]
            return bool(result.rowcount)

    @_retry_locked
    def add_device_latency(
        self, device: str, space_id: str, kind: str, data: Mapping[str, Any], summary: Mapping[str, Any]
    ) -> int:
        with self._session() as s:
            if s.get(_Device, device) is None:
                raise StoreError(f"device {device!r} not found in {self.safe_url}; `nas devices add {device} ...`")
            row = _DeviceLatency(device=device, space_id=space_id, kind=kind, data=dict(data), summary=dict(summary))
            s.add(row)
            s.flush()
            return int(row.id)

    @_retry_locked
    def device_latencies(
        self, device: str | None = None, space_id: str | None = None, kind: str | None = None, *, data: bool = False
    ) -> list[LatencyRecord]:
        """A device's (or every device's) latency tables and models, oldest first."""
        with self._session() as s:
            query = select(_DeviceLatency)
            for column, value in ((_DeviceLatency.device, device), (_DeviceLatency.space_id, space_id),
                                  (_DeviceLatency.kind, kind)):  # fmt: skip
                if value is not None:
                    query = query.where(column == value)
            rows = s.scalars(query.order_by(_DeviceLatency.id))
            return [_latency(r, data) for r in rows]

    @_retry_locked
    def device_latency(self, latency_id: int) -> LatencyRecord:
        with self._session() as s:
            r = s.get(_DeviceLatency, latency_id)
            if r is None:
                raise StoreError(f"latency table {latency_id} not found in {self.safe_url}; `nas devices` lists them")
            return _latency(r, True)

    @_retry_locked
    def update_latency_summary(self, latency_id: int, summary: Mapping[str, Any]) -> None:
        with self._session() as s:
            r = s.get(_DeviceLatency, latency_id)
            if r is None:
                raise StoreError(f"latency table {latency_id} not found in {self.safe_url}")
            r.summary = {**(r.summary or {}), **summary}
