"""A small latency benchmark program for one ONNX model, run in its own process: what a device's
command backend calls (``nas devices add NAME --command 'python -m nas.testing.ort_benchmark
--model {model} --threads {threads}'``), and a template for a real device's wrapper script.

Prints ``latency: <mean> ms``, timed as the in-process backends time (``kernels.bench.measure_cpu``):
``--warmup`` untimed runs, then ``--runs`` samples, each the mean of enough back-to-back runs to
last 2 ms; on a random input of the model's own shape (``--batch`` fills a free batch axis).
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="ONNX file")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads")
    parser.add_argument("--batch", type=int, default=1, help="for a model whose batch axis is free")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)

    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # a missing or corrupt file: say so on one line, exit non-zero
        print(f"error: cannot load {args.model}: {exc}", file=sys.stderr)
        return 2
    feed = {}
    for inp in session.get_inputs():
        shape = [d if isinstance(d, int) else args.batch for d in inp.shape]
        feed[inp.name] = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for _ in range(args.warmup):
        session.run(None, feed)
    started = time.perf_counter()
    session.run(None, feed)
    inner = max(1, int(np.ceil(0.002 / max(time.perf_counter() - started, 1e-9))))
    samples = []
    for _ in range(args.runs):
        started = time.perf_counter()
        for _ in range(inner):
            session.run(None, feed)
        samples.append((time.perf_counter() - started) / inner * 1000.0)
    print(f"latency: {float(np.mean(samples)):.6f} ms (mean of {args.runs} samples of {inner} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
