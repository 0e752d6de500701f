"""Images/s of one progressive-shrinking training step, ours against once-for-all's reference code.

The step is once-for-all's ``progressive_shrinking.train_one_epoch`` step: a teacher (the full
network, static) gives soft targets, ``--subnets`` random subnets each run forward and backward
(label-smoothed cross-entropy + KD against the teacher), then one SGD (Nesterov, momentum 0.9)
update. Both sides train the same subnets (drawn from our space, set on the reference with
``set_active_subnet``) on the same batch at one resolution, and are timed round after round
(one step of each side per round, so a shared machine's drift hits all alike). Sides:

* ``reference`` — the reference package ``ofa`` (``OFAMobileNetV3``), fp32, its own NCHW layout;
  ``reference_channels_last`` — the same code with its tensors in channels-last (its best on a CPU);
* ``ours_fp32_nchw`` — our ``SupernetTrainer._train_step``, fp32, NCHW (like for like);
* ``ours_default`` — our trainer's defaults (channels-last; bf16/fp16 autocast on a GPU).

    python -m benchmarks.train_throughput --baseline ofa --out benchmarks/results/train_throughput_cpu.json
    python -m benchmarks.train_throughput --baseline ofa --device cuda --batch 128 --resolution 224 \\
        --out benchmarks/results/train_throughput_cuda.json
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import write_result
from nas.core.arch import Arch
from search_spaces.training.config import load_train_config
from search_spaces.training.trainer import SupernetTrainer

Step = Callable[[torch.Tensor, torch.Tensor, list[Arch]], None]


def ours(args: argparse.Namespace, channels_last: bool, amp: str) -> tuple[Step, Any]:
    """Our trainer's own step (``SupernetTrainer._train_step``), not a copy of it."""
    config = load_train_config(
        {
            "space": {"name": "ofa_mbv3", "config": "imagenet", "options": {"dropout": 0.0}},
            "data": {"name": "synthetic", "batch_size": args.batch, "synthetic_samples": 2 * args.batch},
            "training": {
                "channels_last": channels_last,
                "amp": amp,
                "distillation": "teacher",
                "kd_ratio": 1.0,
                "label_smoothing": 0.1,
                "device": args.device,
                "progress": False,
            },
            "phases": [{"name": "all", "epochs": 1, "lr": 0.01, "open": {"ks": "all", "e": "all", "d": "all"}}],
        }
    )
    with tempfile.TemporaryDirectory() as out:
        trainer = SupernetTrainer(config, out)
    trainer.teacher = trainer._make_teacher()
    optimizer = trainer._optimizer(0.01)
    trainer.supernet.train()

    def step(x: torch.Tensor, y: torch.Tensor, archs: list[Arch]) -> None:
        trainer._train_step(x, y, archs, False, optimizer)

    return step, trainer.space


def reference(args: argparse.Namespace, channels_last: bool) -> Step:
    """Once-for-all's step with its own network, losses and optimizer grouping (the ``ofa`` package)."""
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
    from ofa.utils import cross_entropy_loss_with_soft_target, cross_entropy_with_label_smoothing

    device = torch.device(args.device)
    net = OFAMobileNetV3(
        dropout_rate=0.0, width_mult=1.0, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4]
    ).to(device)
    net.set_max_net()
    teacher = net.get_active_subnet(preserve_weight=True).to(device).eval()
    if channels_last:
        net, teacher = net.to(memory_format=torch.channels_last), teacher.to(memory_format=torch.channels_last)
    no_decay = [p for n, p in net.named_parameters() if p.dim() <= 1]
    decay = [p for n, p in net.named_parameters() if p.dim() > 1]
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": 3e-5}, {"params": no_decay, "weight_decay": 0.0}],
        lr=0.01,
        momentum=0.9,
        nesterov=True,
    )
    net.train()

    def step(x: torch.Tensor, y: torch.Tensor, archs: list[Arch]) -> None:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad()
        with torch.no_grad():
            soft = F.softmax(teacher(x).detach(), dim=1)
        for arch in archs:
            net.set_active_subnet(ks=arch["ks"], e=arch["e"], d=arch["d"])
            output = net(x)
            loss = cross_entropy_with_label_smoothing(output, y, 0.1)
            loss = loss + cross_entropy_loss_with_soft_target(output, soft)
            loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", choices=["ofa", "none"], default="ofa", help="time the reference step too")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=160)
    parser.add_argument("--subnets", type=int, default=2, help="random subnets per step (once-for-all: 2)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/train_throughput_cpu.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    sides: dict[str, Step] = {}
    if args.baseline == "ofa":
        sides["reference"] = reference(args, channels_last=False)
        sides["reference_channels_last"] = reference(args, channels_last=True)
    sides["ours_fp32_nchw"], space = ours(args, channels_last=False, amp="off")
    sides["ours_default"], _ = ours(args, channels_last=True, amp="auto")
    device = torch.device(args.device)
    rng = np.random.default_rng(args.seed)
    x = torch.randn(args.batch, 3, args.resolution, args.resolution, device=device)
    y = torch.randint(0, 1000, (args.batch,), device=device)

    def archs() -> list[Arch]:
        return [space.make({**space.sample(rng).to_dict(), "r": args.resolution}) for _ in range(args.subnets)]

    def timed(step: Step, chosen: list[Arch]) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step(x, y, chosen)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return args.batch * args.subnets / (time.perf_counter() - start)

    for _ in range(args.warmup):
        chosen = archs()
        for step in sides.values():
            timed(step, chosen)
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        chosen = archs()  # the same subnets for every side in a round
        for name, step in sides.items():
            rates[name].append(timed(step, chosen))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    base = medians.get("reference")
    runs = {
        name: {
            "images_per_s_median": medians[name],
            "images_per_s_all": rates[name],
            **({"ratio_vs_reference": medians[name] / base} if base else {}),
        }
        for name in sides
    }
    targets: dict[str, Any] = {}
    if base:
        cpu = device.type == "cpu"
        targets = {
            "default_vs_reference": {"target": 1.6 if cpu else 2.0, "measured": medians["ours_default"] / base},
            "like_for_like_vs_reference": {"target": 1.25, "measured": medians["ours_fp32_nchw"] / base},
        }
        for target in targets.values():
            target["met"] = target["measured"] >= target["target"]
    path = write_result(
        args.out,
        {
            "benchmark": "train_throughput",
            "step": (
                f"once-for-all progressive-shrinking step: static teacher, {args.subnets} random subnets (KD + "
                "label-smoothed CE, forward+backward each), one SGD update; imagenet preset"
            ),
            "command": "python -m benchmarks.train_throughput "
            + " ".join(f"--{k} {v}" for k, v in vars(args).items() if k not in ("out", "threads") and v is not None),
            "device": args.device,
            "batch": args.batch,
            "resolution": args.resolution,
            "runs": runs,
            "targets": targets,
        },
    )
    for name, run in runs.items():
        ratio = f" (x{run['ratio_vs_reference']:.2f} the reference)" if "ratio_vs_reference" in run else ""
        print(f"{name}: {run['images_per_s_median']:.1f} img/s{ratio}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
