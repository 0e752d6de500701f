"""``nas demo``: the main job end to end on embedded defaults.

Today it runs what exists: trains the small ``ofa_mbv3/mnist`` supernet on
scikit-learn's bundled digits through every progressive-shrinking phase (a few
minutes on 2 CPU cores; reused when already trained), then samples subnets and
reports their MACs, parameters and holdout accuracy after BN recalibration, and
extracts one as a plain network checked against the supernet, builds (or reuses) a
CPU latency table of the space and validates it on random subnets, and runs a
short multi-objective search (accuracy vs table latency, evolution, 24 evaluations
in local Ray workers, SQLite store ``runs/demo/nas.db``) whose Pareto front it prints, and
exports every front member (the best model for each latency budget on this CPU) as ONNX,
checked in ONNX Runtime against the network the search evaluated, with a manifest.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

DEMO_TRAINING: dict[str, Any] = {
    "space": {"name": "ofa_mbv3", "config": "mnist"},
    "data": {"name": "digits", "batch_size": 64, "eval_batch_size": 500},
    "training": {"seed": 0, "bn_recal_batches": 5, "eval_random_subnets": 1},
    "phases": [
        {"name": "full", "epochs": 6, "lr": 0.1, "open": {"r": "all"}},
        {"name": "kernel", "epochs": 2, "lr": 0.03, "open": {"ks": "all", "r": "all"}},
        {"name": "depth_1", "epochs": 1, "lr": 0.01, "open": {"ks": "all", "d": "top2", "r": "all"}},
        {
            "name": "depth_2",
            "epochs": 2,
            "lr": 0.01,
            "open": {"ks": "all", "d": "all", "r": "all"},
            "subnets_per_step": 2,
        },
        {"name": "expand_1", "epochs": 1, "lr": 0.01, "open": {"ks": "all", "d": "all", "e": "top2", "r": "all"}},
        {
            "name": "expand_2",
            "epochs": 2,
            "lr": 0.01,
            "open": {"ks": "all", "d": "all", "e": "all", "r": "all"},
            "subnets_per_step": 2,
        },
    ],
}

LATENCY_TABLE = "latency_cpu_b1.json"


def _latency_table(out: Path, space: Any, console: Any, progress: bool) -> dict[str, Any]:
    """Builds (or reuses) the demo space's CPU latency table at batch 1 and validates it on 20 subnets."""
    from predictors.latency import LatencyTable, build_table, validate_table

    path = out / LATENCY_TABLE
    console.print(f"[bold]4. CPU latency table[/bold] (batch 1, torch eager) -> {path}")
    if path.is_file():
        table = LatencyTable.load(path, space_id=space.space_id, device="cpu", dtype="float32", batch=1)
    else:
        table = build_table(space, device="cpu", batch=1, calibration_archs=10, progress=progress)
        if not table.reliable:  # the demo goes on with it, and says so; a real build would be redone
            assert table.provenance is not None
            table.provenance["accepted"] = True
            console.print(f"   [yellow]measured on a busy machine ({'; '.join(table.provenance['reasons'])}); "
                          "the demo keeps it, its latencies are rough[/yellow]")  # fmt: skip
        table.save(path)
    report = validate_table(table, space, 20, progress=progress)
    corrected = report.get("corrected", report["table_sum"])
    console.print(
        f"   {len(table.entries)} op signatures; on 20 random subnets: "
        f"{corrected['within_10pct'] * 100:.0f}% within ±10% of measured, MAPE {corrected['mape']:.1f}% "
        f"(plain sum: {report['table_sum']['within_10pct'] * 100:.0f}%, MAPE {report['table_sum']['mape']:.1f}%)"
    )
    return {"path": str(path), "ops": len(table.entries), "validation": report}


def demo_job(out: Path, seed: int) -> dict[str, Any]:
    """The demo's search job: the trained supernet, accuracy vs table CPU latency, local Ray."""
    return {
        "name": "demo-search",
        "space": {"name": "ofa_mbv3", "config": "mnist"},
        "evaluator": {
            "kind": "supernet",
            "checkpoint": str(out),
            "split": "holdout",
            "recal_batches": 5,
            "latency_table": str(out / LATENCY_TABLE),
        },
        "objectives": [{"metric": "accuracy", "direction": "max"}, {"metric": "latency_ms@cpu", "direction": "min"}],
        "searcher": {"kind": "evolution", "settings": {"population": 8}},
        "budget": {"evaluations": 24},
        "seed": seed,
        "parallelism": 2,
        "executor": "ray",
    }


def _search(out: Path, seed: int, console: Any, progress: bool) -> dict[str, Any]:
    from rich.table import Table

    from nas.job import job_from_dict
    from nas.runner import run_job
    from nas.store import Store

    url = f"sqlite:///{out / 'nas.db'}"
    console.print(
        f"[bold]5. Search[/bold]: evolution, accuracy vs CPU latency, 24 subnets in local Ray workers -> {url}"
    )
    store = Store(url)
    spec = job_from_dict(demo_job(out, seed))
    wanted = spec.to_dict()
    # the same search: its spec as given, but for the hypervolume reference a run records in it
    previous = [j for j in store.jobs() if {**j.spec, "reference": wanted.get("reference")} == wanted]
    if previous and previous[-1].state != "failed":  # reuse a finished search, resume an interrupted one
        result = run_job(None, store, job_id=previous[-1].id, progress=progress)
    else:
        result = run_job(spec, store, progress=progress)
    table = Table(title=f"Pareto front of job {result.job_id} (holdout accuracy vs CPU latency)")
    for column in ("trial", "arch_id", "latency (ms)", "MACs (M)", "holdout acc"):
        table.add_column(column)
    front = sorted(result.front, key=lambda t: t.metrics["latency_ms@cpu"])
    for t in front:
        m = t.metrics
        table.add_row(
            str(t.trial_id), t.arch_id, f"{m['latency_ms@cpu']:.3f}", f"{m['macs'] / 1e6:.2f}", f"{m['accuracy']:.3f}"
        )
    console.print(table)
    console.print(f"   {result.evaluations} evaluations, {result.failed} failed; hypervolume {result.hypervolume:.4g}")
    console.print(f"   more: nas pareto {result.job_id} --store {url} --plot front.png")
    return {
        "job_id": result.job_id,
        "store": url,
        "evaluations": result.evaluations,
        "failed": result.failed,
        "hypervolume": result.hypervolume,
        "front": [t.to_dict() for t in front],
    }


def _export(out: Path, search: dict[str, Any], console: Any) -> dict[str, Any]:
    """Exports the front (the best model per CPU latency budget) as ONNX with a manifest."""
    from nas.export import export_job
    from nas.store import Store

    folder = out / "export"
    console.print(f"[bold]6. Export[/bold]: best model per CPU latency budget (each front member), ONNX -> {folder}")
    manifest = export_job(Store(search["store"]), search["job_id"], "cpu", "onnx", folder)
    models = [m for m in manifest["models"] if m["job_id"] == search["job_id"]]
    for m in models:
        console.print(
            f"   {m['file']}: {m['search_metrics']['latency_ms@cpu']:.3f} ms, test accuracy {m['test_accuracy']:.3f}, "
            f"ONNX Runtime vs torch max |diff| {m['check']['max_abs_diff']:.1e}"
        )
    console.print(f"   more: nas export {search['job_id']} --store {search['store']} --device cpu --max-latency MS ...")
    return {"folder": str(folder), "models": models}


def _train_or_reuse(out: Path, progress: bool) -> Path:
    """Trains the demo supernet into ``out``; reuses a finished one, resumes an interrupted one."""
    import shutil

    from search_spaces.training.config import load_train_config
    from search_spaces.training.trainer import SupernetTrainer, config_record

    config = load_train_config({**DEMO_TRAINING, "training": {**DEMO_TRAINING["training"], "progress": progress}})
    wanted = config_record(config)
    meta_path, state_path = out / "supernet.json", out / "checkpoint" / "state.json"
    if meta_path.is_file() and json.loads(meta_path.read_text()).get("training_config") == wanted:
        logger.info("reusing the trained demo supernet in %s", out)
        return out
    resume = state_path.is_file() and json.loads(state_path.read_text()).get("config") == wanted
    if not resume and out.exists():
        logger.info("%s holds a run of another demo configuration; starting afresh", out)
        shutil.rmtree(out)
    SupernetTrainer(config, out, resume=resume).run()
    return out


def run_demo(seed: int = 0, json_output: bool = False, out_dir: str | Path = "runs/demo") -> dict[str, Any]:
    """Runs the demo and returns its results (also printed unless ``json_output``)."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from predictors.flops import count_cost
    from search_spaces.datasets import load_dataset
    from search_spaces.training.checkpoint import load_supernet
    from search_spaces.training.evaluation import evaluate_subnet

    console = Console(quiet=json_output, stderr=json_output)
    out = Path(out_dir)
    console.print(f"[bold]1. Supernet training[/bold] (ofa_mbv3/mnist on digits, all phases) -> {out}")
    _train_or_reuse(out, progress=not json_output)
    supernet, meta = load_supernet(out)
    supernet.eval()
    space = supernet.space
    console.print(
        f"   test accuracy after BN recalibration: largest subnet {meta['test_accuracy']['max']:.3f}, "
        f"smallest subnet {meta['test_accuracy']['min']:.3f}"
    )
    dataset = load_dataset("digits")
    rng = np.random.default_rng(seed)
    archs = [space.min_arch(), *space.sample_unique(6, rng), space.max_arch()]
    rows = []
    table = Table(title="2. Sampled subnets: holdout accuracy after BN recalibration")
    for column in ("arch_id", "depths", "res", "MACs (M)", "params (M)", "holdout acc"):
        table.add_column(column)
    for arch in archs:
        cost = count_cost(space.static_config(arch))
        metrics = evaluate_subnet(supernet, arch, dataset, "holdout", recal_batches=5, seed=seed)
        rows.append(
            {
                "arch_id": arch.arch_id,
                "arch": arch.to_dict(),
                "macs": cost.macs,
                "params": cost.params,
                "holdout_accuracy": metrics["accuracy"],
            }
        )
        table.add_row(
            arch.arch_id,
            str(arch["d"]),
            str(arch["r"]),
            f"{cost.macs / 1e6:.2f}",
            f"{cost.params / 1e6:.3f}",
            f"{metrics['accuracy']:.3f}",
        )
    console.print(table)

    macs = {row["arch_id"]: row["macs"] for row in rows}
    chosen = sorted(archs, key=lambda a: macs[a.arch_id])[len(archs) // 2]
    r = space.resolution(chosen)
    x = torch.randn(8, space.input_shape()[0], r, r, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad(), supernet.active(chosen):
        reference = supernet(x)
        subnet = supernet.extract(chosen).eval()
        max_diff = float((subnet(x) - reference).abs().max())
    n_params = sum(p.numel() for p in subnet.parameters())
    console.print(
        f"[bold]3. Extraction[/bold]: subnet {chosen.arch_id} as a plain network, {n_params} parameters; "
        f"max |static - supernet| output difference {max_diff:.2e}"
    )
    latency = _latency_table(out, space, console, progress=not json_output)
    search = _search(out, seed, console, progress=not json_output)
    exported = _export(out, search, console)
    return {
        "space_id": space.space_id,
        "supernet": str(out),
        "test_accuracy": meta["test_accuracy"],
        "subnets": rows,
        "extracted": {"arch_id": chosen.arch_id, "params": n_params, "max_abs_diff": max_diff},
        "latency_table": latency,
        "search": search,
        "export": exported,
    }
