"""Target devices as records in the store: what a latency is measured on, where, and how.

A device (``pixel7-tflite-cpu4``, ``pi4-ort``, ``h100-trt-fp16-b64``...) is a name plus *how* its
subnets run (a latency backend, dtype, batch, threads) and *where* they are measured (its
place): ``local`` (this process), ``ray`` (a node of a Ray cluster started with a custom
resource naming the device, ``ray start --address HEAD --resources '{"device:pi4": 1}'``), or
``command`` (a device that cannot run Python: each op and subnet is written as an ONNX file and
timed by a command, :mod:`predictors.latency.command`). Its latency tables, and models
calibrated from a few measurements with the fleet as prior, live in the store with their
provenance; a job names the device (``evaluator.latency_device``) and reads
``latency_ms@NAME`` from its newest usable table.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nas.core.config import ConfigError, from_dict
from nas.core.space import SearchSpace
from nas.store import LatencyRecord, Store

logger = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PLACES = ("local", "ray", "command")
RESERVED = re.compile(r"^(cpu|cuda(:\d+)?)$")  # the ad-hoc local devices of `nas latency build --device`


@dataclass
class Device:
    """One target device (see the module docstring)."""

    name: str
    place: str = "local"
    target: str = "cpu"  # the torch device on the machine that measures: cpu or cuda[:i]
    backend: str | None = None  # default: the target's (torch on CPU, triton on CUDA); onnxruntime for command
    dtype: str = "float32"
    batch: int = 1
    threads: int | None = None
    resource: str | None = None  # ray: the custom resource that names the device's node
    command: str | None = None  # command: the template that times one model file
    pattern: str | None = None  # command: where its output says the latency (group ms or us)
    timeout_s: float = 300.0
    retries: int = 2
    description: str = ""

    def validate(self, path: str = "") -> None:
        """Raises ``ConfigError`` naming the setting that is wrong and how to fix it."""
        from predictors.latency import backend_names, check_backend

        if RESERVED.match(self.name):
            raise ConfigError(f"device name {self.name!r} means this machine's {self.name}; use e.g. my-{self.name}")
        if not NAME.match(self.name):
            raise ConfigError(
                f"device name {self.name!r}: use letters, digits, '.', '_' and '-' (up to 64, e.g. pi4-ort)"
            )
        if self.place not in PLACES:
            raise ConfigError(f"device {self.name}: place {self.place!r} is not one of {', '.join(PLACES)}")
        if self.batch < 1 or (self.threads is not None and self.threads < 1):
            raise ConfigError(f"device {self.name}: batch and threads must be >= 1")
        if self.backend is not None and self.backend not in backend_names():
            raise ConfigError(
                f"device {self.name}: unknown backend {self.backend!r}; choose one of {', '.join(backend_names())}"
            )
        if self.place == "ray" and not self.resource:
            raise ConfigError(
                f"device {self.name}: place ray needs --resource, the custom resource its node was started "
                "with (`ray start --address HEAD --resources '{\"device:pi4\": 1}'` -> --resource device:pi4)"
            )
        if self.place == "command":
            from predictors.latency.command import DEFAULT_PATTERN, CommandSpec

            if not self.command:
                raise ConfigError(
                    f"device {self.name}: place command needs --command, a program timing one model file "
                    "({model}), e.g. 'python -m nas.testing.ort_benchmark --model {model} --threads {threads}'"
                )
            if self.backend not in (None, "onnxruntime"):
                raise ConfigError(f"device {self.name}: place command times ONNX files; use --backend onnxruntime")
            try:
                CommandSpec(self.command, self.pattern or DEFAULT_PATTERN, self.timeout_s, self.retries).check()
            except ValueError as exc:
                raise ConfigError(f"device {self.name}: {exc}") from None
        elif self.command or self.pattern:
            raise ConfigError(f"device {self.name}: --command and --pattern are for place command")
        try:
            check_backend(self.runtime, self.target, self.dtype)
        except ValueError as exc:
            raise ConfigError(f"device {self.name}: {exc}") from None

    @property
    def runtime(self) -> str:
        """The latency backend its subnets run on."""
        from predictors.latency import default_backend

        if self.backend:
            return self.backend
        return "onnxruntime" if self.place == "command" else default_backend(self.target)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "name"}

    @classmethod
    def from_settings(cls, name: str, settings: dict[str, Any]) -> Device:
        return from_dict(cls, {**settings, "name": name}, f"device {name}")


def summary_of(table: Any) -> dict[str, Any]:
    """What ``nas devices`` shows of a table without loading it: verdict, host, size, correction."""
    record = table.provenance or {}
    machine = record.get("machine") or {}
    return {
        "reliable": table.reliable,
        "accepted": bool(record.get("accepted")),
        "usable": table.usable,
        "reasons": record.get("reasons", []),
        "host": machine.get("host"),
        "cpu_model": machine.get("cpu_model"),
        "place": record.get("place"),
        "ops": len(table.entries),
        "backend": table.backend,
        "batch": table.batch,
        "correction": (table.correction or {}).get("kind"),
    }


class DeviceCatalog:
    """The devices of a store, their tables and calibrated models."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, device: Device, *, replace: bool = False) -> Device:
        device.validate()
        self.store.put_device(device.name, device.to_dict(), replace=replace)
        return device

    def get(self, name: str) -> Device:
        row = self.store.device(name)
        if row is None:
            known = [d.name for d in self.store.devices()]
            raise ConfigError(
                f"device {name!r} not found in {self.store.url}"
                + (f"; known: {', '.join(known)}" if known else "; `nas devices add NAME ...` adds one")
            )
        return Device.from_settings(row.name, row.settings)

    def all(self) -> list[Device]:
        return [Device.from_settings(r.name, r.settings) for r in self.store.devices()]

    def remove(self, name: str) -> None:
        self.get(name)
        self.store.delete_device(name)

    def save_table(self, name: str, table: Any) -> int:
        """Stores a table measured for the device ``name``; returns its id."""
        table.device_name = name
        return self.store.add_device_latency(name, table.space_id, "table", table.to_dict(), summary_of(table))

    def save_model(self, name: str, space_id: str, model: dict[str, Any], summary: dict[str, Any]) -> int:
        """Stores a fleet-calibrated latency model of the device ``name`` for a space."""
        return self.store.add_device_latency(name, space_id, "fleet", model, summary)

    def usable(self, name: str, space_id: str) -> list[LatencyRecord]:
        """The device's tables and models of the space a job may use (reliable, or kept knowingly),
        newest first."""
        records = self.store.device_latencies(name, space_id)
        ok = [r for r in records if _usable(r.summary)]
        return sorted(ok, key=lambda r: r.id, reverse=True)

    def table(self, name: str, space: SearchSpace) -> Any:
        """The device's newest usable latency table of ``space``, or its fleet-calibrated model
        (both answer ``predict(space, arch)`` in ms)."""
        return self.newest(name, space)[1]

    def newest(self, name: str, space: SearchSpace) -> tuple[LatencyRecord, Any]:
        """The device's newest usable record of ``space`` (its data loaded) and its model, as
        :meth:`table` gives it.

        Raises:
            ConfigError: when the device has none, saying why and how to measure one.
        """
        from predictors.latency import LatencyTable

        self.get(name)
        records = self.usable(name, space.space_id)
        if not records:
            others = self.store.device_latencies(name, space.space_id)
            why = (
                f"its {len(others)} table(s) of {space.space_id} are marked unreliable"
                if others
                else f"it has no latency table of {space.space_id}"
            )
            raise ConfigError(
                f"device {name}: {why}; `nas latency build --device {name} ...` measures one "
                f"(or `nas latency calibrate --device {name}` from a few measurements and the fleet)"
            )
        record = self.store.device_latency(records[0].id)
        assert record.data is not None
        if record.kind == "table":
            table = LatencyTable.from_dict(record.data, f"device {name} table {record.id}")
            table.device_name = name
            return record, table
        from nas.device_models import FleetLatency

        return record, FleetLatency.from_record(record.data, space)


def device_resolver(store: Store) -> Callable[[str, SearchSpace], Any]:
    """``(device name, space) -> table``: how evaluators find ``latency_device`` in a job's store."""
    catalog = DeviceCatalog(store)
    return catalog.table


def default_work(name: str) -> Path:
    """Where a command device's model files and answers are kept: ``runs/devices/NAME``."""
    return Path("runs") / "devices" / name


def _usable(summary: Mapping[str, Any]) -> bool:
    """A stored table's ``usable`` flag; a record stored before the flag existed says ``reliable``
    and ``accepted`` instead (the same rule: reliable, or kept knowingly)."""
    if "usable" in summary:
        return bool(summary["usable"])
    return bool(summary.get("reliable", True) or summary.get("accepted"))
