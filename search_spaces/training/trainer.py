"""Progressive-shrinking supernet trainer with knowledge distillation.

All randomness of a step (subnet sampling, data order and augmentation, dropout)
is derived from ``(seed, phase, epoch, step)``, so a run resumed from a
checkpoint at any step continues exactly as the uninterrupted run would.

The pieces it drives live beside it: :mod:`.sampler` (which subnets a phase trains),
:mod:`.losses` (distillation, learning-rate schedule), :mod:`.distributed` (devices,
AMP, ``torchrun``), :mod:`.evaluation` (subnet accuracy after BN recalibration) and
:mod:`.plots` (training curves).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.core.arch import Arch
from nas.core.capabilities import SupernetSpace
from nas.core.config import ConfigError, to_dict
from nas.core.io import atomic_write_text
from nas.core.seeding import derive_seed
from search_spaces.bn import resize_batch
from search_spaces.datasets import BatchLoader
from search_spaces.streaming import StreamLoader
from search_spaces.training import checkpoint as ckpt
from search_spaces.training.config import PhaseSpec, TrainConfig, resolve_open
from search_spaces.training.distributed import (
    all_reduce_gradients,
    amp_dtype,
    any_rank,
    init_distributed,
    resolve_device,
)
from search_spaces.training.evaluation import evaluate_subnet, load_training_data
from search_spaces.training.losses import kd_loss, lr_at
from search_spaces.training.plots import plot_training_curves
from search_spaces.training.sampler import PhaseSampler

logger = logging.getLogger(__name__)


def config_record(config: TrainConfig) -> dict[str, Any]:
    """The config as stored with checkpoints: everything that changes the result.

    ``max_steps`` and ``progress`` only stop or display a run, so a run may be
    resumed with other values.
    """
    data = to_dict(config)
    data["training"] = {k: v for k, v in data["training"].items() if k not in ("max_steps", "progress")}
    return data


@dataclass
class Progress:
    """Where a run is: phase, epoch within the phase, step within the epoch."""

    phase: int = 0
    epoch: int = 0
    step: int = 0
    global_step: int = 0
    epoch_loss_sum: float = 0.0
    epoch_loss_count: int = 0


class SupernetTrainer:
    """Runs every phase of a :class:`TrainConfig`, writing checkpoints to ``out_dir``.

    Args:
        config: The validated training config.
        out_dir: Output folder (checkpoint, metrics, plots, final supernet).
        resume: Continue from ``out_dir/checkpoint``.
    """

    def __init__(
        self, config: TrainConfig, out_dir: str | Path, *, resume: bool = False, stop: threading.Event | None = None
    ) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.resume = resume
        self.stop = stop  # set (by Ctrl-C in `nas train`): checkpoint after the current step and return
        tcfg = config.training
        self.device = resolve_device(tcfg.device)
        self.dist = init_distributed(self.device)
        if tcfg.threads:
            torch.set_num_threads(tcfg.threads)
        space = config.space.build()
        if not isinstance(space, SupernetSpace):
            raise ConfigError(f"space: {space.space_id} has no supernet to train (SupernetSpace)")
        self.space: Any = space  # a SearchSpace with the SupernetSpace capability
        self.phases = self._effective_phases()
        self.dataset = load_training_data(config.data, self.space)
        self._check_dataset_fits()
        self.supernet = self.space.build_supernet(seed=tcfg.seed).to(self.device)
        if tcfg.channels_last:
            self.supernet = self.supernet.to(memory_format=torch.channels_last)
        quantized = [p.name for p in self.phases if p.fake_quant > 0]
        if quantized and not callable(getattr(self.supernet, "set_fake_quant", None)):
            raise ConfigError(
                f"phases {', '.join(quantized)}: fake_quant needs a supernet that can run blocks in fake int8; "
                f"the {self.space.name} supernet cannot: set fake_quant: 0"
            )
        self.teacher: nn.Module | None = None
        self.amp = amp_dtype(tcfg.amp, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == torch.float16)
        self.history: list[dict[str, Any]] = []

    # .............................................................. setup
    def _effective_phases(self) -> list[PhaseSpec]:
        phases = [dataclasses.replace(p) for p in self.config.phases]
        tcfg = self.config.training
        if tcfg.delayed_shrinking and len(phases) > 1:
            first = phases[0]
            kept = max(1, math.ceil(first.epochs * tcfg.shrink_start))
            phases[1] = dataclasses.replace(phases[1], epochs=phases[1].epochs + first.epochs - kept)
            phases[0] = dataclasses.replace(first, epochs=kept)
            phases[1:] = [dataclasses.replace(p, sandwich=True) for p in phases[1:]]
        return phases

    def _check_dataset_fits(self) -> None:
        data = self.dataset
        in_channels, classes = self.space.input_shape()[0], self.space.num_classes()
        if data.in_channels != in_channels:
            raise ConfigError(
                f"space: {self.space.space_id} takes {in_channels} input channel(s) but dataset "
                f"{data.name} has {data.in_channels}; set space.options.in_channels: {data.in_channels}"
            )
        if data.num_classes > classes:
            raise ConfigError(
                f"space: {self.space.space_id} has {classes} classes but dataset {data.name} has "
                f"{data.num_classes}; set space.options.num_classes: {data.num_classes}"
            )

    def _distillation(self) -> str:
        tcfg = self.config.training
        return "inplace" if tcfg.delayed_shrinking and tcfg.distillation == "teacher" else tcfg.distillation

    def _init_from(self, run: str) -> None:
        """Starts from the weights of the supernet trained in ``run`` (same space)."""
        start, _ = ckpt.load_supernet(run)
        if start.space.space_id != self.space.space_id:
            raise ConfigError(
                f"training.init_from: {run} holds a supernet of {start.space.space_id}, this config trains "
                f"{self.space.space_id}; give the space of that run"
            )
        self.supernet.load_state_dict(start.state_dict())
        if self._distillation() == "teacher":  # its BN statistics are re-estimated: the supernet's
            self.teacher = self._make_teacher(recalibrate=True)  # last phase left them to mixed subnets
        logger.info("starting from the supernet of %s", run)

    def _teacher_phase(self) -> int:
        name = self.config.training.teacher_phase
        return 0 if name is None else [p.name for p in self.phases].index(name)

    def _optimizer(self, lr: float) -> torch.optim.Optimizer:
        tcfg = self.config.training
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        skip = set(getattr(self.supernet, "no_weight_decay", lambda: ())())  # a family's own (timm's convention)
        for name, p in self.supernet.named_parameters():
            (no_decay if p.dim() <= 1 or name in skip else decay).append(p)
        groups = [
            {"params": decay, "weight_decay": tcfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        if tcfg.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=lr)
        return torch.optim.SGD(groups, lr=lr, momentum=tcfg.momentum, nesterov=tcfg.nesterov)

    def _loader(self) -> BatchLoader | StreamLoader:
        """Training batches; a streaming dataset decodes each batch at one random resolution of the
        space (once-for-all's elastic resolution), which the step's subnets then take."""
        return self.dataset.loader(
            "train",
            self.config.data.batch_size,
            train=True,
            seed=self.config.training.seed,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            resolutions=self.space.elastic_choices().get("r"),
        )

    # .............................................................. checkpoints
    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoint"

    def _config_json(self) -> dict[str, Any]:
        return config_record(self.config)

    def _save(self, progress: Progress, optimizer: torch.optim.Optimizer | None) -> None:
        if not self.dist.is_main:
            return
        tensors = ckpt.prefixed("model.", self.supernet.state_dict())
        state: dict[str, Any] = {
            **dataclasses.asdict(progress),
            "config": self._config_json(),
            "history": self.history,
            "has_teacher": self.teacher is not None,
            "versions": ckpt.versions(),
        }
        if self.teacher is not None:
            tensors.update(ckpt.prefixed("teacher.", self.teacher.state_dict()))
        if optimizer is not None:
            opt_tensors, state["optimizer"] = ckpt.optimizer_tensors(optimizer)
            tensors.update(opt_tensors)
        if self.scaler.is_enabled():
            state["scaler"] = self.scaler.state_dict()
        ckpt.save_checkpoint(self.checkpoint_dir, tensors, state)

    def _load(self) -> tuple[Progress, dict[str, torch.Tensor], dict[str, Any]]:
        tensors, state = ckpt.load_checkpoint(self.checkpoint_dir)
        if state["config"] != self._config_json():
            saved, now = state["config"], self._config_json()
            diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
            raise ckpt.CheckpointError(
                f"{self.checkpoint_dir}: the config changed since the checkpoint (sections {diff}); "
                "resume with the same config or start a new --out folder"
            )
        self.supernet.load_state_dict(ckpt.unprefixed("model.", tensors))
        if state["has_teacher"]:
            self.teacher = self._make_teacher()
            self.teacher.load_state_dict(ckpt.unprefixed("teacher.", tensors))
        self.history = state["history"]
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        fields = {f.name for f in dataclasses.fields(Progress)}
        progress = Progress(**{k: v for k, v in state.items() if k in fields})
        self._rewrite_metrics()
        logger.info(
            "resuming at phase %d (%s), epoch %d, step %d",
            progress.phase,
            self.phases[min(progress.phase, len(self.phases) - 1)].name,
            progress.epoch,
            progress.step,
        )
        return progress, tensors, state

    def _make_teacher(self, recalibrate: bool = False) -> nn.Module:
        """The largest subnet, frozen; ``recalibrate``: with its BN statistics re-estimated on
        training batches (a supernet trained through later phases holds statistics of a mixture
        of subnets, and a teacher with those gives wrong logits: a CIFAR-10 continuation from
        such a teacher fell from 55% to 19%)."""
        if recalibrate:
            from search_spaces.training.evaluation import recalibrated_subnet

            teacher = recalibrated_subnet(
                self.supernet, self.space.max_arch(), self.dataset, recal_batches=self.config.training.bn_recal_batches,
                seed=self.config.training.seed, device=self.device,
            )  # fmt: skip
        else:
            teacher = self.supernet.extract(self.space.max_arch())
        if self.config.training.channels_last:  # as the supernet, which the batches are laid out for
            teacher = teacher.to(memory_format=torch.channels_last)
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher

    # .............................................................. metrics
    @property
    def metrics_path(self) -> Path:
        return self.out_dir / "metrics.jsonl"

    def _log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.dist.is_main:
            with self.metrics_path.open("a") as fh:
                fh.write(json.dumps(record) + "\n")

    def _rewrite_metrics(self) -> None:
        """Makes metrics.jsonl hold exactly the records of the checkpoint being resumed."""
        if self.dist.is_main:
            atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in self.history))

    # .............................................................. training
    @contextmanager
    def _seeded(self, seed: int) -> Iterator[None]:
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    def _sandwich(self, phase: PhaseSpec) -> bool:
        """Whether ``phase`` trains its largest and smallest subnet every step."""
        return self.config.training.sandwich if phase.sandwich is None else phase.sandwich

    def _step_archs(self, phase: PhaseSpec, sampler: PhaseSampler, rng: np.random.Generator) -> list[Arch]:
        archs = [sampler.largest(), sampler.smallest()] if self._sandwich(phase) else []
        archs += [sampler.sample(rng) for _ in range(phase.subnets_per_step)]
        return archs or [sampler.largest()]

    def _fake_quant_masks(self, phase: PhaseSpec, count: int, rng: np.random.Generator) -> list[list[bool]] | None:
        """For each subnet of a step, which elastic blocks compute in fake int8 (each with the
        phase's ``fake_quant`` probability); None outside a quantization-aware phase."""
        if phase.fake_quant <= 0:
            return None
        blocks = len(getattr(self.supernet, "blocks", ()))
        return [(rng.random(blocks) < phase.fake_quant).tolist() for _ in range(count)]

    @contextmanager
    def _float_after(self, quant: list[list[bool]] | None) -> Iterator[None]:
        """Leaves every block in float after a step that ran some in fake int8, so that evaluation,
        extraction and checkpoints see the float supernet (also when the step fails)."""
        try:
            yield
        finally:
            if quant is not None:
                self._set_fake_quant([False] * len(quant[0]))

    def _set_fake_quant(self, blocks: list[bool]) -> None:
        set_fake_quant = self.supernet.set_fake_quant
        set_fake_quant(blocks)

    def _train_step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        archs: list[Arch],
        sandwich_first: bool,
        optimizer: torch.optim.Optimizer,
        quant: list[list[bool]] | None = None,
    ) -> float:
        """One optimiser step over ``archs``; ``quant``: per arch, the blocks in fake int8."""
        tcfg = self.config.training
        distill = self._distillation()
        optimizer.zero_grad(set_to_none=True)
        teacher_logits: dict[int, torch.Tensor] = {}
        inplace_target: torch.Tensor | None = None
        total = 0.0
        for i, arch in enumerate(archs):
            self.supernet.set_active(arch)
            if quant is not None:
                self._set_fake_quant(quant[i])
            r = self.space.resolution(arch)
            xr = resize_batch(x, r)
            if tcfg.channels_last:
                xr = xr.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
                logits = self.supernet(xr)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=tcfg.label_smoothing)
                soft = None
                if distill == "teacher" and self.teacher is not None:
                    if r not in teacher_logits:
                        with torch.no_grad():
                            teacher_logits[r] = self.teacher(xr)
                    soft = teacher_logits[r]
                elif distill == "inplace" and inplace_target is not None:
                    soft = inplace_target
                if soft is not None and tcfg.kd_ratio > 0:
                    loss = loss + tcfg.kd_ratio * kd_loss(logits, soft, tcfg.kd_temperature)
            if distill == "inplace" and i == 0 and sandwich_first:
                inplace_target = logits.detach()
            self.scaler.scale(loss).backward()
            total += float(loss.detach())
        params = [p for p in self.supernet.parameters() if p.requires_grad]
        if self.dist.enabled:
            all_reduce_gradients(params, self.dist.world_size)
        self.scaler.unscale_(optimizer)
        if tcfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(params, tcfg.grad_clip)
        self.scaler.step(optimizer)
        self.scaler.update()
        return total / len(archs)

    def _evaluate_phase(self, phase_index: int) -> dict[str, Any]:
        phase = self.phases[phase_index]
        sampler = PhaseSampler(self.space, resolve_open(phase.open, self.space))
        tcfg = self.config.training
        rng = np.random.default_rng(derive_seed(tcfg.seed, phase_index, 999_999))
        archs = {"max": sampler.largest(), "min": sampler.smallest()}
        for i in range(tcfg.eval_random_subnets):
            archs[f"random_{i}"] = sampler.sample(rng)
        return self._evaluate(archs, "holdout")

    def _evaluate(self, archs: dict[str, Arch], split: str) -> dict[str, dict[str, Any]]:
        """Accuracy of labelled subnets on ``split`` after BN recalibration."""
        results = {}
        for label, arch in archs.items():
            metrics = evaluate_subnet(
                self.supernet,
                arch,
                self.dataset,
                split,
                recal_batches=self.config.training.bn_recal_batches,
                batch_size=self.config.data.eval_batch_size,
                seed=self.config.training.seed,
                device=self.device,
            )
            results[label] = {"arch": arch.to_dict(), **metrics}
        return results

    def run(self) -> dict[str, Any]:
        """Trains every phase (or resumes), then reports corner subnets on the test split."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        progress = Progress()
        tensors: dict[str, torch.Tensor] = {}
        state: dict[str, Any] = {}
        if self.resume:
            progress, tensors, state = self._load()
        elif self.checkpoint_dir.joinpath(ckpt.STATE_FILE).exists():
            raise ckpt.CheckpointError(
                f"{self.out_dir} already holds a checkpoint; pass --resume to continue it or choose another --out"
            )
        else:
            if self.dist.is_main and self.metrics_path.exists():
                self.metrics_path.unlink()
            if self.config.training.init_from is not None:
                self._init_from(self.config.training.init_from)
        loader = self._loader()
        steps_per_epoch = len(loader)
        if steps_per_epoch == 0:
            raise ConfigError(
                f"data.batch_size: {self.config.data.batch_size} is larger than the training split "
                f"({len(self.dataset.split('train'))} images or shards per process); lower it, or give "
                "data.train_samples for WebDataset shards"
            )
        for phase_index in range(progress.phase, len(self.phases)):
            phase = self.phases[phase_index]
            sampler = PhaseSampler(self.space, resolve_open(phase.open, self.space))
            sandwich = self._sandwich(phase)
            optimizer = self._optimizer(phase.lr)
            if state.get("optimizer") and progress.phase == phase_index and (progress.epoch or progress.step):
                ckpt.restore_optimizer(optimizer, tensors, state["optimizer"])
            self.supernet.train()
            start_epoch = progress.epoch if progress.phase == phase_index else 0
            for epoch in range(start_epoch, phase.epochs):
                start_step = progress.step if (progress.phase, progress.epoch) == (phase_index, epoch) else 0
                stopped = self._run_epoch(
                    phase_index, epoch, start_step, loader, sampler, sandwich, optimizer, progress
                )
                if stopped:
                    return {"stopped": True, "reason": stopped, "global_step": progress.global_step}
            if phase_index == self._teacher_phase() and self._distillation() == "teacher":
                self.teacher = self._make_teacher()
            if self.dist.is_main:
                evaluation = self._evaluate_phase(phase_index)
                self._log({"phase": phase.name, "global_step": progress.global_step, "eval_holdout": evaluation})
                logger.info(
                    "phase %s: holdout accuracy max %.4f min %.4f",
                    phase.name,
                    evaluation["max"]["accuracy"],
                    evaluation["min"]["accuracy"],
                )
            progress = Progress(phase_index + 1, 0, 0, progress.global_step)
            self._save(progress, None)
        return self._finish(progress)

    def _run_epoch(
        self,
        phase_index: int,
        epoch: int,
        start_step: int,
        loader: BatchLoader | StreamLoader,
        sampler: PhaseSampler,
        sandwich: bool,
        optimizer: torch.optim.Optimizer,
        progress: Progress,
    ) -> str | None:
        """Trains one epoch; returns why it stopped early (``max_steps`` or ``interrupted``), else None."""
        from nas.core.progress import bar as progress_bar

        tcfg = self.config.training
        phase = self.phases[phase_index]
        steps = len(loader)
        bar = progress_bar(
            total=steps,
            initial=start_step,
            desc=f"{phase.name} {epoch + 1}/{phase.epochs}",
            disable=not (tcfg.progress and self.dist.is_main),
            leave=False,
            dynamic_ncols=True,
        )
        if start_step == 0:
            progress.epoch_loss_sum, progress.epoch_loss_count = 0.0, 0
        images, started = 0, time.perf_counter()
        for step, (x, y) in enumerate(loader.epoch(phase_index * 100_000 + epoch, start_step), start=start_step):
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(phase, epoch * steps + step, steps)
            with self._seeded(derive_seed(tcfg.seed, phase_index, epoch, step, 7)):
                rng = np.random.default_rng(derive_seed(tcfg.seed, phase_index, epoch, step))
                archs = self._step_archs(phase, sampler, rng)
                if isinstance(loader, StreamLoader):  # the batch's resolution, where the phase opens it
                    archs = [sampler.with_resolution(arch, x.shape[-1]) for arch in archs]
                quant = self._fake_quant_masks(phase, len(archs), rng)
                with self._float_after(quant):
                    loss = self._train_step(x, y, archs, sandwich, optimizer, quant)
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss became {loss} at phase {phase.name} epoch {epoch} step {step}")
            progress.epoch_loss_sum += loss
            progress.epoch_loss_count += 1
            images += x.shape[0] * len(archs) * self.dist.world_size
            progress.phase, progress.epoch, progress.step = phase_index, epoch, step + 1
            progress.global_step += 1
            rate = images / max(1e-9, time.perf_counter() - started)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", img_s=f"{rate:.0f}", refresh=False)
            if tcfg.max_steps is not None and progress.global_step >= tcfg.max_steps:
                bar.close()
                # not a metrics record: a resumed run's metrics equal an uninterrupted run's
                logger.info(
                    "stopped at max_steps (global step %d, phase %s): %.1f images/s over the last %d steps",
                    progress.global_step,
                    phase.name,
                    images / max(time.perf_counter() - started, 1e-9),
                    step + 1 - start_step,
                )
                self._save(progress, optimizer)
                return "max_steps"
            if any_rank(self.stop is not None and self.stop.is_set(), self.dist, self.device):
                bar.close()
                logger.info("interrupted at global step %d (phase %s): checkpoint written", progress.global_step,
                            phase.name)  # fmt: skip
                self._save(progress, optimizer)
                return "interrupted"
            if tcfg.checkpoint_every_steps and progress.global_step % tcfg.checkpoint_every_steps == 0:
                self._save(progress, optimizer)
        bar.close()
        elapsed = time.perf_counter() - started
        self._log(
            {
                "phase": phase.name,
                "epoch": epoch,
                "global_step": progress.global_step,
                "loss": progress.epoch_loss_sum / max(1, progress.epoch_loss_count),
                "lr": optimizer.param_groups[0]["lr"],
                "images_per_s": images / max(elapsed, 1e-9),
                "seconds": elapsed,
            }
        )
        progress.epoch, progress.step = epoch + 1, 0
        progress.epoch_loss_sum, progress.epoch_loss_count = 0.0, 0
        self._save(progress, optimizer)
        return None

    def _finish(self, progress: Progress) -> dict[str, Any]:
        if not self.dist.is_main:
            return {}
        final = self._evaluate({"max": self.space.max_arch(), "min": self.space.min_arch()}, "test")
        record = {
            "dataset": self.dataset.name,
            "data": to_dict(self.config.data),
            "normalization": {"mean": list(self.dataset.mean), "std": list(self.dataset.std)},
            "training_config": self._config_json(),
            "test_accuracy": {k: v["accuracy"] for k, v in final.items()},
            "final_eval_test": final,
            "global_steps": progress.global_step,
            "phases": [p.name for p in self.phases],
        }
        ckpt.save_supernet(self.out_dir, self.supernet, record)
        plot_training_curves(self.history, self.out_dir / "training_curves.png")
        logger.info(
            "test accuracy: max subnet %.4f, min subnet %.4f",
            final["max"]["accuracy"],
            final["min"]["accuracy"],
        )
        return {"stopped": False, "test_accuracy": record["test_accuracy"], "out_dir": str(self.out_dir)}
