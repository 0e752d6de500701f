"""BatchNorm recalibration of a subnet (an explicit function, not a model flag).

Weight sharing leaves the running statistics of BN layers matched to whatever
mix of subnets was trained last. Before evaluating one subnet its statistics are
re-estimated: reset, then a cumulative average over N batches in train mode
without gradients. Only the statistics the active subnet uses are changed: BN
layers it skips and channels beyond its active width keep their values, and so do
all weights, the momentum settings and the train/eval mode of every module.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

logger = logging.getLogger(__name__)


def resize_batch(x: torch.Tensor, resolution: int | None) -> torch.Tensor:
    """Bilinear resize of an image batch to ``resolution`` (no-op when it matches)."""
    if resolution is None or (x.shape[-1] == resolution and x.shape[-2] == resolution):
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)


def _inputs(batch: Any) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    if isinstance(batch, dict) and isinstance(batch.get("image"), torch.Tensor):
        return batch["image"]
    raise ValueError(
        "batches: each batch must be a tensor, an (inputs, targets) tuple or a dict with 'image', "
        f"got {type(batch).__name__}"
    )


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    num_batches: int | None = None,
    resolution: int | None = None,
) -> int:
    """Re-estimates the running statistics of the BN layers ``model`` uses.

    Args:
        model: Any module; for a supernet, the subnet active at call time is recalibrated.
        batches: Iterable of input batches (tensors or ``(inputs, targets)`` pairs).
        num_batches: Use at most this many batches (default: all).
        resolution: Resize inputs to this square size first (elastic resolution).

    Returns:
        The number of batches used.

    Raises:
        ValueError: when no batch was given or ``num_batches`` is not positive.
    """
    if num_batches is not None and num_batches <= 0:
        raise ValueError(f"num_batches: must be positive, got {num_batches}")
    bn_layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    saved = {
        m: (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone(), m.momentum) for m in bn_layers
    }
    used_channels: dict[nn.Module, int] = {}

    def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        used_channels[module] = max(used_channels.get(module, 0), args[0].shape[1])

    hooks = [m.register_forward_pre_hook(record) for m in bn_layers]
    modes = {m: m.training for m in model.modules()}
    completed = False
    try:
        for m in bn_layers:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average over the batches
        model.train()
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        count = 0
        for batch in batches:
            if num_batches is not None and count >= num_batches:
                break
            model(resize_batch(_inputs(batch).to(device), resolution))
            count += 1
        if count == 0:
            raise ValueError("batches: no batch was given for BN recalibration")
        completed = True
    finally:
        for hook in hooks:
            hook.remove()
        for m, training in modes.items():
            m.training = training
        for m, (mean, var, tracked, momentum) in saved.items():
            m.momentum = momentum
            used = used_channels.get(m, 0) if completed else 0
            m.running_mean[used:] = mean[used:]
            m.running_var[used:] = var[used:]
            if used == 0:
                m.num_batches_tracked.copy_(tracked)
    logger.debug("recalibrated %d BN layers on %d batches", len(used_channels), count)
    return count
