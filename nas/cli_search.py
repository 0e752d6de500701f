"""``nas search``, ``resume``, ``jobs``, ``trials``, ``pareto`` and ``export``: search jobs over the SQL store."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from nas.cli_output import CLIError, emit

DEFAULT_STORE_ENV = "NAS_STORE"


def _store(args: argparse.Namespace, *, create: bool = True) -> Any:
    """The store the command names (``--store``, ``$NAS_STORE``, the default); commands that only
    read pass ``create=False`` and get an error naming a missing store instead of an empty one."""
    from nas.store import DEFAULT_URL, Store

    return Store(args.store or os.environ.get(DEFAULT_STORE_ENV) or DEFAULT_URL, create=create)


def store_args(p: argparse.ArgumentParser) -> None:
    """``--store`` and ``--json``, as every command over the store takes them."""
    p.add_argument("--store", help=f"database URL (default: ${DEFAULT_STORE_ENV} or sqlite:///runs/nas.db)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _store_option(args: argparse.Namespace) -> str:
    """`` --store URL`` for hints when the store is not the default one, else empty."""
    from nas.store import DEFAULT_URL

    url = args.store or os.environ.get(DEFAULT_STORE_ENV) or DEFAULT_URL
    return "" if url == DEFAULT_URL or (not args.store and os.environ.get(DEFAULT_STORE_ENV)) else f" --store {url}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _aligned(cells: list[str]) -> str:
    """One table line: every cell right-aligned in 12 columns but the last (the arch), left as it is."""
    return "  ".join([*(f"{c:>12}" for c in cells[:-1]), cells[-1]])


def _front_table(rows: list[dict[str, Any]], metrics: list[str], space_id: str = "", space: Any = None) -> str:
    from nas.queries import arch_formatter

    lines = [_aligned(["trial", *metrics, "arch"])]
    text = arch_formatter(space_id, space)
    for r in rows:
        arch = r.get("arch_text") or text(r["arch"])  # a query's rows carry the job's notation already
        lines.append(_aligned([str(r["trial_id"]), *(_fmt(r["metrics"].get(m)) for m in metrics), arch]))
    return "\n".join(lines)


def _result_payload(store: Any, result: Any) -> dict[str, Any]:
    job = store.job(result.job_id)
    return {
        "job_id": result.job_id,
        "state": result.state,
        "evaluations": result.evaluations,
        "failed": result.failed,
        "hypervolume": result.hypervolume,
        "objectives": [o["metric"] for o in job.spec["objectives"]],
        "space_id": job.space_id,
        "space": job.spec.get("space"),
        "front": [t.to_dict() for t in result.front],
    }


def _report(args: argparse.Namespace, store: Any, result: Any) -> None:
    payload = _result_payload(store, result)
    text = (
        f"job {result.job_id}: {result.state}, {result.evaluations} evaluations ({result.failed} failed), "
        f"hypervolume {_fmt(result.hypervolume)}\n"
        + _front_table(payload["front"], payload["objectives"], payload["space_id"], payload["space"])
        + f"\nmore: nas pareto {result.job_id}{_store_option(args)} --plot front.png"
    )
    emit(args, payload, text)


def cmd_search(args: argparse.Namespace) -> None:
    from nas.admission import admit_job
    from nas.job import load_job
    from nas.runner import run_job

    spec = load_job(args.job)
    if args.executor:
        spec.executor = args.executor
    spec, _ = admit_job(spec.to_dict())  # everything checked before a job row exists
    if args.ray_address:  # an unreachable head is an error in seconds, before a job row exists
        from nas.ray_address import RayConnectionError, check_ray_address
        from nas.runner import resolve_executor

        try:
            check_ray_address(args.ray_address)
        except RayConnectionError as exc:
            raise CLIError(str(exc)) from None
        if resolve_executor(spec, None, args.ray_address) == "local":
            logging.getLogger("nas").warning(
                "--ray-address %s is not used: %s's lookups run in this process (`--executor ray` sends them "
                "to the cluster anyway)", args.ray_address, spec.evaluator.get("kind"),
            )  # fmt: skip
    store = _store(args)
    created: list[str] = []
    try:
        result = run_job(spec, store, ray_address=args.ray_address, progress=not args.json, on_created=created.append)
    except KeyboardInterrupt:
        if created:  # one message, from nas.cli.main, naming this job
            args.resume_command = f"nas resume {created[0]}{_store_option(args)}"
        raise
    _report(args, store, result)
    _fail_if_every_trial_failed(args, store, result)


def _fail_if_every_trial_failed(args: argparse.Namespace, store: Any, result: Any) -> None:
    """A job whose every trial failed is an error (exit 2) naming the commonest error, not a green ``done``."""
    if result.state == "failed":
        raise CLIError(
            str(store.job(result.job_id).error),
            f"fix the cause, then `nas resume {result.job_id}{_store_option(args)}` or search again",
        )


def cmd_spec_schema(args: argparse.Namespace) -> None:
    from nas.spec_schema import job_schema

    text = json.dumps(job_schema(), indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
        print(f"wrote the job spec's JSON Schema to {args.out}", file=sys.stderr)
    else:
        print(text, file=args.stdout)


def cmd_spec_check(args: argparse.Namespace) -> None:
    """Every check ``nas search`` makes before it creates a job, without creating one and without
    running code the spec names (``module:factory`` names are only found on the path)."""
    from nas.admission import check_job
    from nas.job import load_job

    report = check_job(load_job(args.job).to_dict())
    spec = report.spec
    space_id = report.space.space_id if report.space is not None else spec.space.name
    objectives = [f"{o.direction} {o.metric}" for o in spec.objectives]
    summary = {
        "ok": True, "name": spec.name, "space": space_id, "evaluator": spec.evaluator.get("kind"),
        "searcher": spec.searcher.kind, "objectives": objectives,
        "budget": spec.budget.evaluations, "code_not_run": report.code,
    }  # fmt: skip
    text = (f"{args.job}: ok — {spec.searcher.kind} over {space_id}, "
            f"{', '.join(objectives)}, {spec.budget.evaluations} evaluations")  # fmt: skip
    if report.code:
        names = "; ".join(f"{key} = {where}" for key, where in report.code.items())
        text += f"\nnot run: {names} — found on the path; `nas search` imports it and checks what it builds"
    emit(args, summary, text)


def cmd_resume(args: argparse.Namespace) -> None:
    from nas.runner import run_job

    store = _store(args, create=False)
    store.job(args.job_id)  # clear error for an unknown id
    result = run_job(
        None, store, job_id=args.job_id, ray_address=args.ray_address, executor=args.executor,
        progress=not args.json,
    )  # fmt: skip
    _report(args, store, result)
    _fail_if_every_trial_failed(args, store, result)


def cmd_delete(args: argparse.Namespace) -> None:
    store = _store(args, create=False)
    store.delete_job(args.job_id)
    emit(args, {"job_id": args.job_id, "deleted": True},
         f"deleted job {args.job_id} with its trials, fronts and Optuna study")  # fmt: skip


def cmd_cancel(args: argparse.Namespace) -> None:
    store = _store(args, create=False)
    before = store.cancel_job(args.job_id)
    note = " its runner stops within a heartbeat (10 s by default)," if before == "running" else ""
    emit(args, {"job_id": args.job_id, "state": "cancelled", "was": before},
         f"cancelled job {args.job_id} (was {before});{note} `nas resume {args.job_id}{_store_option(args)}` "
         "continues it")  # fmt: skip


def cmd_jobs(args: argparse.Namespace) -> None:
    from nas.queries import job_summaries

    rows = job_summaries(_store(args, create=False))
    lines = [f"{'job':<24} {'name':<16} {'state':<12} {'searcher':<12} {'progress':>10}  best of each objective"]
    for r in rows:
        progress = f"{r['done']}/{r['budget'] if r['budget'] is not None else '-'}"
        best = ", ".join(f"{k}={_fmt(v)}" for k, v in r["best"].items())
        lines.append(
            f"{r['job_id']:<24} {r['name'][:16]:<16} {r['state']:<12} {r['searcher']:<12} {progress:>10}  {best}"
        )
    note = "\n(each objective's best on the front, usually from different archs: `nas pareto JOB` shows the archs)"
    emit(args, rows, "\n".join(lines) + note if rows else "no jobs yet; start one with `nas search JOB.yaml`")


def cmd_pareto(args: argparse.Namespace) -> None:
    from nas.queries import front_query

    payload = front_query(
        _store(args, create=False), args.job_id, max_latency=args.max_latency, min_accuracy=args.min_accuracy,
        latency=args.latency_metric, accuracy_metric=args.accuracy_metric, plot=args.plot,
    )  # fmt: skip
    payload["plot"] = args.plot
    rows, hv = payload["front"], payload["hypervolume"]
    text = (
        f"job {payload['job_id']} ({payload['state']}): {len(rows)} Pareto-optimal of {payload['evaluated']} "
        f"evaluated, hypervolume {_fmt(hv)}\n"
        + _front_table(rows, payload["objectives"], payload.get("space_id", ""))
        + (f"\nplot: {args.plot}" if args.plot else "")
    )
    emit(args, payload, text)


def cmd_trials(args: argparse.Namespace) -> None:
    import csv
    import io

    from nas.queries import arch_formatter

    store = _store(args, create=False)
    job = store.job(args.job_id)
    states = [args.state] if args.state else None
    trials = store.trials(job.id, states)
    metrics = list(dict.fromkeys(m for t in trials for m in t.metrics))
    text = arch_formatter(job.space_id, job.spec.get("space"))
    rows = [{**t.to_dict(), "arch_text": text(t.arch)} for t in trials]
    if args.csv is not None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["trial_id", "state", *metrics, "arch", "error"])
        for t, row in zip(trials, rows):
            writer.writerow(
                [t.trial_id, t.state, *(t.metrics.get(m, "") for m in metrics), row["arch_text"], t.error or ""]
            )
        if args.csv == "-":
            print(buffer.getvalue(), end="")
        else:
            Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
            Path(args.csv).write_text(buffer.getvalue())
            print(f"wrote {len(trials)} trials of job {job.id} to {args.csv}")
        return
    lines = [_aligned(["trial", "state", *metrics, "arch"])]
    for t, row in zip(trials, rows):
        cells = [str(t.trial_id), t.state, *(_fmt(t.metrics.get(m)) for m in metrics), row["arch_text"]]
        if t.error:
            cells[-1] += f"  ({t.error[:80]})"
        lines.append(_aligned(cells))
    summary = f"job {job.id} ({job.state}): {len(trials)} trials" + (f" {args.state}" if args.state else "")
    emit(args, {"job_id": job.id, "space_id": job.space_id, "trials": rows}, summary + "\n" + "\n".join(lines))


def cmd_export(args: argparse.Namespace) -> None:
    from nas.export import export_job
    from predictors.quantization import QuantizationError, QuantSettings

    try:
        quant = QuantSettings(method=args.calibration_method, images=args.calibration_images,
                              per_channel=args.weight_scales == "per-channel")  # fmt: skip
    except QuantizationError as exc:
        raise CLIError(str(exc)) from None
    store = _store(args, create=False)
    manifest = export_job(
        store, args.job_id, args.device, args.format, args.out, max_latency=args.max_latency, trial_id=args.trial,
        tolerance=args.tolerance, progress=not args.json, precision=args.precision, quant=quant,
    )  # fmt: skip
    written = [m for m in manifest["models"] if m["file"] in set(manifest["written"])]
    others = len(manifest["models"]) - len(written)
    lines = [
        f"exported {len(written)} model(s) of job {args.job_id} for {args.device} to {args.out} (manifest.json"
        + (f", which lists {others} more from earlier exports):" if others else "):")
    ]
    for m in written:
        latency = m["search_metrics"].get(f"latency_ms@{args.device}")
        lines.append(
            f"  {m['file']}: trial {m['trial_id']}, {_fmt(latency)} ms, search accuracy "
            f"{_fmt(m['search_metrics'].get('accuracy'))}, test accuracy {m['test_accuracy']:.4f}, "
            f"{'fp32 ' if m.get('precision') != 'fp32' else ''}max |diff| {m['check']['max_abs_diff']:.1e}"
            + (
                f"; {m['precision']}: fp32 test accuracy {m['fp32_test_accuracy']:.4f}, same class as fp32 on "
                f"{100 * m['top1_agreement_with_fp32']:.1f}% of test images"
                if m.get("precision") in ("int8", "int8_dynamic", "mixed") else ""
            )
        )  # fmt: skip
    emit(args, manifest, "\n".join(lines))


def add_search_commands(sub: Any) -> None:
    p = sub.add_parser(
        "search", help="run a search job (YAML spec) and store its trials and Pareto front",
        description="Runs a search job. The spec's keys, types and defaults: `nas spec schema` (JSON Schema); "
        "`nas spec check SPEC` checks one without running it; examples/ holds ready-made specs.",
    )  # fmt: skip
    p.add_argument("job", help="job spec YAML (see `nas spec schema`)")
    p.add_argument("--ray-address", help="existing Ray cluster (default: local Ray)")
    p.add_argument(
        "--executor", choices=["auto", "ray", "local"],
        help="override the spec's executor (auto: Ray for parallel or --ray-address jobs that do real work)",
    )  # fmt: skip
    store_args(p)
    p.set_defaults(func=cmd_search)

    spec_sub = sub.add_parser("spec", help="the job spec: its JSON Schema, or check a spec file").add_subparsers(
        dest="spec_command", metavar="SUBCOMMAND"
    )
    spec_sub.required = True
    p = spec_sub.add_parser("schema", help="print the job spec's JSON Schema (keys, types, defaults, per-kind keys)")
    p.add_argument("--out", help="write it to this file instead of stdout")
    p.set_defaults(func=cmd_spec_schema)
    p = spec_sub.add_parser("check", help="check a job spec as `nas search` would, without running it")
    p.add_argument("job", help="job spec YAML")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_spec_check)

    p = sub.add_parser("resume", help="continue an interrupted job without re-evaluating stored trials")
    p.add_argument("job_id", help="the job's id (`nas jobs` lists them)")
    p.add_argument("--ray-address", help="existing Ray cluster (default: local Ray)")
    p.add_argument(
        "--executor", choices=["auto", "ray", "local"],
        help="override the spec's executor (auto: Ray for parallel or --ray-address jobs that do real work)",
    )  # fmt: skip
    store_args(p)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("cancel", help="stop a queued or running job (`nas resume` continues it)")
    p.add_argument("job_id", help="the job's id (`nas jobs` lists them)")
    store_args(p)
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("delete", help="delete a job that is not running, with its trials, fronts and Optuna study")
    p.add_argument("job_id", help="the job's id (`nas jobs` lists them)")
    store_args(p)
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("jobs", help="list jobs with state, progress and each objective's best value on the front")
    store_args(p)
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("pareto", help="a job's Pareto front, optionally under extra bounds, with a plot")
    p.add_argument("job_id", help="the job's id (`nas jobs` lists them)")
    p.add_argument("--max-latency", type=float, help="keep archs at most this latency (the job's latency metric)")
    p.add_argument("--min-accuracy", type=float, help="keep archs with at least this accuracy")
    p.add_argument("--latency-metric", help="metric --max-latency applies to (default: the latency objective)")
    p.add_argument("--accuracy-metric", default="accuracy", help="metric --min-accuracy applies to")
    p.add_argument("--plot", help="write a PNG of the front (dominated points grey, bounds as lines)")
    store_args(p)
    p.set_defaults(func=cmd_pareto)

    p = sub.add_parser("trials", help="every trial of a job: state, metrics, arch (table, --csv or --json)")
    p.add_argument("job_id", help="the job's id (`nas jobs` lists them)")
    p.add_argument(
        "--state", choices=["complete", "failed", "running"], help="only trials in this state (default: all)"
    )
    p.add_argument(
        "--csv", metavar="FILE", help="write CSV (trial_id, state, metrics, arch, error) to FILE, - for stdout"
    )
    store_args(p)
    p.set_defaults(func=cmd_trials)

    p = sub.add_parser("export", help="a supernet job's subnets as deployable files (ONNX, TorchScript, safetensors)")
    p.add_argument("job_id", help="the job's id (`nas jobs` lists them)")
    p.add_argument("--device", required=True, help="target device: the job's latency_ms@DEVICE metric")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--max-latency", type=float, help="the most accurate front member within this latency (ms)")
    which.add_argument("--trial", type=int, help="this trial (default: every member of the Pareto front)")
    p.add_argument(
        "--format",
        choices=["onnx", "torchscript", "safetensors", "timm"],
        default="onnx",
        help="file format (timm: a timm model folder, for the vit space)",
    )
    p.add_argument("--out", required=True, help="folder for the files and manifest.json")
    p.add_argument("--tolerance", type=float, default=1e-3, help="largest output difference accepted in the check")
    p.add_argument(
        "--precision", choices=["arch", "fp32", "int8", "int8_dynamic"], default="arch",
        help="arch (default): as the trial's arch says (float, or its int8 blocks quantized in a space with "
        "precision genes); fp32: float; int8: the whole subnet quantized after the fact, post-training static "
        "(ONNX Runtime QDQ, uint8 activations, int8 weights per channel) calibrated on held-out training "
        "images; int8_dynamic: ONNX Runtime's dynamic quantization (int8 weights, activations quantized per "
        "batch; the usual form for transformers). The manifest gives its test accuracy next to fp32's",
    )  # fmt: skip
    p.add_argument("--calibration-images", type=int, default=256, help="held-out images that calibrate int8 ranges")
    p.add_argument(
        "--weight-scales", choices=["per-channel", "per-tensor"], default="per-channel",
        help="int8 weights: one scale per output channel (default; depthwise layers need it) or per tensor",
    )  # fmt: skip
    p.add_argument(
        "--calibration-method", choices=["minmax", "entropy", "percentile"], default="minmax",
        help="how activation ranges are calibrated for int8",
    )  # fmt: skip
    store_args(p)
    p.set_defaults(func=cmd_export)
