"""Quantization-aware accuracy predictor: transfer from a float predictor against a fit from scratch.

On a trained supernet (default: the quantization-aware run of ``benchmarks.int8_accuracy``):
float test accuracy of ``--float-archs`` random subnets (cheap: torch), and the accuracy as
deployed of ``--train + --test`` random subnets of the space with precision genes (each block
int8 or float at random; ONNX Runtime running the quantized model). Then, for each predictor kind,
a fit from scratch on the ``--train`` quantized measurements against the same fit correcting a
float predictor (``Predictor(base=...)``, APQ's transfer), both scored on the ``--test`` held-out
quantized subnets (Kendall tau, next to the MACs-only baseline). Measurements are cached in
``--cache`` (JSONL) and reused.

    python -m benchmarks.int8_predictor --run runs/int8_accuracy/qat
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from benchmarks.common import write_result

logger = logging.getLogger(__name__)


def _measured(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {row["key"]: row for row in rows}


def main() -> None:
    import numpy as np
    import torch
    from scipy.stats import kendalltau

    from nas.core.precision import int8_layers
    from predictors.collect import _dataset
    from predictors.learned import Predictor, evaluate_predictor
    from predictors.quantization import QuantSettings, int8_accuracy
    from search_spaces.training.checkpoint import load_supernet
    from search_spaces.training.evaluation import accuracy, recalibrated_subnet

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/int8_accuracy/qat", help="trained supernet (run folder)")
    parser.add_argument("--float-archs", type=int, default=300)
    parser.add_argument("--train", type=int, default=100)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--kinds", default="ridge,gp,mlp")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default="runs/int8_predictor.jsonl")
    parser.add_argument("--out", default="benchmarks/results/int8_predictor_fashion_mnist.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)

    supernet, meta = load_supernet(args.run)
    supernet.eval()
    dataset = _dataset(supernet, meta)
    floats = supernet.space
    space = type(floats)(floats.config_dict() | {"precisions": ["int8", "fp32"]})
    rng = np.random.default_rng(args.seed)
    float_archs = floats.sample_unique(args.float_archs, rng)
    quant_archs = space.sample_unique(args.train + args.test, rng)
    cache = Path(args.cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    done = _measured(cache)
    threads = torch.get_num_threads()

    def measure(arch: Any, kind: str) -> float:
        key = f"{kind}:{arch.space_id}:{arch.arch_id}"
        if key not in done:
            floated = space.float_arch(arch) if kind == "int8" else arch
            net = recalibrated_subnet(supernet, floated, dataset, recal_batches=10, device=torch.device("cpu"))
            r = floats.resolution(floated)
            if kind == "int8":
                value = int8_accuracy(
                    net, dataset, "test", r, int8_layers(space, arch), QuantSettings(), threads=threads
                )
            else:
                value = accuracy(net, dataset, "test", r)
            done[key] = {"key": key, "arch": arch.to_dict(), "accuracy": value["accuracy"]}
            with cache.open("a") as fh:
                fh.write(json.dumps(done[key]) + "\n")
            logger.info("%s %d measured: %.4f", kind, len(done), value["accuracy"])
        return float(done[key]["accuracy"])

    y_float = [measure(a, "fp32") for a in float_archs]
    y_quant = [measure(a, "int8") if int8_layers(space, a) else measure(space.float_arch(a), "fp32")
               for a in quant_archs]  # fmt: skip
    train, test = quant_archs[: args.train], quant_archs[args.train :]
    y_train, y_test = y_quant[: args.train], y_quant[args.train :]
    results: dict[str, Any] = {}
    for kind in args.kinds.split(","):
        base = Predictor(floats, kind, args.seed).fit(float_archs, y_float)
        scratch = Predictor(space, kind, args.seed).fit(train, y_train)
        transfer = Predictor(space, kind, args.seed, base=base).fit(train, y_train)
        results[kind] = {
            "scratch": evaluate_predictor(scratch, test, y_test),
            "transfer": evaluate_predictor(transfer, test, y_test),
            "float_predictor_alone_kendall": float(
                kendalltau(base.predict([space.float_arch(a) for a in test])[0], y_test).statistic
            ),
        }
        logger.info(
            "%s: Kendall tau scratch %.3f, transfer %.3f", kind, results[kind]["scratch"]["kendall"],
            results[kind]["transfer"]["kendall"],
        )  # fmt: skip
    write_result(
        args.out,
        {
            "benchmark": "int8_predictor",
            "run": args.run,
            "space_id": space.space_id,
            "settings": {k: v for k, v in vars(args).items() if k not in ("out", "cache")},
            "int8": "blocks int8 or float at random (stem, first block and head float); ONNX Runtime static QDQ",
            "measured": {"float": len(y_float), "quantized_train": len(train), "quantized_test": len(test)},
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
