"""``nas devices``: the target devices of a store, their latency tables and calibrated models."""

from __future__ import annotations

import argparse
from typing import Any

from nas.cli_output import CLIError, emit


def _catalog(args: argparse.Namespace, *, create: bool = True) -> Any:
    from nas.cli_search import _store
    from nas.devices import DeviceCatalog

    return DeviceCatalog(_store(args, create=create))


def _latency_line(record: Any) -> str:
    s = record.summary
    valid = s.get("validation")
    if record.kind == "fleet":
        expected = s.get("expected") or {}
        checked = f", validated: {valid['within_10pct'] * 100:.0f}% of {valid['archs']} subnets" if valid else ""
        return (
            f"  {record.space_id}: calibrated ({s.get('method')}, {s.get('measured')} measured, fleet "
            f"{', '.join(s.get('fleet') or []) or 'none'}), expected within ±10%: "
            f"{expected.get('loo_within_10pct', float('nan')) * 100:.0f}% (leave-one-out){checked}  [{record.id}]"
        )
    state = "reliable" if s.get("reliable", True) else ("unreliable, kept" if s.get("accepted") else "UNRELIABLE")
    figures = (
        f", {valid['within_10pct'] * 100:.0f}% of {valid['archs']} subnets within ±10%" if valid else ", not validated"
    )
    return (
        f"  {record.space_id}: table, {s.get('ops')} ops, {s.get('backend')} b{s.get('batch')}, {state}{figures}; "
        f"built on {s.get('host')} ({s.get('place')}) {record.created_at:%Y-%m-%d %H:%M}  [{record.id}]"
    )


def cmd_devices(args: argparse.Namespace) -> None:
    from nas.store import StoreError

    try:
        catalog = _catalog(args, create=False)  # listing creates no store
    except StoreError:
        emit(args, [], "no devices yet (no store); `nas devices add NAME ...` adds one")
        return
    devices = catalog.all()
    payload = []
    lines = [] if devices else ["no devices yet; `nas devices add NAME ...` adds one"]
    for device in devices:
        records = catalog.store.device_latencies(device.name)
        payload.append({"name": device.name, **device.to_dict(),
                        "latency": [{"id": r.id, "space_id": r.space_id, "kind": r.kind, **r.summary,
                                     "created_at": r.created_at.isoformat()} for r in records]})  # fmt: skip
        where = {"ray": f"on the ray node {device.resource}", "command": f"by {device.command!r}"}
        where_text = where.get(device.place, "here")
        lines.append(
            f"{device.name}: {device.runtime} {device.dtype} batch {device.batch}"
            f"{f', {device.threads} threads' if device.threads else ''}, measured {where_text}"
        )
        lines += [_latency_line(r) for r in records] or ["  no latency tables yet"]
    emit(args, payload, "\n".join(lines))


def cmd_devices_add(args: argparse.Namespace) -> None:
    from nas.core.config import ConfigError
    from nas.devices import Device

    place = "ray" if args.resource else "command" if args.command else "local"
    device = Device(
        args.name, place=place, target=args.target, backend=args.backend, dtype=args.dtype, batch=args.batch,
        threads=args.threads, resource=args.resource, command=args.command, pattern=args.pattern,
        timeout_s=args.timeout, retries=args.retries, description=args.description or "",
    )  # fmt: skip
    try:
        _catalog(args).add(device, replace=args.replace)
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    emit(args, {"name": device.name, **device.to_dict()},
         f"device {device.name}: {device.runtime}, measured {place}; `nas latency build --device {device.name} "
         "--run RUN` measures its table")  # fmt: skip


def cmd_devices_show(args: argparse.Namespace) -> None:
    catalog = _catalog(args)
    device = catalog.get(args.name)
    records = catalog.store.device_latencies(device.name)
    payload = {
        "name": device.name,
        **device.to_dict(),
        "latency": [{"id": r.id, "space_id": r.space_id, "kind": r.kind, **r.summary} for r in records],
    }
    lines = [f"{device.name}:"] + [f"  {k}: {v}" for k, v in device.to_dict().items() if v not in (None, "")]
    lines += [_latency_line(r) for r in records]
    emit(args, payload, "\n".join(lines))


def cmd_devices_remove(args: argparse.Namespace) -> None:
    _catalog(args).remove(args.name)
    emit(args, {"removed": args.name}, f"removed device {args.name} and its latency tables")


def add_device_commands(sub: Any) -> None:
    from nas.cli_search import store_args

    p = sub.add_parser("devices", help="target devices: where and how latency is measured, their tables")
    store_args(p)
    p.set_defaults(func=cmd_devices)
    group = p.add_subparsers(dest="devices_command", metavar="SUBCOMMAND")

    p = group.add_parser("add", help="add a device (how its subnets run, where it is measured)")
    p.add_argument("name", help="e.g. pi4-ort, pixel7-cpu4; jobs read latency_ms@NAME")
    p.add_argument("--backend", help="how subnets run: torch, onnxruntime, torch-compile, triton, cuda-graph")
    p.add_argument("--target", default="cpu", help="the torch device on the measuring machine: cpu or cuda[:i]")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"], help="data type run")
    p.add_argument("--batch", type=int, default=1, help="batch size run")
    p.add_argument("--threads", type=int, help="intra-op threads (default: the measuring process's)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--resource", help="place ray: the custom resource its Ray node offers (e.g. device:pi4)")
    where.add_argument(
        "--command",
        help="place command: a program timing one ONNX file, with {model} (and {threads}, {batch}, {shape}), "
        "e.g. 'python -m nas.testing.ort_benchmark --model {model} --threads {threads}'",
    )
    p.add_argument("--pattern", help="place command: regex finding the latency in its output, group ms or us")
    p.add_argument("--timeout", type=float, default=300.0, help="place command: seconds per model")
    p.add_argument("--retries", type=int, default=2, help="place command: retries of a failing model")
    p.add_argument("--description", help="free text (where the device is, who looks after it)")
    p.add_argument("--replace", action="store_true", help="change an existing device's settings (keeps its tables)")
    store_args(p)
    p.set_defaults(func=cmd_devices_add)

    p = group.add_parser("show", help="one device's settings, tables and calibrated models")
    p.add_argument("name", help="the device")
    store_args(p)
    p.set_defaults(func=cmd_devices_show)

    p = group.add_parser("remove", help="remove a device and its tables")
    p.add_argument("name", help="the device")
    store_args(p)
    p.set_defaults(func=cmd_devices_remove)
