"""fp32 against int8 latency of random once-for-all subnets on ONNX Runtime (this CPU), side by side.

Each subnet is exported as `nas export` writes it and quantized as `nas export --precision int8`
does (static QDQ, uint8 activations, int8 weights per channel, ONNX Runtime's pre-processing);
both models are timed in the same rounds, alternately, at each batch size, so that the ratio
does not depend on how busy the machine is. Weights are the supernet's at initialisation:
latency does not depend on their values, and calibration runs on random images.

    python -m benchmarks.int8_latency --config cifar --archs 20 --batches 1,64
"""

from __future__ import annotations

import argparse
import logging
import statistics
from pathlib import Path
from typing import Any

from benchmarks.common import write_result

logger = logging.getLogger(__name__)


def main() -> None:
    import numpy as np
    import torch

    from kernels.bench import measure_cpu
    from nas.core.space import create_space
    from predictors.onnx_backend import export_onnx, ort_session
    from predictors.quantization import QuantSettings, count_quantized, quantize_static_qdq

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="cifar", help="ofa_mbv3 preset")
    parser.add_argument("--archs", type=int, default=20)
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--rounds", type=int, default=3, help="alternating fp32/int8 rounds per batch size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/int8_latency_cpu.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)  # ONNX Runtime's quantizer logs every bias it copies to the root logger

    space = create_space("ofa_mbv3", config=args.config)
    supernet = space.build_supernet(seed=args.seed).eval()
    rng = np.random.default_rng(args.seed)
    archs = space.sample_unique(args.archs, rng)
    batches = [int(b) for b in args.batches.split(",")]
    threads = torch.get_num_threads()
    channels = space.input_shape()[0]
    rows: list[dict[str, Any]] = []
    for i, arch in enumerate(archs):
        net = supernet.extract(arch).eval()
        r = space.resolution(arch)
        fp32 = export_onnx(net, torch.zeros(1, channels, r, r), dynamic_batch=True)
        calibration = [rng.standard_normal((16, channels, r, r)).astype(np.float32) for _ in range(4)]
        int8 = quantize_static_qdq(fp32, calibration, QuantSettings(images=64, batch_size=16))
        row: dict[str, Any] = {"arch": arch.to_dict(), "resolution": r, "qdq_nodes": count_quantized(int8)["quantize"]}
        for b in batches:
            x = {"x": rng.standard_normal((b, channels, r, r)).astype(np.float32)}
            sessions = {name: ort_session(model, threads) for name, model in (("fp32", fp32), ("int8", int8))}
            samples: dict[str, list[float]] = {"fp32": [], "int8": []}
            for _ in range(args.rounds):
                for name, session in sessions.items():
                    timing = measure_cpu(lambda s=session, feed=x: s.run(None, feed), repeats=10)
                    samples[name].append(timing.median_ms)
            fp32_ms, int8_ms = statistics.median(samples["fp32"]), statistics.median(samples["int8"])
            row[f"batch{b}"] = {"fp32_ms": fp32_ms, "int8_ms": int8_ms, "speedup": fp32_ms / int8_ms}
        rows.append(row)
        logger.info("subnet %d/%d: %s", i + 1, len(archs),
                    ", ".join(f"batch {b} x{row[f'batch{b}']['speedup']:.2f}" for b in batches))  # fmt: skip
    summary = {}
    for b in batches:
        ups = [row[f"batch{b}"]["speedup"] for row in rows]
        summary[f"batch{b}"] = {
            "median_speedup": statistics.median(ups),
            "min_speedup": min(ups),
            "max_speedup": max(ups),
            "int8_slower_share": sum(u < 1.0 for u in ups) / len(ups),
        }
    out = write_result(
        Path(args.out),
        {"config": args.config, "archs": len(rows), "rounds": args.rounds, "threads": threads,
         "onnxruntime": __import__("onnxruntime").__version__, "summary": summary, "subnets": rows},
    )  # fmt: skip
    logger.info("wrote %s: %s", out, summary)


if __name__ == "__main__":
    main()
