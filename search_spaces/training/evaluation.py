"""Subnet evaluation shared by training, search, export and predictor data collection:
extraction, BN recalibration on the training split, accuracy on a split, and the training data."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.core.arch import Arch
from nas.core.capabilities import Supernet
from search_spaces.bn import recalibrate_bn, resize_batch
from search_spaces.datasets import Dataset, DatasetError, load_dataset
from search_spaces.streaming import STREAMING, StreamingDataset
from search_spaces.training.config import DataSpec

Data = Dataset | StreamingDataset  # in memory (small bundled sets) or streamed from files


@torch.no_grad()
def evaluate_subnet(
    supernet: Supernet,
    arch: Arch,
    dataset: Data,
    split: str,
    *,
    recal_batches: int = 10,
    batch_size: int = 500,
    seed: int = 0,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Top-1 accuracy and loss of one subnet after BN recalibration.

    The subnet is extracted first, so the supernet's own statistics are not touched.
    Recalibration uses a seeded random subset of the *training* split (no
    augmentation); evaluation uses ``split`` (``holdout`` during training and search,
    ``test`` only for final reports).
    """
    device = device or next(supernet.parameters()).device
    sub = recalibrated_subnet(
        supernet, arch, dataset, recal_batches=recal_batches, batch_size=min(batch_size, 256), seed=seed, device=device
    )
    return accuracy(sub, dataset, split, supernet.space.resolution(arch), batch_size=batch_size, device=device)


@torch.no_grad()
def recalibrated_subnet(
    supernet: Supernet,
    arch: Arch,
    dataset: Data,
    *,
    recal_batches: int = 10,
    batch_size: int = 256,
    seed: int = 0,
    device: torch.device | None = None,
) -> nn.Module:
    """``arch`` extracted as a static network whose BN statistics are re-estimated, in eval mode.

    Recalibration uses ``recal_batches`` seeded random batches of the *training* split (no
    augmentation): the network :func:`evaluate_subnet` scores, and the one to deploy.
    """
    device = device or next(supernet.parameters()).device
    sub = supernet.extract(arch).to(device)
    resolution = supernet.space.resolution(arch)
    recal = dataset.loader("train", batch_size, train=False, shuffle=True, seed=seed, resolutions=[resolution])
    batches = (x.to(device) for x, _ in recal.epoch(0))
    recalibrate_bn(sub, batches, num_batches=recal_batches, resolution=resolution)
    return sub.eval()


@torch.no_grad()
def accuracy(
    model: Any,
    dataset: Data,
    split: str,
    resolution: int,
    *,
    batch_size: int = 500,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Top-1 accuracy and mean loss of ``model`` (any callable on a batch) on a split at ``resolution``."""
    correct, total, loss = 0, 0, 0.0
    for x, y in dataset.loader(split, batch_size, train=False, resolutions=[resolution]).epoch(0):
        x, y = resize_batch(x.to(device) if device else x, resolution), y.to(device) if device else y
        logits = model(x)
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        total += int(y.numel())
    return {"accuracy": correct / total, "loss": loss / total, "samples": total}


def load_training_data(data: DataSpec, space: Any) -> Data:
    """The dataset a ``data`` section names, shaped for ``space`` (channels, synthetic size)."""
    if data.name in STREAMING:
        return StreamingDataset(
            data.name,
            data.root,
            holdout_fraction=data.holdout_fraction,
            holdout_size=data.holdout_size,
            workers=data.workers,
            num_classes=space.num_classes(),
            train_shards=data.train_shards,
            val_shards=data.val_shards,
            train_samples=data.train_samples,
            image_size=data.image_size or space.input_shape()[-1],
        )
    dataset = load_dataset(
        data.name,
        data.root,
        holdout_fraction=data.holdout_fraction,
        seed=0,
        download=data.download,
        image_size=data.image_size,
        channels=space.input_shape()[0],
        synthetic_channels=space.input_shape()[0],
        synthetic_size=space.input_shape()[-1],
        synthetic_samples=data.synthetic_samples,
        synthetic_classes=min(10, space.num_classes()),
    )
    if dataset.num_classes > space.num_classes():  # labels the classifier has no output for
        raise DatasetError(
            f"data: {data.name} has {dataset.num_classes} classes, the space's classifier {space.num_classes()} "
            f"outputs; give data that matches (`--data`, data.name/root) or a space with num_classes="
            f"{dataset.num_classes}"
        )
    return dataset
