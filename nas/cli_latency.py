"""``nas latency build`` and ``nas latency validate``: per-device latency lookup tables."""

from __future__ import annotations

import argparse
from typing import Any

from nas.cli_output import CLIError, emit, parse_options


def _threads(args: argparse.Namespace) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def _check_device(device: str) -> None:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA GPU here; build CPU tables with --device cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"--device: use cpu or cuda[:i], got {device!r}")


def _space_of(args: argparse.Namespace) -> Any:
    """The space a latency command measures: ``--run``'s (with ``precisions=[...]``), else
    ``--space``/``--config``/``--option``."""
    from nas.core.space import create_space

    options = parse_options(args.option or [])
    if args.config:
        options["config"] = args.config
    if args.run:
        precisions = options.pop("precisions", None)
        if options or args.space:
            raise CLIError(
                "--run takes the run's own space; drop --space, --config and --option (all but precisions=[...])"
            )
        space = _run_space(args.run)
        if precisions is not None:  # precision changes no weight: the run's space with precision genes
            space = create_space(space.name, config={**space.config_dict(), "precisions": precisions})
        return space
    return create_space(args.space or "ofa_mbv3", **options)


def _named_device(args: argparse.Namespace) -> tuple[Any, Any]:
    """The device record ``--device`` names and the catalog holding it, or ``(None, None)`` for
    this machine's cpu / cuda[:i]."""
    from nas.devices import RESERVED, DeviceCatalog

    if RESERVED.match(args.device):
        return None, None
    from nas.cli_search import _store
    from nas.store import StoreError

    try:
        store = _store(args, create=False)
    except StoreError:
        raise CLIError(
            f"--device {args.device}: neither cpu / cuda[:i] (this machine) nor a device of a store (none yet)",
            f"`nas devices add {args.device} ...` records a device; --store names another store",
        ) from None
    catalog = DeviceCatalog(store)
    return catalog.get(args.device), catalog


def cmd_latency_build(args: argparse.Namespace) -> None:
    from predictors.latency import build_table

    device, catalog = _named_device(args)
    if device is None:
        _check_device(args.device)
        if not args.out:
            raise CLIError("--out: where to write the table of this machine's " + args.device,
                           "or name a device of the store (`nas devices add NAME ...`) to keep it there")  # fmt: skip
        _threads(args)
    space = _space_of(args)
    if device is None:
        table = build_table(
            space, device=args.device, dtype=args.dtype, batch=args.batch, calibration_archs=args.calibration,
            seed=args.seed, backend=args.backend, rounds=args.rounds, progress=not args.json,
        )  # fmt: skip
        validation = None
    else:
        table, validation = _build_for_device(args, device, space)
    record = table.provenance or {}
    if args.accept_unreliable and not table.reliable:
        record["accepted"] = True
    where = args.out
    if args.out:
        table.save(args.out)  # kept even when unreliable: nothing measured is lost, and it says why
    if device is not None:
        latency_id = catalog.save_table(device.name, table)
        if validation is not None:
            catalog.store.update_latency_summary(latency_id, {"validation": _validation_summary(validation)})
        where = f"device {device.name} (table {latency_id})" + (f" and {args.out}" if args.out else "")
    _refuse_unreliable(table, where)
    payload = {
        "out": args.out, "device": table.metric_device, "space_id": table.space_id, "ops": len(table.entries),
        "correction": table.correction, "reliable": table.reliable, "provenance": record,
        "validation": _validation_summary(validation) if validation else None,
    }  # fmt: skip
    lines = [f"wrote {where}: {len(table.entries)} op signatures of {table.space_id} on {table.metric_device}"]
    if validation:
        lines.append(_metrics_line("validated", validation.get("corrected", validation["table_sum"])))
    lines += [f"unreliable, kept with --accept-unreliable: {r}" for r in record.get("reasons", [])]
    lines += [f"note: {w}" for w in record.get("warnings", [])]
    emit(args, payload, "\n".join(lines))


def _build_for_device(args: argparse.Namespace, device: Any, space: Any) -> tuple[Any, dict[str, Any] | None]:
    """A device record's table, measured at its place, and its validation (``--validate N``)."""
    from nas.device_measure import Job, measure
    from predictors.latency import LatencyTable

    clashes = [flag for flag, given in (("--backend", args.backend), ("--threads", args.threads),
                                         ("--batch", args.batch != 1), ("--dtype", args.dtype != "float32"))
               if given]  # fmt: skip
    if clashes:
        raise CLIError(
            f"{', '.join(clashes)}: device {device.name} has its own (`nas devices show {device.name}`)",
            f"drop them, or change the device: `nas devices add {device.name} ... --replace`",
        )
    job = Job("table", rounds=args.rounds, calibration=args.calibration, seed=args.seed)
    answer = measure(device, space, job, ray_address=args.ray_address, progress=not args.json)
    table = LatencyTable.from_dict(answer["table"], f"device {device.name}")
    validation = None
    if args.validate:
        job = Job("validate", rounds=args.rounds, archs=args.validate, seed=1, table=table.to_dict())
        validation = measure(device, space, job, ray_address=args.ray_address, progress=not args.json)["validation"]
    return table, validation


def _validation_summary(report: dict[str, Any]) -> dict[str, Any]:
    best = report.get("corrected", report["table_sum"])
    return {"archs": report["archs"], "within_10pct": best["within_10pct"], "mape": best["mape"],
            "spearman": best["spearman"], "rounds": report.get("rounds")}  # fmt: skip


def _refuse_unreliable(table: Any, where: str) -> None:
    if not table.usable:
        raise CLIError(
            f"{where} is marked unreliable: {table.reasons}",
            "rebuild it when the machine is idle; a job refuses this table unless you keep it knowingly "
            "(`nas latency build ... --accept-unreliable`)",
        )


def _table_space(table: Any, run: str | None) -> Any:
    """The space a table was built for: from ``--run``, else the configuration the table records,
    else its space id (a preset)."""
    from nas.core.space import space_from_id, space_from_record

    if run:
        space = _run_space(run)
    elif table.space is not None:
        space = space_from_record(table.space, allow_code=False)
    else:
        try:
            space = space_from_id(table.space_id)
        except ValueError as exc:
            raise CLIError(
                f"{exc} (this table predates recording its space's configuration)",
                "give the run it was built from: `nas latency validate TABLE --run RUN_FOLDER`",
            ) from None
    if space.space_id != table.space_id:
        raise CLIError(f"the table is for {table.space_id}, --run holds {space.space_id}", "give the table's run")
    return space


def _run_space(run: str) -> Any:
    """The space of a run folder (``supernet.json``), without loading its weights."""
    from search_spaces.training.checkpoint import read_supernet_meta, supernet_space

    return supernet_space(*read_supernet_meta(run))


def _metrics_line(name: str, m: dict[str, float]) -> str:
    return (
        f"{name:<10} within ±10%: {m['within_10pct'] * 100:5.1f}%   Spearman {m['spearman']:.3f}   "
        f"MAPE {m['mape']:.1f}%   worst {m['max_rel_error'] * 100:.0f}%"
    )


def cmd_latency_validate(args: argparse.Namespace) -> None:
    from predictors.latency import LatencyTable, validate_table

    if args.device is not None:
        _validate_device(args)
        return
    if args.table is None:
        raise CLIError("nothing to validate", "give a table file (`nas latency validate TABLE`) or --device NAME")
    table = LatencyTable.load(args.table)
    _check_device(table.device)
    _threads(args)
    space = _table_space(table, args.run)
    report = validate_table(table, space, args.archs, seed=args.seed, rounds=args.rounds, progress=not args.json)
    lines = [f"{report['archs']} random subnets of {table.space_id} on {table.device}, batch {table.batch}:"]
    record = table.provenance or {}
    if record:
        built = f"built on {(record.get('machine') or {}).get('host')} ({record.get('place')})"
        verdict = "reliable" if table.reliable else f"marked unreliable: {'; '.join(record.get('reasons', []))}"
        lines.append(f"table {built}, {verdict}")
    report["table_reliable"] = table.reliable
    lines.append(_metrics_line("table sum", report["table_sum"]))
    if "corrected" in report:
        lines.append(_metrics_line("corrected", report["corrected"]))
    curve = report.get("calibration_curve") or {}
    if curve.get("points"):
        shares = ", ".join(f"{k}: {p['within_10pct'] * 100:.0f}%" for k, p in curve["points"].items())
        lines.append(f"correction refitted on k measured subnets (within ±10%): {shares}; needed {curve['needed']}")
    emit(args, report, "\n".join(lines))


def _validate_device(args: argparse.Namespace) -> None:
    """``nas latency validate --device NAME``: the device's newest usable table (or calibrated
    model) of the space, against random subnets measured end to end where the device is; the
    figures are stored with the table (`nas devices` shows them)."""
    import numpy as np

    from nas.device_measure import Job, measure, measure_archs
    from predictors.latency.build import latency_metrics

    if args.table is not None:
        raise CLIError(f"give a table file or --device, not both (got {args.table} and {args.device})",
                       "a file is validated on this machine, a device's stored table on the device")  # fmt: skip
    device, catalog = _named_device(args)
    if device is None:
        raise CLIError(
            f"--device {args.device} is this machine: validate a table file with `nas latency validate TABLE`",
            "or name a device of the store (`nas devices`)",
        )
    if args.threads:
        raise CLIError(f"--threads: device {device.name} has its own (`nas devices show {device.name}`)",
                       f"drop it, or change the device: `nas devices add {device.name} ... --replace`")  # fmt: skip
    space = _space_of(args)
    record, model = catalog.newest(device.name, space)  # or an error saying how to get one
    progress = not args.json
    if record.kind == "table":
        job = Job("validate", rounds=args.rounds, archs=args.archs, seed=args.seed, table=model.to_dict())
        report = measure(device, space, job, ray_address=args.ray_address, progress=progress)["validation"]
        best = report.get("corrected", report["table_sum"])
    else:  # a model calibrated from the fleet: its predictions against the same kind of measurement
        archs = space.sample_unique(args.archs, np.random.default_rng([args.seed, 2]))
        measured = measure_archs(device, space, archs, rounds=args.rounds, ray_address=args.ray_address,
                                 progress=progress)  # fmt: skip
        predicted = [float(model.predict(space, a)) for a in archs]
        best = latency_metrics(predicted, measured)
        report = {"space_id": space.space_id, "archs": len(archs), "calibrated": best, "rounds": args.rounds,
                  "per_arch": [{"arch": a.to_dict(), "measured_ms": m, "predicted_ms": p}
                               for a, m, p in zip(archs, measured, predicted)]}  # fmt: skip
    summary = {"archs": report["archs"], "within_10pct": best["within_10pct"], "mape": best["mape"],
               "spearman": best["spearman"], "rounds": args.rounds}  # fmt: skip
    catalog.store.update_latency_summary(record.id, {"validation": summary})
    report.update(device=device.name, latency_id=record.id, kind=record.kind)
    lines = [f"{report['archs']} random subnets of {space.space_id} measured on device {device.name} "
             f"({device.place}), against its {record.kind} [{record.id}]:"]  # fmt: skip
    for name in ("table_sum", "corrected", "calibrated"):
        if name in report:
            lines.append(_metrics_line(name.replace("_", " "), report[name]))
    lines.append(f"stored with {record.kind} {record.id} (`nas devices` shows it)")
    emit(args, report, "\n".join(lines))


def cmd_latency_calibrate(args: argparse.Namespace) -> None:
    from nas.cli_search import _store
    from nas.device_fleet import calibrate
    from nas.devices import DeviceCatalog

    catalog = DeviceCatalog(_store(args))
    catalog.get(args.device)
    space = _space_of(args)
    result = calibrate(catalog, args.device, space, args.archs, seed=args.seed, rounds=args.rounds,
                       ray_address=args.ray_address, progress=not args.json)  # fmt: skip
    s = result["summary"]
    expected = s["expected"]
    source = f"the fleet ({', '.join(s['fleet'])})" if s["fleet"] else "no fleet (fitted alone)"
    emit(args, {"id": result["id"], **s},
         f"device {args.device}: {s['measured']} subnets of {space.space_id} measured, prior {source}; expected "
         f"within ±10%: {expected['loo_within_10pct'] * 100:.0f}%, median error "
         f"{expected['loo_median_rel_error'] * 100:.1f}% (leave-one-out over the measured)")  # fmt: skip


def cmd_latency_export(args: argparse.Namespace) -> None:
    from nas.cli_search import _store
    from nas.devices import DeviceCatalog

    catalog = DeviceCatalog(_store(args))
    space = _space_of(args)
    table = catalog.table(args.device, space)
    if not hasattr(table, "save"):
        raise CLIError(f"device {args.device}'s latency of {space.space_id} is a calibrated model, not a table")
    table.save(args.out)
    emit(args, {"out": args.out}, f"wrote {args.out}: device {args.device}'s table of {space.space_id}")


def cmd_latency_import(args: argparse.Namespace) -> None:
    from nas.cli_search import _store
    from nas.devices import DeviceCatalog
    from predictors.latency import LatencyTable

    catalog = DeviceCatalog(_store(args))
    catalog.get(args.device)
    try:
        table = LatencyTable.load(args.table)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    latency_id = catalog.save_table(args.device, table)
    state = "reliable" if table.reliable else "marked unreliable"
    text = f"stored {args.table} as device {args.device}'s table of {table.space_id} ({state}) [{latency_id}]"
    emit(args, {"id": latency_id, "reliable": table.reliable}, text)


def _space_args(p: argparse.ArgumentParser) -> None:
    from nas.cli_search import store_args

    p.add_argument("--run", help="the space of this run folder (a trained or imported supernet)")
    p.add_argument("--space", help="space name (default: ofa_mbv3)")
    p.add_argument("--config", help="space configuration preset (e.g. cifar)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="space option, e.g. precisions=[int8,fp32]")
    store_args(p)


def add_latency_commands(sub: Any, command_group: Any) -> None:
    from nas.cli_search import store_args

    group = command_group(sub, "latency", "latency lookup tables measured on a device")
    p = group.add_parser("build", help="measure every op signature of a space on a device")
    p.add_argument("--space", help="space name (default: ofa_mbv3)")
    p.add_argument("--config", help="space configuration preset (e.g. cifar)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="space option, e.g. resolutions=[160,224]")
    p.add_argument(
        "--run", help="the space of this run folder (a trained or imported supernet) instead; with "
        "--option precisions=[int8,fp32], that space with a precision per block (time it on --backend onnxruntime)",
    )  # fmt: skip
    p.add_argument(
        "--device", default="cpu",
        help="cpu or cuda[:i] (this machine, table written to --out), or a device of the store (`nas devices`): "
        "measured where it is (its Ray node, its command) and stored with it",
    )  # fmt: skip
    p.add_argument("--ray-address", help="the Ray cluster holding a ray device's node (HOST:PORT)")
    p.add_argument(
        "--validate",
        type=int,
        default=0,
        metavar="N",
        help="a device's table: then measure N random subnets end to end and store the figures",
    )
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"], help="data type timed")
    p.add_argument("--batch", type=int, default=1, help="batch size timed")
    p.add_argument("--calibration", type=int, default=20, help="subnets measured end to end for the correction")
    p.add_argument(
        "--backend", metavar="NAME",
        help="runtime the ops are timed on, as the model will be deployed (default: our Triton kernels on "
        "CUDA, torch eager on CPU). torch: eager; on CUDA each op's GPU time and kernel count are stored and "
        "the table replays the launch queue with the measured launch cost (the launch-bound regime). "
        "cuda-graph: the subnet captured in one CUDA graph (inference servers); ops timed back to back in a "
        "graph, warm L2. torch-compile: Inductor-compiled ops and networks (CPU or CUDA). triton: our Triton "
        "kernels (CUDA). onnxruntime: ONNX Runtime on the CPU, float32 and int8 (static QDQ) layers. Plug-ins add more "
        "(entry-point group hwnas.latency_backends)",
    )  # fmt: skip
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    p.add_argument(
        "--rounds", type=int, default=1,
        help="time every op/subnet once per round, all of them round after round, and keep the median "
        "(spreads each measurement over the whole run, so a shared machine's drift hits all alike)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seeds the inputs and weights of the timed ops")
    p.add_argument("--out", help="table JSON (required for cpu / cuda; for a device, a copy of the stored table)")
    p.add_argument(
        "--accept-unreliable", action="store_true",
        help="keep a table measured under load or with too much noise for jobs to use (it stays marked); "
        "without it such a table is written, marked, refused by jobs, and the command fails",
    )  # fmt: skip
    store_args(p)
    p.set_defaults(func=cmd_latency_build)
    p = group.add_parser(
        "validate",
        help="compare a table with end-to-end latency of random subnets on the table's own backend "
        "(share within ±10%%, Spearman, MAPE; plain sum and corrected; how many calibration subnets the "
        "correction needed)",
    )  # fmt: skip
    p.add_argument("table", nargs="?", help="table JSON of `nas latency build` (or --device)")
    p.add_argument(
        "--device", help="instead of a file: a device of the store (`nas devices`); its newest usable table (or "
        "calibrated model) of the space (--run, or --space/--config/--option) is validated on the device, where "
        "it is (its Ray node, its command), and the figures are stored with it",
    )  # fmt: skip
    p.add_argument("--ray-address", help="the Ray cluster holding a ray device's node (HOST:PORT)")
    p.add_argument("--run", help="the run folder the table was built from (only for tables that predate recording "
                   "their space's configuration); with --device, the space whose table is validated")  # fmt: skip
    p.add_argument("--space", help="with --device: space name (default: ofa_mbv3)")
    p.add_argument("--config", help="with --device: space configuration preset (e.g. cifar)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="with --device: space option")
    p.add_argument("--archs", type=int, default=100, help="random subnets measured end to end")
    p.add_argument("--threads", type=int, help="CPU threads (use the table's)")
    p.add_argument("--rounds", type=int, default=1, help="as for build")
    p.add_argument(
        "--seed",
        type=int,
        default=1,
        help="seeds the subnet sample (default: %(default)s, not build's 0: other subnets than the table's)",
    )
    store_args(p)
    p.set_defaults(func=cmd_latency_validate)
    p = group.add_parser(
        "calibrate",
        help="a new device's latency from a few measured subnets, the other devices of the store as prior "
        "(subnets chosen to be informative; the expected error is reported)",
    )  # fmt: skip
    p.add_argument("--device", required=True, help="the new device (`nas devices add` it first)")
    p.add_argument("--archs", type=int, default=10, help="subnets measured on it")
    p.add_argument("--rounds", type=int, default=3, help="rounds of each measurement (median kept)")
    p.add_argument("--seed", type=int, default=0, help="seeds the pool of subnets the design chooses from")
    p.add_argument("--ray-address", help="the Ray cluster holding a ray device's node (HOST:PORT)")
    _space_args(p)
    p.set_defaults(func=cmd_latency_calibrate)
    p = group.add_parser("export", help="write a device's newest table of a space to a file")
    p.add_argument("--device", required=True, help="a device of the store (`nas devices`)")
    p.add_argument("--out", required=True, help="table JSON")
    _space_args(p)
    p.set_defaults(func=cmd_latency_export)
    p = group.add_parser("import", help="store a table file (built elsewhere) as a device's table")
    p.add_argument("table", help="table JSON of `nas latency build`")
    p.add_argument("--device", required=True, help="the device it was measured on (`nas devices add` it first)")
    store_args(p)
    p.set_defaults(func=cmd_latency_import)
