"""Measuring a device where it is: in this process, on its Ray node, or through its command.

On a Ray node: the node offers a custom resource naming the device (``ray start --address HEAD
--resources '{"device:pi4": 1}'``) and the measurement is a Ray task asking for one unit of it,
so it runs there, one at a time, and its answer (a table with the node's own provenance, a
validation, latencies) comes back to the store.

Three things are measured on a device, each the same way wherever the device is: a latency
table (:func:`predictors.latency.build_table`), its validation on random subnets
(:func:`predictors.latency.validate_table`) and given subnets end to end (to calibrate a new
device from the fleet, or every subnet a search evaluates: :class:`MeasuredLatency`, the
``evaluator.latency_measure`` of a job). :func:`measure` runs one of them at the device's place.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.core.arch import Arch
from nas.core.config import ConfigError
from nas.core.evaluator import Evaluator
from nas.core.space import SearchSpace, space_record
from nas.devices import Device, default_work
from nas.ray_address import RayConnectionError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """What to measure: ``table`` (calibration subnets, rounds, seed), ``validate`` (a table's
    subnets) or ``archs`` (given archs end to end)."""

    kind: str
    rounds: int = 1
    calibration: int = 20
    seed: int = 0  # table: the ops' inputs and weights; validate: the random subnets (validate's default 1)
    archs: int = 100  # validate: how many random subnets
    table: dict[str, Any] | None = None  # validate: the table (to_dict)
    arch_list: tuple[dict[str, Any], ...] = ()  # archs: which


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _timers(device: Device, space: SearchSpace, work: Path | None) -> tuple[Any, Any, Any]:
    """(layer timer, arch timer, the command timer) for ``build_table`` / ``validate_table``:
    None for the backend's own."""
    if device.place != "command":
        return None, None, None
    from predictors.latency.command import DEFAULT_PATTERN, CommandSpec, CommandTimer

    assert device.command is not None
    spec = CommandSpec(device.command, device.pattern or DEFAULT_PATTERN, device.timeout_s, device.retries)
    folder = (work or default_work(device.name)) / space.space_id.replace("/", "_")
    timer = CommandTimer(spec, folder, device.batch, device.threads or 1)
    return timer.layer, lambda arch: timer.arch(space, arch), timer


def measure_here(
    device: Device, space: SearchSpace, job: Job, *, work: Path | None = None, progress: bool = True, place: str = ""
) -> dict[str, Any]:
    """Runs ``job`` in this process (for a command device: through its command). Returns
    ``{"table": ...}``, ``{"validation": ...}`` or ``{"latency_ms": [...]}``."""
    layer_timer, arch_timer, command = _timers(device, space, work)
    with _threads(device.threads):
        out = _run(device, space, job, layer_timer, arch_timer, progress, place)
    if command is not None:
        command.done()
    return out


def _run(device: Device, space: SearchSpace, job: Job, layer_timer: Any, arch_timer: Any, progress: bool,
         place: str) -> dict[str, Any]:  # fmt: skip
    from predictors.latency import LatencyTable, build_table, validate_table
    from predictors.latency.timers import _in_rounds

    if job.kind == "table":
        table = build_table(
            space, device=device.target, dtype=device.dtype, batch=device.batch, backend=device.runtime,
            calibration_archs=job.calibration, seed=job.seed, rounds=job.rounds, progress=progress,
            layer_timer=layer_timer, arch_timer=arch_timer, place=place or device.place,
        )  # fmt: skip
        table.device_name = device.name
        if table.provenance is not None and device.place == "command":
            table.provenance["command"] = device.command
        return {"table": table.to_dict()}
    if job.kind == "validate":
        assert job.table is not None
        table = LatencyTable.from_dict(job.table)
        report = validate_table(
            table, space, job.archs, seed=job.seed, arch_timer=arch_timer, rounds=job.rounds, progress=progress
        )
        return {"validation": report}
    if job.kind == "archs":
        from predictors.latency import backends

        archs = [space.make(a) for a in job.arch_list]
        timer = arch_timer or (
            lambda a: backends.measure_arch(
                space, a, device.batch, device.target, device.dtype, device.runtime, job.rounds
            )
        )
        timings = _in_rounds(archs, timer, job.rounds, "measure", progress)
        return {"latency_ms": [t["mean_ms"] for t in timings]}
    raise ValueError(f"measure: unknown job kind {job.kind!r}")


def measure(
    device: Device,
    space: SearchSpace,
    job: Job,
    *,
    ray_address: str | None = None,
    work: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Runs ``job`` at the device's place: here (``local``, ``command``) or on the Ray node that
    offers the device's resource (``ray``; ``ray_address`` names the cluster)."""
    if device.place == "ray":
        return measure_on_ray(device, space, job, ray_address)
    if ray_address:
        logger.info("device %s is measured %s, not through Ray", device.name, device.place)
    return measure_here(device, space, job, work=work, progress=progress)


def measure_archs(
    device: Device, space: SearchSpace, archs: Sequence[Arch], rounds: int = 1, **kwargs: Any
) -> list[float]:
    """End-to-end latency (ms) of ``archs`` on the device, wherever it is."""
    job = Job("archs", rounds=rounds, arch_list=tuple(space.make(a).to_dict() for a in archs))
    return [float(v) for v in measure(device, space, job, **kwargs)["latency_ms"]]


def _remote_measure(
    settings: dict[str, Any], name: str, space_name: str, space_ref: dict[str, Any] | None, job: Job
) -> dict[str, Any]:
    """Runs on the device's node: rebuilds the space and measures there."""
    import socket

    import ray

    from nas.core.space import create_space, space_from_record

    device = Device.from_settings(name, settings)
    space = space_from_record(space_ref) if space_ref else create_space(space_name)
    context = ray.get_runtime_context()
    node = context.get_node_id()
    place = f"ray:{device.resource}@{socket.gethostname()}"
    out = measure_here(device, space, job, progress=False, place=place)
    out["node_id"] = node
    if "table" in out and out["table"].get("provenance") is not None:
        out["table"]["provenance"].update(ray_node_id=node, ray_resources=context.get_assigned_resources())
    return out


def measure_on_ray(device: Device, space: SearchSpace, job: Job, address: str | None) -> dict[str, Any]:
    """Runs ``job`` on the node offering ``device.resource`` in the cluster at ``address``.

    Raises:
        RayConnectionError: no cluster at the address, or no node offering the resource.
    """
    import ray

    from nas.ray_runner import ray_init

    connected = ray.is_initialized()  # already in the cluster: a search's Ray Tune worker
    if not address and not connected:
        raise RayConnectionError(
            f"device {device.name} is measured on its Ray node (resource {device.resource}); give the "
            "cluster's head with --ray-address HOST:PORT"
        )
    assert device.resource is not None
    if not connected:
        ray_init(address)
    try:
        offered = ray.cluster_resources()
        if device.resource not in offered:
            where = f"at {address}" if address else "this search runs on"
            raise RayConnectionError(
                f"no node of the Ray cluster {where} offers resource {device.resource!r} (it offers "
                f"{', '.join(sorted(k for k in offered if not k.startswith('node:'))) or 'nothing'}); start the "
                f"device's node with `ray start --address {address or 'HEAD:6379'} "
                f"--resources '{{\"{device.resource}\": 1}}'`"
            )
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        # outside any placement group: a search's Ray Tune trial holds one sized for itself, which
        # its child tasks would otherwise be confined to (and the device's node is not in it)
        free = PlacementGroupSchedulingStrategy(placement_group=None)  # type: ignore[arg-type]  # None: no group (documented)
        task = ray.remote(num_cpus=0, resources={device.resource: 1}, max_retries=0, scheduling_strategy=free)(
            _remote_measure
        )
        logger.info("measuring %s on the node offering %s", device.name, device.resource)
        answer: Any = ray.get(task.remote(device.to_dict(), device.name, space.name, space_record(space), job))
        return dict(answer)
    finally:
        if not connected:
            ray.shutdown()


class MeasuredLatency(Evaluator):
    """An evaluator that also measures ``latency_ms@DEVICE`` of every subnet it evaluates, end to
    end on the device, wherever it is (this process, its Ray node, or its command): the
    ``evaluator.latency_measure`` of a job. The other metrics, cheap ones included, are the inner
    evaluator's; the measured latency is an expensive metric (a predictor-in-the-loop searcher
    screens candidates on the cheap ones and measures the ones it evaluates).
    """

    def __init__(self, inner: Evaluator, space: SearchSpace, device: Device, rounds: int = 3,
                 ray_address: str | None = None) -> None:  # fmt: skip
        self.inner = inner
        self.space = space
        self.device = device
        self.rounds = rounds
        self.ray_address = ray_address
        self.metric = f"latency_ms@{device.name}"
        if self.metric in inner.metrics:
            raise ConfigError(
                f"evaluator: its latency table already gives {self.metric}; drop latency_measure or the table"
            )

    @property
    def metrics(self) -> tuple[str, ...]:
        return (*self.inner.metrics, self.metric)

    @property
    def cheap_metrics(self) -> tuple[str, ...]:
        return tuple(getattr(self.inner, "cheap_metrics", ()))

    def evaluate_cheap(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        cheap = getattr(self.inner, "evaluate_cheap", None)
        return cheap(archs) if callable(cheap) else [{} for _ in archs]

    def evaluate(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        rows = self.inner.evaluate(archs)
        latencies = measure_archs(
            self.device, self.space, archs, rounds=self.rounds, ray_address=self.ray_address, progress=False
        )
        return [{**row, self.metric: ms} for row, ms in zip(rows, latencies, strict=True)]


def measure_resolver(catalog: Any, ray_address: str | None = None) -> Any:
    """How a job's evaluator finds ``latency_measure``: the device of the store's ``catalog``
    (a :class:`nas.devices.DeviceCatalog`) measured where it is, through the cluster at
    ``ray_address`` for a device on a Ray node."""

    def wrap(inner: Evaluator, space: SearchSpace, name: str, rounds: int) -> Evaluator:
        device = catalog.get(name)
        if device.place == "ray" and not ray_address:
            raise ConfigError(
                f"evaluator.latency_measure: device {name} is measured on its Ray node (resource "
                f"{device.resource}); run the job with --ray-address HEAD:6379, the cluster that node joined"
            )
        from nas.core.capabilities import PrecisionSpace
        from predictors.latency import latency_backend

        if isinstance(space, PrecisionSpace) and space.precision_choices:  # its subnets run int8 layers
            try:
                latency_backend(device.runtime).check_precisions(device.runtime, space.precision_choices)
            except ValueError as exc:
                raise ConfigError(f"evaluator.latency_measure: device {name}: {exc}") from None
        return MeasuredLatency(inner, space, device, rounds, ray_address)

    return wrap
