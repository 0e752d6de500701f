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


def cmd_latency_build(args: argparse.Namespace) -> None:
    from nas.core.space import create_space
    from predictors.latency import build_table

    _check_device(args.device)
    _threads(args)
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
    else:
        space = create_space(args.space or "ofa_mbv3", **options)
    table = build_table(
        space, device=args.device, dtype=args.dtype, batch=args.batch, calibration_archs=args.calibration,
        seed=args.seed, backend=args.backend, rounds=args.rounds, progress=not args.json,
    )  # fmt: skip
    record = table.provenance or {}
    if args.accept_unreliable and not table.reliable:
        record["accepted"] = True
    table.save(args.out)  # kept even when unreliable: nothing measured is lost, and it says why
    _refuse_unreliable(table, args.out)
    payload = {
        "out": args.out, "space_id": table.space_id, "ops": len(table.entries), "correction": table.correction,
        "reliable": table.reliable, "provenance": record,
    }  # fmt: skip
    lines = [f"wrote {args.out}: {len(table.entries)} op signatures of {table.space_id} on {args.device}"]
    lines += [f"unreliable, kept with --accept-unreliable: {r}" for r in record.get("reasons", [])]
    lines += [f"note: {w}" for w in record.get("warnings", [])]
    emit(args, payload, "\n".join(lines))


def _refuse_unreliable(table: Any, out: str) -> None:
    record = table.provenance or {}
    if not table.reliable and not record.get("accepted"):
        raise CLIError(
            f"{out} is marked unreliable: {'; '.join(record.get('reasons', []))}",
            "rebuild it when the machine is idle; a job refuses this table unless you keep it knowingly "
            "(`nas latency build ... --accept-unreliable`)",
        )


def _table_space(table: Any, run: str | None) -> Any:
    """The space a table was built for: from ``--run``, else the configuration the table records,
    else its space id (a preset)."""
    from nas.core.space import create_space, space_from_id

    if run:
        space = _run_space(run)
    elif table.space is not None:
        space = create_space(table.space["name"], allow_code=False, config=table.space["config"])
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

    table = LatencyTable.load(args.table)
    _check_device(table.device)
    _threads(args)
    space = _table_space(table, args.run)
    report = validate_table(table, space, args.archs, seed=args.seed, rounds=args.rounds, progress=not args.json)
    lines = [f"{report['archs']} random subnets of {table.space_id} on {table.device}, batch {table.batch}:"]
    lines.append(_metrics_line("table sum", report["table_sum"]))
    if "corrected" in report:
        lines.append(_metrics_line("corrected", report["corrected"]))
    curve = report.get("calibration_curve") or {}
    if curve.get("points"):
        shares = ", ".join(f"{k}: {p['within_10pct'] * 100:.0f}%" for k, p in curve["points"].items())
        lines.append(f"correction refitted on k measured subnets (within ±10%): {shares}; needed {curve['needed']}")
    emit(args, report, "\n".join(lines))


def add_latency_commands(sub: Any, command_group: Any) -> None:
    group = command_group(sub, "latency", "latency lookup tables measured on a device")
    p = group.add_parser("build", help="measure every op signature of a space on a device")
    p.add_argument("--space", help="space name (default: ofa_mbv3)")
    p.add_argument("--config", help="space configuration preset (e.g. cifar)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="space option, e.g. resolutions=[160,224]")
    p.add_argument(
        "--run", help="the space of this run folder (a trained or imported supernet) instead; with "
        "--option precisions=[int8,fp32], that space with a precision per block (time it on --backend onnxruntime)",
    )  # fmt: skip
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
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
    p.add_argument("--out", required=True, help="table JSON")
    p.add_argument(
        "--accept-unreliable", action="store_true",
        help="keep a table measured under load or with too much noise for jobs to use (it stays marked); "
        "without it such a table is written, marked, refused by jobs, and the command fails",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_latency_build)
    p = group.add_parser(
        "validate",
        help="compare a table with end-to-end latency of random subnets on the table's own backend "
        "(share within ±10%%, Spearman, MAPE; plain sum and corrected; how many calibration subnets the "
        "correction needed)",
    )  # fmt: skip
    p.add_argument("table", help="table JSON of `nas latency build`")
    p.add_argument("--run", help="the run folder the table was built from (only for tables that predate recording "
                   "their space's configuration)")  # fmt: skip
    p.add_argument("--archs", type=int, default=100, help="random subnets measured end to end")
    p.add_argument("--threads", type=int, help="CPU threads (use the table's)")
    p.add_argument("--rounds", type=int, default=1, help="as for build")
    p.add_argument(
        "--seed",
        type=int,
        default=1,
        help="seeds the subnet sample (default: %(default)s, not build's 0: other subnets than the table's)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_latency_validate)
