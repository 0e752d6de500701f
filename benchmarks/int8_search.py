"""Searching arch x precision against the two usual shortcuts, at equal evaluations.

On one trained supernet, three searches of ``--evaluations`` each (evolution, same seed) for
accuracy and CPU latency on ONNX Runtime:

- ``joint``: the space with a precision per block (``int8``/``fp32``), accuracy measured as deployed;
- ``fp32_then_int8``: the float space searched in float, then every front member quantized
  (all its blocks int8), as post-training quantization after a float search does;
- ``all_int8``: the space whose blocks are all int8.

Every final front member is then measured the same way: accuracy on the test split as deployed
(ONNX Runtime running the quantized file), latency end to end on ONNX Runtime (``--rounds``
rounds), and the hypervolume of (accuracy, latency) computed against one reference point shared
by all strategies of a seed (the worst accuracy and 1.1x the worst latency among their points).
Latency tables (onnxruntime backend) and jobs are kept in ``--work`` and reused.

    python -m benchmarks.int8_search --run runs/int8_accuracy/qat --evaluations 60 --seeds 0,1
"""

from __future__ import annotations

import argparse
import logging
import statistics
from pathlib import Path
from typing import Any

from benchmarks.common import write_result

logger = logging.getLogger(__name__)

STRATEGIES = {"joint": ["int8", "fp32"], "fp32_then_int8": [], "all_int8": ["int8"]}


def _table(space: Any, path: Path, batch: int) -> Path:
    from predictors.latency import build_table

    if not path.is_file():
        logger.info("building %s", path)
        table = build_table(space, backend="onnxruntime", batch=batch, calibration_archs=20, rounds=2, progress=False)
        if not table.reliable:  # the benchmark goes on, and its tables say so (provenance)
            assert table.provenance is not None
            logger.warning("%s is unreliable: %s", path, "; ".join(table.provenance["reasons"]))
            table.provenance["accepted"] = True
        table.save(path)
    return path


def main() -> None:
    import torch

    from nas.core.pareto import Objective, hypervolume, pareto_front
    from nas.core.precision import int8_layers
    from nas.job import job_from_dict
    from nas.runner import run_job
    from nas.store import Store
    from predictors.collect import _dataset
    from predictors.latency import measure_arch
    from predictors.quantization import QuantSettings, int8_accuracy
    from search_spaces.training.checkpoint import load_supernet
    from search_spaces.training.evaluation import accuracy, recalibrated_subnet

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/int8_accuracy/qat", help="trained supernet (run folder)")
    parser.add_argument("--evaluations", type=int, default=60)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the final latency measurements")
    parser.add_argument("--work", default="runs/int8_search")
    parser.add_argument("--out", default="benchmarks/results/int8_search_fashion_mnist.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    supernet, meta = load_supernet(args.run)
    supernet.eval()
    dataset = _dataset(supernet, meta)
    floats = supernet.space
    config = floats.config_dict()
    spaces = {name: type(floats)({**config, "precisions": p}) for name, p in STRATEGIES.items()}
    tables = {name: _table(s, work / f"table_{name}_b{args.batch}.json", args.batch) for name, s in spaces.items()}
    store = Store(f"sqlite:///{work / 'jobs.db'}")
    deployed_space = spaces["joint"]  # where every final member is measured: its blocks' precisions
    objectives = [Objective("accuracy", "max"), Objective("latency_ms", "min")]
    threads = torch.get_num_threads()
    measured: dict[str, dict[str, float]] = {}

    def deployed(arch: Any) -> dict[str, float]:
        """Test accuracy as deployed and end-to-end latency of an arch of the joint space."""
        if arch.arch_id not in measured:
            floated = deployed_space.float_arch(arch)
            net = recalibrated_subnet(supernet, floated, dataset, recal_batches=10, device=torch.device("cpu"))
            r = floats.resolution(floated)
            layers = int8_layers(deployed_space, arch)
            acc = (
                int8_accuracy(net, dataset, "test", r, layers, QuantSettings(), threads=threads)
                if layers
                else accuracy(net, dataset, "test", r)
            )["accuracy"]
            latency = measure_arch(deployed_space, arch, args.batch, "cpu", "float32", "onnxruntime", args.rounds)
            measured[arch.arch_id] = {"accuracy": acc, "latency_ms": latency["mean_ms"]}
        return measured[arch.arch_id]

    results: dict[str, Any] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        fronts: dict[str, list[dict[str, Any]]] = {}
        for name in spaces:
            spec = {
                "name": f"{name}-seed{seed}",
                "space": {"name": floats.name, "options": {"config": {**config, "precisions": STRATEGIES[name]}}},
                "evaluator": {"kind": "supernet", "checkpoint": args.run, "latency_table": str(tables[name])},
                "objectives": [{"metric": "accuracy", "direction": "max"},
                               {"metric": "latency_ms@cpu", "direction": "min"}],
                "searcher": {"kind": "evolution", "settings": {"population": 16}},
                "budget": {"evaluations": args.evaluations},
                "executor": "local",
                "seed": seed,
            }  # fmt: skip
            done = next((j for j in store.jobs() if j.name == spec["name"] and j.state == "done"), None)
            job_id = done.id if done else run_job(job_from_dict(spec), store, progress=False).job_id
            trials = [t for t in store.trials(job_id) if t.state == "complete"]
            points = [t.metrics for t in trials]
            front = [trials[i] for i in pareto_front(points, [objectives[0], Objective("latency_ms@cpu", "min")])]
            members = []
            for trial in front:
                data = dict(trial.arch)
                if name == "fp32_then_int8":  # the float search's member, then quantized whole
                    data["q"] = ["int8"] * deployed_space.config.num_blocks
                arch = deployed_space.make(data)
                members.append({"arch": arch.to_dict(), "search": trial.metrics, **deployed(arch)})
            fronts[name] = members
            logger.info("seed %d %s: %d front members", seed, name, len(members))
        every = [m for members in fronts.values() for m in members]
        reference = {
            "accuracy": min(m["accuracy"] for m in every),
            "latency_ms": 1.1 * max(m["latency_ms"] for m in every),
        }
        results[f"seed{seed}"] = {
            "reference": reference,
            "hypervolume": {name: hypervolume(members, objectives, reference) for name, members in fronts.items()},
            "fronts": fronts,
        }
        logger.info("seed %d hypervolume: %s", seed, results[f"seed{seed}"]["hypervolume"])
    summary = {name: statistics.fmean(r["hypervolume"][name] for r in results.values()) for name in STRATEGIES}
    write_result(
        args.out,
        {
            "benchmark": "int8_search",
            "run": args.run,
            "settings": {k: v for k, v in vars(args).items() if k != "out"},
            "mean_hypervolume": summary,
            "joint_wins": {
                f"seed{s}": all(r["hypervolume"]["joint"] > r["hypervolume"][o] for o in STRATEGIES if o != "joint")
                for s, r in zip(args.seeds.split(","), results.values())
            },
            "seeds": results,
        },
    )


if __name__ == "__main__":
    main()
