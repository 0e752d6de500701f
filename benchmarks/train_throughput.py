"""Images/s of one supernet training step (forward + backward, sandwich of 4 subnets).

Measures the cifar config on the CPU (or the GPU with --device cuda), comparing
memory formats side by side in one run, and writes JSON with device and versions.

    python benchmarks/train_throughput.py --out benchmarks/results/train_throughput_cpu.json
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import write_result
from nas.space import create_space
from search_spaces.bn import resize_batch


def sandwich_step(net, space, x, y, rng, optimizer, memory_format: torch.memory_format) -> int:
    archs = [space.max_arch(), space.min_arch(), space.sample(rng), space.sample(rng)]
    optimizer.zero_grad(set_to_none=True)
    target = None
    for i, arch in enumerate(archs):
        net.set_active(arch)
        xr = resize_batch(x, arch["r"]).contiguous(memory_format=memory_format)
        logits = net(xr)
        loss = F.cross_entropy(logits, y)
        if target is not None:
            loss = loss + F.kl_div(F.log_softmax(logits, 1), F.softmax(target, 1), reduction="batchmean")
        if i == 0:
            target = logits.detach()
        loss.backward()
    optimizer.step()
    return x.shape[0] * len(archs)


def measure(channels_last: bool, args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    space = create_space("ofa_mbv3", config=args.config)
    net = space.build_supernet(seed=0).to(device).train()
    r = space.config.resolutions[-1]
    x = torch.randn(args.batch, space.config.in_channels, r, r, device=device)
    y = torch.randint(0, space.config.num_classes, (args.batch,), device=device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for _ in range(args.warmup):
        sandwich_step(net, space, x, y, rng, optimizer, fmt)
    rates = []
    for _ in range(args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        images = sandwich_step(net, space, x, y, rng, optimizer, fmt)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(images / (time.perf_counter() - start))
    return {"channels_last": channels_last, "images_per_s_median": statistics.median(rates), "images_per_s_all": rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="cifar")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="benchmarks/results/train_throughput.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = [measure(cl, args) for cl in (False, True)]
    baseline = runs[0]["images_per_s_median"]
    for run in runs:
        run["ratio_vs_nchw"] = run["images_per_s_median"] / baseline
    result = {
        "benchmark": "train_throughput",
        "config": args.config,
        "batch": args.batch,
        "step": "sandwich of 4 subnets (max, min, 2 random), forward+backward+SGD",
        "runs": runs,
    }
    path = write_result(args.out, result)
    for run in runs:
        print(
            f"channels_last={run['channels_last']}: {run['images_per_s_median']:.1f} img/s "
            f"(x{run['ratio_vs_nchw']:.2f})"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
