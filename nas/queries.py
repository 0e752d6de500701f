"""Read-side queries over the store shared by the CLI and the HTTP service: job summaries, fronts, plots."""

from __future__ import annotations

import gzip
import io
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.core.errors import ConfigError
from nas.store import LeaseRecord, Store


def effective_state(job: Any, lease: LeaseRecord | None) -> str:
    """The job's state as users should see it: ``running`` only while a runner's lease is live.

    ``job``: the job record or its stored state. A job stored as running whose runner stopped
    heartbeating (killed, machine lost) is ``interrupted``: ``nas resume`` takes it over.
    """
    state = job if isinstance(job, str) else job.state
    if state == "running" and (lease is None or not lease.live()):
        return "interrupted"
    return str(state)


def job_summary(store: Store, job: Any, leases: Mapping[str, LeaseRecord] | None = None) -> dict[str, Any]:
    """One job's state, progress, best value per objective (over its latest front) and hypervolume.

    ``leases``: every job's lease, when the caller read them at once (default: read this job's).
    """
    lease = leases.get(job.id) if leases is not None else store.lease(job.id)
    counts = store.counts(job.id)
    last = store.last_front(job.id)
    best: dict[str, float] = {}
    if last is not None:
        trials = {t.trial_id: t for t in store.trials_by_id(job.id, last.trial_ids) if t.state == "complete"}
        for o in job.spec["objectives"]:
            found = [trials[i].metrics.get(o["metric"]) for i in last.trial_ids if i in trials]
            values = [v for v in found if v is not None]
            if values:
                best[o["metric"]] = max(values) if o.get("direction") == "max" else min(values)
    return {
        "job_id": job.id, "name": job.name, "state": effective_state(job, lease), "space": job.space_id,
        "searcher": job.spec["searcher"]["kind"], "evaluator": (job.spec.get("evaluator") or {}).get("kind"),
        "done": counts["complete"] + counts["failed"],
        "running": counts["running"], "failed": counts["failed"], "budget": job.budget, "best": best,
        "hypervolume": last.hypervolume if last else None, "elapsed_s": round(job.elapsed_s, 1),
        "error": job.error,
    }  # fmt: skip


def job_summaries(store: Store) -> list[dict[str, Any]]:
    """:func:`job_summary` of every job, oldest first."""
    leases = store.leases()
    return [job_summary(store, job, leases) for job in store.jobs()]


def latency_metric(objectives: list[dict[str, Any]], override: str | None = None) -> str | None:
    """The job's latency objective (first ``latency*`` metric), unless named."""
    if override:
        return override
    return next((o["metric"] for o in objectives if o["metric"].startswith("latency")), None)


@dataclass
class _Front:
    job: Any
    objectives: list[Any]
    constraints: list[Any]  # the job's, then the query's bounds
    spec_constraints: int  # how many of them are the job's
    trials: list[Any]
    points: list[dict[str, float]]
    front: list[int]  # indices into trials


def _front(
    store: Store,
    job_id: str,
    *,
    max_latency: float | None = None,
    min_accuracy: float | None = None,
    latency: str | None = None,
    accuracy_metric: str = "accuracy",
) -> _Front:
    from nas.core.pareto import Constraint, Objective, pareto_front

    job = store.job(job_id)
    objectives = [Objective(o["metric"], o.get("direction", "min")) for o in job.spec["objectives"]]
    constraints = [Constraint(c["metric"], c.get("min"), c.get("max")) for c in job.spec.get("constraints", [])]
    known = [o.metric for o in objectives] + [c.metric for c in constraints]
    for option, name in (("--latency-metric", latency), ("--accuracy-metric", accuracy_metric)):
        if name is not None and name not in known and (option == "--latency-metric" or min_accuracy is not None):
            raise ConfigError(
                f"{option}: job {job.id} has no metric {name!r}; its metrics are {', '.join(dict.fromkeys(known))}"
            )
    latency = latency_metric(job.spec["objectives"], latency)
    spec_constraints = len(constraints)
    if max_latency is not None:
        if latency is None:
            raise ConfigError("max_latency: the job has no latency objective; name the metric (--latency-metric)")
        constraints.append(Constraint(latency, max=max_latency))
    if min_accuracy is not None:
        constraints.append(Constraint(accuracy_metric, min=min_accuracy))
    trials = store.trials(job.id, ["complete"])
    points = [{k: (math.nan if v is None else v) for k, v in t.metrics.items()} for t in trials]
    if min_accuracy is not None and min_accuracy > 1:
        seen = [p[accuracy_metric] for p in points if math.isfinite(p.get(accuracy_metric, math.nan))]
        if seen and max(seen) <= 1:  # a percentage given for a fraction: it would silently empty the front
            raise ConfigError(
                f"--min-accuracy {min_accuracy:g}: {accuracy_metric} of job {job.id} is a fraction (at most "
                f"{max(seen):.4g} here); for {min_accuracy:g}% give {min_accuracy / 100:g}"
            )
    front = pareto_front(points, objectives, constraints) if points else []
    return _Front(job, objectives, constraints, spec_constraints, trials, points, front)


def front_query(
    store: Store,
    job_id: str,
    *,
    max_latency: float | None = None,
    min_accuracy: float | None = None,
    latency: str | None = None,
    accuracy_metric: str = "accuracy",
    plot: str | Any | None = None,
) -> dict[str, Any]:
    """A job's feasible Pareto front under its constraints and the extra bounds, sorted by the last objective.

    ``plot``: a path or binary file object to draw the front into (PNG).
    """
    from nas.core.pareto import hypervolume
    from nas.trials import reference_point

    f = _front(store, job_id, max_latency=max_latency, min_accuracy=min_accuracy, latency=latency,
               accuracy_metric=accuracy_metric)  # fmt: skip
    job, objectives, constraints = f.job, f.objectives, f.constraints
    ref = reference_point(f.points, objectives, job.spec.get("reference"))
    hv = hypervolume(f.points, objectives, ref, constraints) if ref else None
    text = arch_formatter(job.space_id, job.spec.get("space"))
    rows = [{**f.trials[i].to_dict(), "arch_text": text(f.trials[i].arch)} for i in f.front]
    order = objectives[-1]
    rows.sort(key=lambda r: r["metrics"].get(order.metric) or 0.0)
    if plot is not None:
        plot_front(
            f.points, f.front, objectives, constraints[: f.spec_constraints], plot, title=f"{job.name} ({job.id})",
            bounds=constraints[f.spec_constraints :],
        )  # fmt: skip
    return {
        "job_id": job.id,
        "space_id": job.space_id,
        "state": effective_state(job, store.lease(job.id)),
        "objectives": [o.metric for o in objectives],
        "directions": [o.direction for o in objectives],
        "constraints": [c.__dict__ for c in constraints],
        "evaluated": len(f.trials),
        "hypervolume": hv,
        # the point the hypervolume is measured from: fixed for the job once recorded in its spec
        "reference": ref,
        "reference_fixed": job.spec.get("reference") is not None,
        "front": rows,
    }


def scatter_points(
    store: Store,
    job_id: str,
    *,
    max_latency: float | None = None,
    min_accuracy: float | None = None,
    latency: str | None = None,
    accuracy_metric: str = "accuracy",
) -> dict[str, Any]:
    """Every completed trial of a job as columns, for an interactive plot: its objective and
    constraint metrics, whether it meets the job's constraints and the query's bounds, whether it
    is on the front, and its arch in the space's notation."""
    from nas.core.pareto import feasible

    f = _front(store, job_id, max_latency=max_latency, min_accuracy=min_accuracy, latency=latency,
               accuracy_metric=accuracy_metric)  # fmt: skip
    metrics = list(dict.fromkeys([o.metric for o in f.objectives] + [c.metric for c in f.constraints]))
    meets_job = set(feasible(f.points, f.constraints[: f.spec_constraints]))
    meets_all = set(feasible(f.points, f.constraints))
    on_front = set(f.front)
    text = arch_formatter(f.job.space_id, f.job.spec.get("space"))

    def value(point: dict[str, float], metric: str) -> float | None:
        v = point.get(metric, math.nan)
        return None if not math.isfinite(v) else v

    return {
        "job_id": f.job.id,
        "objectives": [{"metric": o.metric, "direction": o.direction} for o in f.objectives],
        "constraints": [c.__dict__ for c in f.constraints[: f.spec_constraints]],
        "bounds": [c.__dict__ for c in f.constraints[f.spec_constraints :]],
        "trial_id": [t.trial_id for t in f.trials],
        "values": {m: [value(p, m) for p in f.points] for m in metrics},
        "feasible": [i in meets_job for i in range(len(f.trials))],
        "within_bounds": [i in meets_all for i in range(len(f.trials))],
        "front": [i in on_front for i in range(len(f.trials))],
        "arch": [text(t.arch) for t in f.trials],
    }


def arch_formatter(space_id: str, space_spec: Any = None) -> Callable[[dict[str, Any]], str]:
    """How an arch is printed: the space's own string form where it has one (NB201's
    ``|op~0|+...|``, the vit space's ``E96 D4 | h ... | m ...``), else compact JSON — both paste
    back into ``--arch`` and specs.

    ``space_spec``: the job's ``space`` entry, which rebuilds a customised space (an id with
    ``+fingerprint``, such as one with precision genes) that the id alone cannot; registered
    spaces only, and used only when it rebuilds the job's ``space_id``.
    """
    import json

    from nas.core.space import SpaceRef, space_from_id

    def compact(arch: dict[str, Any]) -> str:
        return json.dumps(arch, separators=(",", ":"))

    space = None
    if isinstance(space_spec, Mapping) and isinstance(space_spec.get("name"), str):
        options = space_spec.get("options") or {}
        config = space_spec.get("config")
        try:
            built = SpaceRef(space_spec["name"], config, dict(options)).build(allow_code=False)
        except (ValueError, TypeError, KeyError):
            built = None
        space = built if built is not None and built.space_id == space_id else None
    if space is None:
        try:
            space = space_from_id(space_id)
        except (ValueError, TypeError, KeyError):
            return compact
    to_string = getattr(space, "to_string", None)
    if to_string is None:
        return compact
    return lambda arch: str(to_string(space.make(arch)))


def hypervolume_history(store: Store, job_id: str) -> dict[str, Any]:
    """The job's hypervolume each time its front changed, against evaluations (the runner's record)."""
    job = store.job(job_id)
    rows = store.hypervolume_history(job.id)
    return {
        "job_id": job.id,
        "evaluations": [e for e, _ in rows],
        "hypervolume": [h for _, h in rows],
        # against the reference fixed for the job (recorded in its spec; jobs from before it was
        # fixed: each value against the robust nadir of its time)
        "reference": job.spec.get("reference"),
    }


@dataclass
class _Entry:
    version: Any  # None: an answer kept for fresh_s only (QueryCache.recent)
    result: Any
    state: str
    checked: float  # clock() when the version was last read from the store
    body: bytes | None = None  # the result as JSON, rendered once (with ``body_state`` for fronts)
    body_state: str = ""
    gzipped: bytes | None = None  # ``body`` compressed, once, for clients that accept gzip


class QueryCache:
    """Fronts and hypervolume histories per job and query, reused until a trial of the job completes.

    Whether an entry still holds is read from the store (:meth:`Store.job_status`: one indexed
    query), so trials landing from any process — this service's worker, a `nas search` elsewhere
    on the same database — are seen. Within ``fresh_s`` of that read an entry is served without
    asking the store again (:meth:`peek`: no I/O, so it can answer on the event loop); the
    job's state (running, interrupted, ...) is read along with the version. Thread-safe; at most
    ``size`` entries, least recently used dropped first.
    """

    def __init__(
        self, store: Store, size: int = 256, fresh_s: float = 0.25, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.size = size
        self.fresh_s = fresh_s
        self.clock = clock
        self._entries: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.computed = 0  # fronts and histories computed from the trials (misses)

    @staticmethod
    def _key(kind: str, job_id: str, query: Mapping[str, Any]) -> tuple[Any, ...]:
        return (kind, job_id, *sorted(query.items()))

    @staticmethod
    def _view(key: tuple[Any, ...], entry: _Entry) -> Any:
        return {**entry.result, "state": entry.state} if key[0] == "front" else entry.result

    def _fresh(self, key: tuple[Any, ...]) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or self.clock() - entry.checked > self.fresh_s:
                return None
            self._entries.move_to_end(key)
            return entry

    def _peek(self, key: tuple[Any, ...]) -> Any:
        entry = self._fresh(key)
        return None if entry is None else self._view(key, entry)

    def _entry(self, key: tuple[Any, ...], compute: Callable[[], Any], read: Callable[[], tuple[Any, str]]) -> _Entry:
        """The entry of ``key``, computed again when ``read()``'s version differs from the stored one."""
        version, state = read()
        now = self.clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.version == version:
                entry.state, entry.checked = state, now
                self._entries.move_to_end(key)
                return entry
        entry = _Entry(version, compute(), state, now)
        with self._lock:
            self.computed += 1
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return entry

    def _job_version(self, job_id: str) -> tuple[Any, str]:
        stored, lease, version = self.store.job_status(job_id)
        return version, effective_state(stored, lease)

    def _get(self, key: tuple[Any, ...], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        return dict(self._view(key, self._entry(key, compute, lambda: self._job_version(key[1]))))

    def _body(self, key: tuple[Any, ...], entry: _Entry, compressed: bool = False) -> bytes:
        """The entry as JSON bytes (gzip-compressed if ``compressed``), rendered and compressed once
        per entry (and per state, for a front)."""
        with self._lock:
            if entry.body is not None and entry.body_state == entry.state:
                if not compressed:
                    return entry.body
                if entry.gzipped is not None:
                    return entry.gzipped
            state = entry.state
        body = json.dumps(self._view(key, entry), separators=(",", ":"), allow_nan=False).encode()
        packed = gzip.compress(body, compresslevel=6, mtime=0) if compressed else None
        with self._lock:
            if entry.body_state != state or entry.body != body:
                entry.gzipped = None
            entry.body, entry.body_state = body, state
            if packed is not None:
                entry.gzipped = packed
        return packed if packed is not None else body

    def peek_json(self, kind: str, job_id: str, *, compressed: bool = False, **query: Any) -> bytes | None:
        """:meth:`peek` as JSON bytes (gzip if ``compressed``; rendered once per entry): no I/O."""
        key = self._key(kind, job_id, query)
        entry = self._fresh(key)
        return None if entry is None else self._body(key, entry, compressed)

    def get_json(self, kind: str, job_id: str, *, compressed: bool = False, **query: Any) -> bytes:
        """:meth:`get` as JSON bytes (gzip if ``compressed``), rendered once per computed entry."""
        key = self._key(kind, job_id, query)
        entry = self._entry(key, lambda: self._compute(kind, job_id, query), lambda: self._job_version(job_id))
        return self._body(key, entry, compressed)

    def trials_page(self, job_id: str, compute: Callable[[], tuple[list[Any], dict[str, str]]],
                    **query: Any) -> tuple[bytes, dict[str, str]]:  # fmt: skip
        """``compute()``'s page of trials as JSON bytes, with its headers (counts), computed again
        only when a trial of the job was added or finished since (:meth:`Store.trials_version`)."""
        key = self._key("trials", job_id, query)
        entry = self._entry(key, compute, lambda: (self.store.trials_version(job_id), ""))
        with self._lock:
            if entry.body is None:
                entry.body = json.dumps(entry.result[0], separators=(",", ":"), default=str).encode()
            return entry.body, entry.result[1]

    def peek_trials_page(self, job_id: str, **query: Any) -> tuple[bytes, dict[str, str]] | None:
        """:meth:`trials_page` if it was checked within ``fresh_s`` (no I/O)."""
        entry = self._fresh(self._key("trials", job_id, query))
        if entry is None or entry.body is None:
            return None
        return entry.body, entry.result[1]

    def _compute(self, kind: str, job_id: str, query: Mapping[str, Any]) -> dict[str, Any]:
        if kind == "front":
            return front_query(self.store, job_id, **query)  # (no plot: a PNG is never cached)
        if kind == "points":
            return scatter_points(self.store, job_id, **query)
        if kind == "history" and not query:
            return hypervolume_history(self.store, job_id)
        raise ValueError(f"QueryCache: unknown query {kind!r} with {sorted(query)}")

    def peek(self, kind: str, job_id: str, **query: Any) -> dict[str, Any] | None:
        """The cached ``kind`` (front, points or history) of a job if its version was read within
        ``fresh_s``, else None (no I/O)."""
        return self._peek(self._key(kind, job_id, query))

    def get(self, kind: str, job_id: str, **query: Any) -> dict[str, Any]:
        """:func:`front_query` (``front``), :func:`scatter_points` (``points``) or
        :func:`hypervolume_history` (``history``) of a job, computed again only when a trial has
        completed since; a front carries the job's state as read now."""
        return self._get(self._key(kind, job_id, query), lambda: self._compute(kind, job_id, query))

    def recent(self, kind: str, job_id: str, compute: Callable[[], Any], **query: Any) -> Any:
        """``compute()``'s answer, reused for ``fresh_s`` after it was computed: for lists whose
        every change has no version to check (trials in all states, the job list, a summary),
        so that a burst of reads costs one store query per quarter second. Use :meth:`peek` (same
        ``kind``/``job_id``/``query``) first to answer without I/O."""
        key = self._key(kind, job_id, query)
        found = self._peek(key)
        if found is not None:
            return found
        result = compute()
        with self._lock:
            self._entries[key] = _Entry(None, result, "", self.clock())
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return result

    def png(self, job_id: str, **query: Any) -> bytes:
        """The front's plot as PNG bytes (:func:`front_query` with a plot), redrawn only when a
        trial of the job has completed since (as :meth:`get`)."""

        def draw() -> bytes:
            buf = io.BytesIO()
            front_query(self.store, job_id, **query, plot=buf)
            return buf.getvalue()

        key = self._key("png", job_id, query)
        return bytes(self._entry(key, draw, lambda: self._job_version(job_id)).result)

    def peek_png(self, job_id: str, **query: Any) -> bytes | None:
        """The cached PNG if its version was read within ``fresh_s`` (no I/O)."""
        entry = self._fresh(self._key("png", job_id, query))
        return None if entry is None else bytes(entry.result)

    def forget(self, job_id: str) -> None:
        """Drops a (deleted) job's entries."""
        with self._lock:
            for key in [k for k in self._entries if k[1] == job_id]:
                del self._entries[key]


def plot_front(points: list[dict[str, float]], front: list[int], objectives: Any, constraints: Any, out: Any,
               title: str = "", bounds: Any = ()) -> None:  # fmt: skip
    """Every evaluated arch (grey; hollow where it breaks a constraint or bound), the front as
    the staircase it dominates, the job's constraints (blue) and the query's extra bounds
    (orange) as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(objectives) < 2:
        raise ConfigError("--plot: needs at least two objectives")
    # Job names and metric names are user text: never parsed as mathtext ("$...$").
    with plt.rc_context({"text.parse_math": False, "text.usetex": False}):
        _draw_front(plt, points, front, objectives, list(constraints), list(bounds), out, title)


def _draw_front(plt: Any, points: list[dict[str, float]], front: list[int], objectives: Any, constraints: list[Any],
                bounds: list[Any], out: Any, title: str) -> None:  # fmt: skip
    from nas.core.pareto import feasible

    y_obj, x_obj = objectives[0], objectives[1]
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    xs = [p.get(x_obj.metric, math.nan) for p in points]
    ys = [p.get(y_obj.metric, math.nan) for p in points]
    ok = set(feasible(points, [*constraints, *bounds]))
    inside = [i for i in range(len(points)) if i in ok]
    outside = [i for i in range(len(points)) if i not in ok]
    ax.scatter([xs[i] for i in inside], [ys[i] for i in inside], s=12, c="0.6", label="evaluated")
    if outside:
        ax.scatter([xs[i] for i in outside], [ys[i] for i in outside], s=12, facecolors="none", edgecolors="0.7",
                   label="breaks a constraint or bound")  # fmt: skip
    order = sorted(front, key=lambda i: xs[i])
    fx, fy = [xs[i] for i in order], [ys[i] for i in order]
    # the attainment staircase: a front member covers every worse x at its own y
    ax.step(fx, fy, where="post" if x_obj.direction == "min" else "pre", c="tab:red", lw=1.2)
    ax.plot(fx, fy, "o", c="tab:red", ms=5, label="Pareto front")
    for group, colour, what in ((constraints, "tab:blue", "constraint"), (bounds, "tab:orange", "bound")):
        for c in group:
            for bound, sign in ((c.min, ">="), (c.max, "<=")):
                if bound is None:
                    continue
                label = f"{what}: {c.metric} {sign} {bound:g}"
                if c.metric == x_obj.metric:
                    ax.axvline(bound, ls="--", c=colour, lw=1, label=label)
                elif c.metric == y_obj.metric:
                    ax.axhline(bound, ls="--", c=colour, lw=1, label=label)
    ax.set_xlabel(f"{x_obj.metric} ({x_obj.direction})")
    ax.set_ylabel(f"{y_obj.metric} ({y_obj.direction})")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120, format=None if isinstance(out, (str, Path)) else "png")
    plt.close(fig)
