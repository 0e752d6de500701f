"""The training objective and schedule: distillation loss and per-phase cosine learning rate with warm-up."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from search_spaces.training.config import PhaseSpec


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL divergence to the teacher's softened distribution, scaled by T^2."""
    t = temperature
    return F.kl_div(
        F.log_softmax(student.float() / t, dim=1),
        F.softmax(teacher.float() / t, dim=1),
        reduction="batchmean",
    ) * (t * t)


def lr_at(phase: PhaseSpec, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up then cosine decay to 0 over the phase."""
    total = max(1, phase.epochs * steps_per_epoch)
    warm = int(phase.warmup_epochs * steps_per_epoch)
    if step < warm:
        return phase.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return 0.5 * phase.lr * (1 + math.cos(math.pi * min(1.0, progress)))
