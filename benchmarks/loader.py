"""Streaming loader throughput and memory on a generated ImageNet-style tree of JPEGs.

Generates ``train/<class>/*.JPEG`` and ``val/`` trees of 224-pixel JPEGs (``--images`` training
images, then four times as many), and for each tree and each worker count measures training
batches (random-resized crop + flip, one of the imagenet preset's resolutions per batch):
images/s and the peak resident memory of the loading process and of its workers (sampled
every 50 ms; for workers also their unique set, since forked workers share the parent's
pages). Memory must not grow with the tree: the file list is a numpy byte array and images
are decoded per batch.

    python -m benchmarks.loader --out benchmarks/results/loader_cpu.json
"""

from __future__ import annotations

import argparse
import io
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from benchmarks.common import write_result


def _write_class(args: tuple[Path, int, int, int, int]) -> int:
    from PIL import Image

    folder, label, start, count, size = args
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(label)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(start, start + count):
        a, b, c = rng.random(3)
        image = np.stack([np.sin(6 * a * xx + i), np.cos(5 * b * yy), np.sin(4 * c * (xx + yy))], -1)
        image = (127 + 100 * image + rng.normal(0, 8, image.shape)).clip(0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=90)
        (folder / f"img{i:07d}.JPEG").write_bytes(buffer.getvalue())
    return count


def generate_tree(root: Path, images: int, classes: int, size: int, workers: int) -> dict[str, Any]:
    """A tree with ``images`` training images over ``classes`` classes (plus 2% in val/); reused if present."""
    marker = root / f".complete-{images}-{classes}-{size}"
    if not marker.exists():
        per_class, val_per_class = images // classes, max(1, images // classes // 50)
        jobs = [(root / "train" / f"n{c:05d}", c, 0, per_class, size) for c in range(classes)]
        jobs += [(root / "val" / f"n{c:05d}", c + classes, 0, val_per_class, size) for c in range(classes)]
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_write_class, jobs))
        marker.touch()
    files = list((root / "train").rglob("*.JPEG"))
    return {"train_images": len(files), "bytes": sum(f.stat().st_size for f in files)}


class PeakMemory:
    """Samples the resident memory of this process and its children until stopped."""

    def __init__(self) -> None:
        self.main = self.workers = self.workers_unique = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            main = me.memory_info().rss
            workers = unique = 0
            for child in me.children(recursive=True):
                try:
                    info = child.memory_full_info()
                    workers, unique = workers + info.rss, unique + info.uss
                except psutil.Error:
                    pass
            self.main, self.workers = max(self.main, main), max(self.workers, workers)
            self.workers_unique = max(self.workers_unique, unique)
            time.sleep(0.05)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(root: Path, workers: int, batch: int, batches: int, resolutions: tuple[int, ...]) -> dict[str, Any]:
    """One measurement; run in a fresh process (see :func:`measure_in_subprocess`)."""
    from search_spaces.streaming import StreamingDataset

    baseline = psutil.Process().memory_info().rss
    with PeakMemory() as memory:
        data = StreamingDataset("imagefolder-stream", root, workers=workers)
        loader = data.loader("train", batch, train=True, seed=0, resolutions=resolutions)
        iterator = iter(loader.epoch(0))
        next(iterator)  # worker start-up is not throughput
        start, images = time.perf_counter(), 0
        for _ in range(batches):
            x, _ = next(iterator)
            images += x.shape[0]
        seconds = time.perf_counter() - start
        del iterator, loader
    return {
        "workers": workers,
        "images_per_s": images / seconds,
        "batches": batches,
        "rss_before_mb": baseline / 2**20,  # the interpreter with torch imported, before any loading
        "peak_rss_main_mb": memory.main / 2**20,
        "peak_rss_workers_mb": memory.workers / 2**20,
        # pages only the workers hold (their RSS also counts what they share with the parent)
        "peak_uss_workers_mb": memory.workers_unique / 2**20,
    }


def measure_in_subprocess(root: Path, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """A measurement in a fresh interpreter, so that no earlier measurement's memory counts."""
    import json
    import subprocess
    import sys

    command = [sys.executable, "-m", "benchmarks.loader", "--measure", str(root), "--workers", str(workers)]
    command += ["--batch", str(args.batch), "--batches", str(args.batches)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one measurement of this tree
    parser.add_argument("--root", default="/tmp/hwnas_loader_bench", help="where the trees are generated")
    parser.add_argument("--images", type=int, default=20_000, help="training images of the first tree")
    parser.add_argument("--scale", type=int, default=4, help="the second tree is this many times larger")
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--size", type=int, default=224, help="side of the generated JPEGs")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=40, help="timed batches per measurement")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--out", default="benchmarks/results/loader_cpu.json")
    args = parser.parse_args()

    from search_spaces.ofa_mbv3.config import PRESETS

    resolutions = PRESETS["imagenet"].resolutions
    if args.measure:
        import json

        import torch  # noqa: F401  (imported before the baseline, as the trainer has it)

        print(json.dumps(measure(Path(args.measure), args.workers[0], args.batch, args.batches, resolutions)))
        return
    results = []
    for images in (args.images, args.images * args.scale):
        root = Path(args.root) / f"tree{images}"
        tree = generate_tree(root, images, args.classes, args.size, max(1, (psutil.cpu_count() or 2)))
        for workers in args.workers:
            row = {"tree": tree, **measure_in_subprocess(root, workers, args)}
            print(row)
            results.append(row)
    by = {(r["tree"]["train_images"], r["workers"]): r for r in results}
    small, large = args.images, args.images * args.scale
    summary = {
        f"rss_growth_main_x{args.scale}_tree_workers{w}": by[(large, w)]["peak_rss_main_mb"]
        / by[(small, w)]["peak_rss_main_mb"]
        for w in args.workers
        if (small, w) in by and (large, w) in by
    }
    if 0 in args.workers and 2 in args.workers:
        summary["speedup_2_workers"] = by[(small, 2)]["images_per_s"] / by[(small, 0)]["images_per_s"]
    # what the in-memory imagefolder loader would hold for the same trees (uint8 at 224 px)
    summary["in_memory_equivalent_mb"] = {n: n * 3 * 224 * 224 / 2**20 for n in (small, large)}
    path = write_result(
        args.out,
        {
            "benchmark": "streaming loader (imagefolder-stream), training transforms, elastic resolution 128-224",
            "command": "python -m benchmarks.loader "
            + " ".join(f"--{k} {v}" for k, v in vars(args).items() if k not in ("out", "measure") and v is not None),
            "batch": args.batch,
            "results": results,
            "summary": summary,
        },
    )
    print(summary, "->", path)


if __name__ == "__main__":
    main()
