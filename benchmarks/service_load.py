"""Read load on the HTTP service: requests per second for every read route (fronts, lists, plots),
as a ratio to ``/api/health`` served in the same run — loopback, N client threads, the same cores.

The service runs as ``nas serve`` in its own process (so the clients' threads do not share its
GIL) over a SQLite store holding a 24-trial job (the demo's size) and a 10,000-trial job, both
with two objectives and a constraint, trials and fronts recorded as a search records them. Each
endpoint is hammered for ``--seconds`` by ``--clients`` threads with keep-alive connections;
the health route (no database) is the ceiling.

    python -m benchmarks.service_load                 # writes benchmarks/results/service_load_cpu.json
    python -m benchmarks.service_load --trials 2000   # a quicker run
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import write_result

logger = logging.getLogger("benchmarks.service_load")


def _spec(name: str, budget: int) -> dict[str, Any]:
    return {
        "name": name,
        "space": {"name": "toy"},
        "evaluator": {"kind": "toy"},
        "objectives": [{"metric": "accuracy", "direction": "max"}, {"metric": "latency_ms", "direction": "min"}],
        "constraints": [{"metric": "latency_ms", "max": 15.0}],
        "searcher": {"kind": "evolution", "settings": {}},
        "budget": {"evaluations": budget},
    }


def fill_job(store: Any, name: str, trials: int, seed: int, front_every: int = 25) -> str:
    """A finished job of ``trials`` synthetic trials (about 2% failed) with fronts recorded as a search would."""
    from nas.core.arch import Arch, canonical_json
    from nas.core.pareto import Constraint, Objective, hypervolume, pareto_front
    from nas.trials import reference_point

    rng = np.random.default_rng(seed)
    spec = _spec(name, trials)
    objectives = [Objective(o["metric"], o["direction"]) for o in spec["objectives"]]
    constraints = [Constraint("latency_ms", max=15.0)]
    job_id = store.create_job(name, spec, "toy", trials)
    points: list[dict[str, float]] = []
    ids: list[int] = []
    for i in range(trials):
        arch = Arch("toy", canonical_json({"genes": [int(g) for g in rng.integers(0, 8, size=12)], "n": i}))
        store.add_trial(job_id, i, arch, worker="bench")
        if rng.random() < 0.02:
            store.finish_trial(job_id, i, error="RuntimeError: synthetic failure")
            continue
        latency = float(rng.uniform(1.0, 20.0))
        accuracy = float(0.6 + 0.3 * (1 - math.exp(-latency / 5)) + rng.normal(0, 0.02))
        store.finish_trial(job_id, i, {"accuracy": accuracy, "latency_ms": latency})
        points.append({"accuracy": accuracy, "latency_ms": latency})
        ids.append(i)
        if len(points) % front_every == 0 or i == trials - 1:
            front = [ids[k] for k in pareto_front(points, objectives, constraints)]
            ref = reference_point(points, objectives, None)
            hv = hypervolume(points, objectives, ref, constraints) if ref else None
            store.save_front(job_id, i + 1, front, hv)
    store.update_job(job_id, state="done")
    return job_id


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load(url: str, token: str | None, clients: int, seconds: float, identity: bool = False) -> dict[str, Any]:
    """Requests per second of ``clients`` threads; ``identity``: ask for uncompressed answers."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if identity:
        headers["Accept-Encoding"] = "identity"
    counts = [0] * clients
    errors = [0] * clients
    stop = time.perf_counter() + seconds

    def client(k: int) -> None:
        with httpx.Client(headers=headers, timeout=30) as http:
            while time.perf_counter() < stop:
                try:
                    ok = http.get(url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                counts[k] += ok
                errors[k] += not ok

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {"requests": sum(counts), "errors": sum(errors), "seconds": round(elapsed, 2),
            "rps": round(sum(counts) / elapsed, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000, help="trials of the large job (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=8, help="client threads (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=8.0, help="per endpoint (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic trials (default: %(default)s)")
    parser.add_argument("--out", default="benchmarks/results/service_load_cpu.json", help="result JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from nas.store import Store

    folder = Path(tempfile.mkdtemp(prefix="hwnas-load-"))
    url = f"sqlite:///{folder / 'nas.db'}"
    store = Store(url)
    started = time.perf_counter()
    small = fill_job(store, "demo-size", 24, args.seed)
    large = fill_job(store, "large", args.trials, args.seed + 1)
    logger.info("store filled in %.0f s (%s)", time.perf_counter() - started, folder)
    store.close()
    token = secrets.token_urlsafe(24)
    port = _free_port()
    env = {**os.environ, "NAS_SERVICE_TOKEN": token}
    server = subprocess.Popen(
        [sys.executable, "-m", "nas.cli", "serve", "--store", url, "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        from services.testing import wait_until_up

        wait_until_up(base)
        routes = {
            "health": "/api/health",
            "pareto_24": f"/api/jobs/{small}/pareto",
            f"pareto_{args.trials}": f"/api/jobs/{large}/pareto",
            f"pareto_{args.trials}_bounded": f"/api/jobs/{large}/pareto?max_latency=8&min_accuracy=0.7",
            "history_24": f"/api/jobs/{small}/history",
            f"history_{args.trials}": f"/api/jobs/{large}/history",
            "jobs": "/api/jobs",
            "job_10000": f"/api/jobs/{large}",
            f"trials_{args.trials}": f"/api/jobs/{large}/trials",
            f"trials_{args.trials}_newest_failed": f"/api/jobs/{large}/trials?order=desc&contains=failure",
            f"points_{args.trials}": f"/api/jobs/{large}/points",
            f"points_{args.trials}_uncompressed": f"/api/jobs/{large}/points",
            "pareto_png_24": f"/api/jobs/{small}/pareto.png",
            f"pareto_png_{args.trials}": f"/api/jobs/{large}/pareto.png",
            "info": "/api/info",
        }
        results: dict[str, Any] = {}
        for name, route in routes.items():
            identity = name.endswith("_uncompressed")  # (the clients, on the same cores, then decode no gzip)
            _load(base + route, token, 1, 1.0, identity)  # warm-up (and the cache's first fill)
            results[name] = _load(base + route, token, args.clients, args.seconds, identity)
            logger.info("%-22s %8.1f req/s  (%d errors)", name, results[name]["rps"], results[name]["errors"])
        ceiling = results["health"]["rps"]
        ratios = {name: round(r["rps"] / ceiling, 3) for name, r in results.items() if name != "health"}
        logger.info("ratio to health: %s", ratios)
    finally:
        server.terminate()
        server.wait(timeout=30)
    write_result(args.out, {
        "benchmark": "service_load", "clients": args.clients, "seconds_per_endpoint": args.seconds,
        "trials": {"small": 24, "large": args.trials}, "results": results, "ratio_to_health": ratios,
        "target": "every read route >= 0.5 of health, no errors (issue 24)",
    })  # fmt: skip
    logger.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
