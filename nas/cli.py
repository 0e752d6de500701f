"""The ``nas`` command line.

Every reporting command takes ``--json``. Errors exit with status 2 and a
one-line cause plus a hint on stderr. Heavy libraries (torch, ray) are imported
only by the commands that need them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nas.cli_output import CLIError, emit, parse_options
from nas.core.capabilities import PresetSpace, TabularSpace
from nas.core.extras import MissingExtra
from nas.core.space import SearchSpace, create_space, list_spaces
from nas.ray_address import RayConnectionError


def _space_from_args(args: argparse.Namespace) -> SearchSpace:
    kwargs = parse_options(args.option or [])
    if args.config:
        kwargs["config"] = args.config
    try:
        return create_space(args.space, **kwargs)
    except TypeError as exc:
        raise CLIError(f"space {args.space!r} does not take these options: {exc}", "see `nas space info`") from exc


def _cost(space: SearchSpace, arch: Any) -> dict[str, int] | None:
    from predictors.flops import arch_cost

    cost = arch_cost(space, arch)
    return None if cost is None else {"macs": cost.macs, "params": cost.params}


# ------------------------------------------------------------------ commands
def cmd_spaces(args: argparse.Namespace) -> None:
    rows: list[dict[str, Any]] = []
    for name in list_spaces():
        space = create_space(name)
        presets = list(space.presets()) if isinstance(space, PresetSpace) else []
        rows.append({"name": name, "space_id": space.space_id, "size": space.size(), "configs": presets})
    text = "\n".join(f"{r['name']:<12} size {r['size']:.3e}  configs: {', '.join(r['configs']) or '-'}" for r in rows)
    emit(args, rows, text)


def cmd_space_info(args: argparse.Namespace) -> None:
    space = _space_from_args(args)
    if args.arch:
        _arch_info(args, space)
        return
    if args.table:
        raise CLIError("--table needs --arch: the latency of which arch?", "add --arch '{...}' (an arch as JSON)")
    info = space.describe()
    lines = [f"{k}: {_json_text(v)}" for k, v in info.items() if k != "config"]
    for label, arch in (("max_arch", space.max_arch()), ("min_arch", space.min_arch())):
        info[label] = {"arch": arch.to_dict(), "arch_id": arch.arch_id, **(_cost(space, arch) or {})}
        if (reason := space.invalid_reason(arch)) is not None:
            info[label]["invalid"] = reason
        # pasteable: the space's own notation where it has one (NB201's |op~0|+...|), else JSON
        shown = space.to_string(arch) if hasattr(space, "to_string") else _json_text(arch.to_dict())
        extra = "  ".join(f"{k}={_json_text(v)}" for k, v in info[label].items() if k != "arch")
        lines.append(f"{label}: {shown}  {extra}")
    emit(args, info, "\n".join(lines))


def _json_text(value: Any) -> str:
    """Values printed so they paste back: JSON for lists and dicts, as they are otherwise."""
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (dict, list, tuple)) else str(value)


def _arch_info(args: argparse.Namespace, space: SearchSpace) -> None:
    """One arch (``--arch`` JSON, or a space's own string form) in canonical form, with its MACs,
    params and, given ``--table``, its latency on the table's device."""
    text = args.arch.strip()
    try:
        arch = space.make(json.loads(text)) if text.startswith(("{", "[")) else None
    except json.JSONDecodeError as exc:
        raise CLIError(f"--arch is not valid JSON: {exc}", "for example --arch '{\"ks\": [...], ...}'") from exc
    if arch is None:
        if not hasattr(space, "from_string"):
            raise CLIError(f"--arch: {space.space_id} archs are JSON objects", "give the arch as JSON")
        arch = space.from_string(text)
    payload: dict[str, Any] = {"space_id": space.space_id, "arch_id": arch.arch_id, "arch": arch.to_dict()}
    payload.update(_cost(space, arch) or {})
    if args.table:
        from predictors.latency import LatencyTable

        table = LatencyTable.load(args.table, space_id=space.space_id)
        payload[f"latency_ms@{table.device}"] = table.predict(space, arch)
    lines = [f"{k}: {_json_text(v)}" for k, v in payload.items()]
    emit(args, payload, "\n".join(lines))


def cmd_space_sample(args: argparse.Namespace) -> None:
    if args.n <= 0:
        raise CLIError(f"-n must be positive, got {args.n}", "for example -n 5")
    space = _space_from_args(args)
    rng = np.random.default_rng(args.seed)
    archs = [space.sample(rng) for _ in range(args.n)]
    rows: list[dict[str, Any]] = [{"arch_id": a.arch_id, "arch": a.to_dict(), **(_cost(space, a) or {})} for a in archs]
    payload = {"space": space.name, "space_id": space.space_id, "seed": args.seed, "archs": rows}
    lines = []
    for row in rows:
        cost = f"  MACs {row['macs'] / 1e6:8.2f}M  params {row['params'] / 1e6:6.3f}M" if "macs" in row else ""
        lines.append(f"{row['arch_id']}{cost}  {json.dumps(row['arch'], separators=(',', ':'))}")
    emit(args, payload, "\n".join(lines))


@contextlib.contextmanager
def interrupt_sets(event: threading.Event, message: str) -> Iterator[None]:
    """While inside: the first Ctrl-C sets ``event`` (the work stops cleanly at its next check),
    a second one interrupts at once. Only in the main thread (signals go nowhere else)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def first(signum: int, frame: Any) -> None:
        event.set()
        print(f"\n{message}", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_train(args: argparse.Namespace) -> None:
    from search_spaces.training.config import load_train_config
    from search_spaces.training.trainer import SupernetTrainer

    config = load_train_config(args.config)
    out = Path(args.out) if args.out else Path("runs") / f"train-{Path(args.config).stem}"
    stop = threading.Event()
    args.resume_command = f"nas train {args.config} --out {out} --resume"
    with interrupt_sets(stop, "stopping after this step, with a checkpoint (Ctrl-C again stops at once)"):
        result = SupernetTrainer(config, out, resume=args.resume, stop=stop).run()
    if result.get("reason") == "interrupted":  # main() says how to continue, as for a second Ctrl-C
        raise KeyboardInterrupt
    if result.get("stopped"):
        text = f"stopped at step {result['global_step']} (max_steps); `{args.resume_command}` continues"
    else:
        acc = result["test_accuracy"]
        text = (
            f"trained supernet written to {out}/supernet.safetensors\n"
            f"test accuracy after BN recalibration: max subnet {acc['max']:.4f}, min subnet {acc['min']:.4f}"
        )
    emit(args, result, text)


def cmd_eval(args: argparse.Namespace) -> None:
    from nas.core.config import from_dict
    from search_spaces.training.checkpoint import load_supernet
    from search_spaces.training.config import DataSpec
    from search_spaces.training.evaluation import evaluate_subnet, load_training_data

    supernet, meta = load_supernet(args.checkpoint)
    space = supernet.space
    if args.arch:
        try:
            arch = space.make(json.loads(args.arch))
        except json.JSONDecodeError as exc:
            raise CLIError(f"--arch is not valid JSON: {exc}", "for example --arch '{\"ks\": [...], ...}'") from exc
    elif args.min:
        arch = space.min_arch()
    else:
        arch = space.max_arch()
    data = from_dict(DataSpec, meta["data"], "data")
    dataset = load_training_data(data, space)
    metrics = evaluate_subnet(
        supernet,
        arch,
        dataset,
        args.split,
        recal_batches=args.recal_batches,
        batch_size=data.eval_batch_size,
    )
    payload = {
        "arch_id": arch.arch_id,
        "arch": arch.to_dict(),
        "split": args.split,
        **metrics,
        **(_cost(space, arch) or {}),
    }
    text = (
        f"{arch.arch_id}: {args.split} accuracy {metrics['accuracy']:.4f} "
        f"({metrics['samples']} images, BN recalibrated on {args.recal_batches} training batches)"
    )
    emit(args, payload, text)


def cmd_proxy_score(args: argparse.Namespace) -> None:
    from predictors.proxy_eval import proxy_batch, score_nb201

    if not isinstance(create_space(args.space), TabularSpace):
        raise CLIError(f"--space {args.space}: has no benchmark tables to score against", "use --space nb201")
    from nas.data import DataError, path

    if not args.benchmark:  # the table shipped with the package
        args.benchmark = str(path("nb201-accuracy"))
    if not args.data:  # CIFAR-10 as `nas data fetch cifar10` leaves it
        try:
            args.data = str(path("cifar10"))
        except DataError:
            raise CLIError(
                "--data: CIFAR-10 images are needed (the proxies score one training batch)",
                "`nas data fetch cifar10` downloads them once (162 MB); or give --data a folder of batches, "
                "a train/test JPEG tree or its .tar.xz",
            ) from None
    proxies = [p.strip() for p in args.proxies.split(",") if p.strip()]
    batch = proxy_batch(args.data, args.batch_size, args.seed)
    result = score_nb201(
        proxies,
        args.archs,
        args.benchmark,
        batch,
        dataset=args.dataset,
        seed=args.seed,
        results_path=args.out,
        progress=not args.json,
        workers=args.workers,
    )
    lines = [f"{'proxy':<10} {'spearman':>9} {'kendall':>8} {'published':>9} {'s/arch':>7}"]
    for name, m in result["proxies"].items():
        published = f"{m['published_spearman']:.3f}" if "published_spearman" in m else "-"
        lines.append(
            f"{name:<10} {m['spearman']:>9.3f} {m['kendall']:>8.3f} {published:>9} {m['seconds_per_arch']:>7.3f}"
        )
    lines.append(f"({result['archs']} archs, {args.dataset}, seed {args.seed})")
    emit(args, result, "\n".join(lines))


def _predictor_report(name: str, metrics: dict[str, Any]) -> str:
    base = metrics.get("macs_baseline")
    line = (
        f"{name}: n={metrics['n']}  kendall {metrics['kendall']:.3f}  spearman {metrics['spearman']:.3f}  "
        f"rmse {metrics['rmse']:.4f}  mape {metrics['mape']:.2f}%  within ±10% {metrics['within_10pct'] * 100:.1f}%"
    )
    if base:
        line += (
            f"\nMACs-only baseline: kendall {base['kendall']:.3f}  spearman {base['spearman']:.3f}  "
            f"within ±10% {base['within_10pct'] * 100:.1f}% (a line on MACs fitted to the same archs)"
        )
    return line


def cmd_predictor_fit(args: argparse.Namespace) -> None:
    from nas.core.io import read_json
    from predictors.learned import Predictor, evaluate_predictor, load_dataset_file

    space = _space_from_args(args)
    archs, values = load_dataset_file(args.data, space, args.target)
    if not 0.0 <= args.test_fraction < 1.0:
        raise CLIError(f"--test-fraction must be within [0, 1), got {args.test_fraction}", "for example 0.2")
    order = np.random.default_rng(args.seed).permutation(len(archs))
    n_test = round(len(archs) * args.test_fraction)
    test, train = order[:n_test], order[n_test:]
    base = None
    if args.base:
        record = read_json(args.base, "a predictor file", "fit one with `nas predictor fit`")
        base = Predictor.base_from_record(record, args.base, space)
    predictor = Predictor(
        space, args.kind, args.seed, encoding=args.encoding, target=args.target, latency_table=args.latency_table,
        base=base,
    )  # fmt: skip
    predictor.fit([archs[i] for i in train], [values[i] for i in train])
    path = predictor.save(args.out)
    payload: dict[str, Any] = {
        "predictor": str(path), "kind": predictor.kind, "target": args.target, "encoding": predictor.encoding,
        "cost_features": predictor.cost_features, "train": len(train), "test": n_test,
    }  # fmt: skip
    costs = " + MACs/params" + (" + table sums" if args.latency_table else "") if predictor.cost_features else ""
    text = (
        f"fitted {predictor.kind} predictor of {args.target} ({predictor.encoding} features{costs}) "
        f"on {len(train)} archs -> {path}"
    )
    if n_test >= 3:
        payload["test_metrics"] = evaluate_predictor(predictor, [archs[i] for i in test], [values[i] for i in test])
        text += "\n" + _predictor_report("held-out", payload["test_metrics"])
    emit(args, payload, text)


def cmd_predictor_eval(args: argparse.Namespace) -> None:
    from predictors.learned import Predictor, evaluate_predictor, load_dataset_file

    predictor = Predictor.load(args.predictor)
    archs, values = load_dataset_file(args.data, predictor.space, args.target or predictor.target)
    metrics = evaluate_predictor(predictor, archs, values)
    emit(args, metrics, _predictor_report(Path(args.data).name, metrics))


def cmd_predictor_collect(args: argparse.Namespace) -> None:
    from predictors.collect import collect

    new = collect(
        args.run,
        args.archs,
        args.out,
        seed=args.seed,
        workers=args.workers,
        split=args.split,
        recal_batches=args.recal_batches,
        progress=not args.json,
    )
    emit(args, {"out": args.out, "new": new}, f"measured {new} new subnets into {args.out}")


def cmd_demo(args: argparse.Namespace) -> None:
    from nas.demo import run_demo

    result = run_demo(seed=args.seed, json_output=args.json, out_dir=args.out)
    if args.json:
        emit(args, result, "")


# ------------------------------------------------------------------ parser
def _command_group(sub: Any, name: str, help_text: str) -> Any:
    """A subcommand that itself has required subcommands (``nas space sample``)."""
    group = sub.add_parser(name, help=help_text).add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
    group.required = True
    return group


class HelpFormatter(argparse.HelpFormatter):
    """Help that states each option's default (when it has one worth stating)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        shown = default not in (None, False, argparse.SUPPRESS) and not isinstance(default, bool)
        if shown and action.option_strings and "%(default)" not in text and str(default) not in text:
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """``argparse`` with :class:`HelpFormatter`; subcommands inherit it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="nas",
        description="Hardware-aware neural architecture search: supernets, search, latency, export.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s (hwnas) {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("demo", help="run the main job end to end on embedded defaults")
    p.add_argument("--seed", type=int, default=0, help="seeds the training, the search and the data order")
    p.add_argument("--out", default="runs/demo", help="folder of the demo's trained supernet (reused when present)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_demo)

    from nas.cli_search import add_search_commands
    from nas.cli_serve import add_serve_command

    add_search_commands(sub)
    add_serve_command(sub)
    from nas.cli_latency import add_latency_commands
    from nas.cli_supernet import add_supernet_commands

    add_latency_commands(sub, _command_group)
    add_supernet_commands(sub, _command_group)
    from nas.cli_devices import add_device_commands

    add_device_commands(sub)
    from nas.cli_data import add_data_commands

    add_data_commands(sub, _command_group)

    p = sub.add_parser("train", help="train a supernet through all progressive-shrinking phases")
    p.add_argument("config", help="training config (YAML)")
    p.add_argument("--out", help="output folder (default runs/train-<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="accuracy of one subnet of a trained supernet (after BN recalibration)")
    p.add_argument("checkpoint", help="output folder of `nas train` (or its supernet.json)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--arch", help="arch as JSON")
    which.add_argument("--min", action="store_true", help="the smallest subnet")
    which.add_argument("--max", action="store_true", help="the largest subnet (default)")
    p.add_argument("--split", choices=["test", "holdout"], default="test", help="data split to score on")
    p.add_argument("--recal-batches", type=int, default=10, help="batches of training data that recalibrate BN first")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_eval)

    proxy_sub = _command_group(sub, "proxy", "zero-cost proxies")
    p = proxy_sub.add_parser("score", help="score random archs and correlate with benchmark accuracy")
    p.add_argument("--space", default="nb201", help="space to sample archs from (`nas spaces`)")
    p.add_argument("--dataset", default="cifar10", help="ground-truth column: cifar10, cifar100, imagenet16-120")
    p.add_argument(
        "--benchmark",
        help="NB201 accuracy CSV (ArchitectureString + accuracy columns; default: the table shipped, nas data)",
    )
    p.add_argument("--data", help="CIFAR-10 images for the proxy batch (default: `nas data fetch cifar10`'s)")
    p.add_argument(
        "--proxies", default="synflow,jacob_cov,snip,grad_norm,grasp,fisher,naswot", help="comma-separated proxy names"
    )
    p.add_argument("--archs", type=int, default=100, help="random archs to score")
    p.add_argument("--batch-size", type=int, default=64, help="images in the proxies' one batch")
    p.add_argument("--seed", type=int, default=0, help="seeds the arch sample, the batch and the weights")
    p.add_argument(
        "--out", help="JSONL of per-arch scores (resumed when present; a search reads it as evaluator.zero_cost_scores)"
    )
    p.add_argument("--workers", type=int, default=1, help="archs scored at once, one process each")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_proxy_score)

    predictor_sub = _command_group(sub, "predictor", "learned accuracy and latency predictors")
    p = predictor_sub.add_parser("fit", help="fit a predictor on (arch, metric) data")
    p.add_argument("--data", required=True, help="JSONL or CSV of archs and metrics")
    p.add_argument(
        "--space", required=True, help="space name (ofa_mbv3, ofa_resnet50, vit, nb201; `nas spaces` lists them)"
    )
    p.add_argument("--config", help="space configuration preset")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="space config override (repeatable)")
    p.add_argument(
        "--kind",
        help="predictor kind: mlp, gp, ridge, gbm, latency or a registered plug-in "
        "(default: latency for a latency_ms target, else mlp)",
    )
    p.add_argument("--latency-table", help="a latency table of the space: its sums join a latency predictor's features")
    p.add_argument(
        "--encoding",
        help="the space's feature encoding, several joined with + (default: its first, for a latency its "
        "latency_encoding; nb201: summary, path, onehot, counts)",
    )
    p.add_argument("--target", default="accuracy", help="metric column to predict")
    p.add_argument(
        "--base", help="transfer: a fitted predictor (e.g. of fp32 accuracy, on the float space) whose "
        "predictions this one corrects, fitted on few measurements (e.g. int8 accuracies)",
    )  # fmt: skip
    p.add_argument("--test-fraction", type=float, default=0.2, help="held out for the report")
    p.add_argument("--seed", type=int, default=0, help="seeds the split and the model")
    p.add_argument("--out", required=True, help="predictor file (JSON)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_predictor_fit)
    p = predictor_sub.add_parser("collect", help="measure random subnets of a trained supernet (JSONL)")
    p.add_argument("run", help="output folder of `nas train`")
    p.add_argument("--archs", type=int, default=100, help="random subnets to measure")
    p.add_argument("--out", required=True, help="JSONL file (appended; measured subnets are skipped)")
    p.add_argument("--workers", type=int, default=1, help="processes")
    p.add_argument("--split", choices=["holdout", "test"], default="holdout", help="data split to score on")
    p.add_argument("--recal-batches", type=int, default=10, help="batches of training data that recalibrate BN first")
    p.add_argument("--seed", type=int, default=0, help="seeds the subnet sample")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_predictor_collect)
    p = predictor_sub.add_parser("eval", help="rank metrics of a saved predictor on data")
    p.add_argument("predictor", help="predictor file from `nas predictor fit`")
    p.add_argument("--data", required=True, help="JSONL or CSV of archs and metrics")
    p.add_argument("--target", help="metric column (default: the one the predictor was fitted on)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_predictor_eval)

    p = sub.add_parser("spaces", help="list the search spaces")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_spaces)

    space_sub = _command_group(sub, "space", "inspect a search space")

    def add_space_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("space", help=f"space name ({', '.join(list_spaces())})")
        p.add_argument("--config", help="space configuration preset (ofa_mbv3: imagenet, cifar, mnist)")
        p.add_argument("--option", action="append", metavar="KEY=VALUE", help="config override (repeatable)")
        p.add_argument("--json", action="store_true", help="machine-readable output")

    p = space_sub.add_parser("sample", help="sample random archs with their MACs and params")
    add_space_args(p)
    p.add_argument("-n", type=int, default=5, help="number of archs")
    p.add_argument("--seed", type=int, default=0, help="seeds the sample")
    p.set_defaults(func=cmd_space_sample)

    p = space_sub.add_parser("info", help="describe a space (genes, size, corner archs), or one arch with --arch")
    add_space_args(p)
    p.add_argument("--arch", help="one arch (JSON, or the space's string form) to show with its MACs and params")
    p.add_argument("--table", help="a latency table of the space: the arch's latency too (needs --arch)")
    p.set_defaults(func=cmd_space_info)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hwnas")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown (not installed)"


def _value_error_hint(args: argparse.Namespace) -> str:
    """Where the rules for what was refused are written down."""
    if args.command in ("search", "spec"):
        return (
            "`nas spec schema` prints every key of a job spec, with types and defaults; "
            "`nas spec check SPEC` checks one"
        )
    return f"see `nas {args.command} --help`"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    # With --json, stdout carries only the JSON document: whatever else writes to it while the
    # command runs (Ray Tune's tables, a library's print) goes to stderr instead.
    args.stdout = sys.stdout
    quiet = contextlib.redirect_stdout(sys.stderr) if getattr(args, "json", False) else contextlib.nullcontext()
    try:
        with quiet:
            args.func(args)
    except (MissingExtra, RayConnectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CLIError as exc:
        print(f"error: {exc}" + (f" (hint: {exc.hint})" if exc.hint else ""), file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc} (hint: {_value_error_hint(args)})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        given = getattr(args, "resume_command", None)  # set by the command once it knows it
        if args.command in ("search", "resume"):
            resume = given or (f"nas resume {args.job_id}" if args.command == "resume" else "nas resume JOB_ID")
            hint = f"`{resume}` continues the job"
        elif args.command == "train":
            hint = f"`{given or 'nas train ... --resume'}` continues from the last checkpoint"
        else:
            hint = "run the command again"
        print(f"error: interrupted (hint: {hint})", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
