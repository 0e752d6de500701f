"""Streaming image datasets for ImageNet-size data: files are decoded and augmented in DataLoader
worker processes, so memory stays bounded whatever the dataset's size.

Two sources:

* ``imagefolder-stream``: an ImageFolder tree in ImageNet's layout, ``ROOT/train/<class>/<image>``
  and ``ROOT/val/<class>/<image>`` (``val`` is the test split; ``test/`` is accepted instead).
  A fixed, seeded, stratified holdout list is drawn from ``train`` for BN recalibration and
  search. The file list is kept as a numpy byte array (no per-file Python objects, so forked
  workers do not copy it page by page).
* ``webdataset``: WebDataset tar shards (``KEY.jpg``/``KEY.png`` + ``KEY.cls``), read with the
  ``webdataset`` package, so a shard may be a local path or a ``pipe:`` URL (``pipe:curl -s
  https://...``, ``pipe:aws s3 cp ...``). ``ROOT/train/*.tar`` and ``ROOT/val/*.tar``, or
  brace patterns given as ``train_shards``/``val_shards``; the last shards of ``train`` are
  the holdout.

Training batches follow once-for-all's elastic resolution: every batch has one resolution
drawn from the given ones by (seed, epoch, step), so every rank uses the same one. Random
crops and flips are torchvision transforms v2, seeded per image by (seed, epoch, index), so
a resumed run sees exactly the same batches whatever the number of workers.
"""

from __future__ import annotations

import glob
import io
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from nas.core.seeding import derive_seed
from search_spaces.datasets import IMAGE_SUFFIXES, STREAMING_DATASETS, DatasetError

logger = logging.getLogger(__name__)


def ignore_interrupts(worker_id: int) -> None:
    """A DataLoader worker's start: Ctrl-C reaches the whole process group, and a worker that dies
    of it makes the main process fail mid-batch; the main process alone decides how to stop."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity where the platform tells it)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)


STREAMING = STREAMING_DATASETS
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_CROP = 0.875  # resize to r / 0.875, then centre-crop r (the usual ImageNet evaluation)


# --------------------------------------------------------------------------- transforms
def train_transform(resolution: int) -> Any:
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomResizedCrop(resolution, antialias=True), v2.RandomHorizontalFlip()])


def _eval_side(resolution: int) -> int:
    return round(resolution / EVAL_CROP)


def eval_transform(resolution: int) -> Any:
    from torchvision.transforms import v2

    return v2.Compose([v2.Resize(_eval_side(resolution), antialias=True), v2.CenterCrop(resolution)])


def decode(data: bytes, source: str, draft: int | None = None) -> torch.Tensor:
    """An RGB uint8 ``[3, H, W]`` tensor of an encoded image (grey, palette and CMYK converted).

    ``draft``: a JPEG may be decoded at a reduced scale that keeps both sides >= ``draft``
    (libjpeg's DCT scaling; evaluation resizes down to about that anyway).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if draft is not None:
                image.draft("RGB", (draft, draft))
            array = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{source}: not a readable image ({exc}); remove or replace the file") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


@dataclass(frozen=True)
class Sample:
    """What the batch sampler asks a map-style dataset for: an index, its resolution and augmentation."""

    index: int
    resolution: int
    augment: bool
    seed: int


def _transformed(image: torch.Tensor, sample: Sample) -> torch.Tensor:
    if sample.augment:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample.seed)
            return train_transform(sample.resolution)(image)
    return eval_transform(sample.resolution)(image)


# --------------------------------------------------------------------------- ImageFolder
class FileList:
    """Image paths (relative to a root) and labels as compact arrays."""

    def __init__(self, root: Path, paths: np.ndarray, labels: np.ndarray) -> None:
        self.root = root
        self.paths = paths
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, index: int) -> Path:
        return self.root / self.paths[index].decode()

    def subset(self, index: np.ndarray) -> FileList:
        return FileList(self.root, self.paths[index], self.labels[index])


def scan_folder(folder: Path, classes: Sequence[str] | None = None) -> tuple[FileList, tuple[str, ...]]:
    """The images of ``folder/<class>/...`` in sorted order (classes sorted by name)."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder (expected {folder}/<class>/<image>)")
    names = tuple(sorted(entry.name for entry in os.scandir(folder) if entry.is_dir()))
    if not names:
        raise DatasetError(f"{folder}: no class folders (expected {folder}/<class>/<image>)")
    if classes is not None and names != tuple(classes):
        missing, extra = sorted(set(classes) - set(names)), sorted(set(names) - set(classes))
        raise DatasetError(f"{folder}: class folders differ from train's (missing {missing[:5]}, extra {extra[:5]})")
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(names):
        files = sorted(
            entry.name
            for entry in os.scandir(folder / name)
            if entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES)
        )
        paths.extend(f"{name}/{file}" for file in files)
        labels.extend([label] * len(files))
    if not paths:
        raise DatasetError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
    return FileList(folder, np.array([p.encode() for p in paths]), np.array(labels, dtype=np.int64)), names


def holdout_indices(labels: np.ndarray, fraction: float, seed: int, limit: int | None = None) -> np.ndarray:
    """A seeded, stratified, sorted choice of ``fraction`` of the indices (at most ``limit``)."""
    rng = np.random.default_rng(seed)
    total = len(labels) * fraction if limit is None else min(limit, len(labels) * fraction)
    share = total / len(labels)
    held = []
    for label in np.unique(labels):
        index = np.flatnonzero(labels == label)
        take = max(1, round(len(index) * share)) if len(index) > 1 else 0
        held.append(rng.choice(index, size=take, replace=False))
    return np.sort(np.concatenate(held))


class FolderImages(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """Map-style dataset over a file list; items are :class:`Sample` requests."""

    def __init__(self, files: FileList) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, sample: Sample) -> tuple[torch.Tensor, int]:
        path = self.files.path(sample.index)
        image = decode(path.read_bytes(), str(path), None if sample.augment else _eval_side(sample.resolution))
        return _transformed(image, sample), int(self.files.labels[sample.index])


class ElasticBatchSampler:
    """Batches of :class:`Sample` requests for one rank: shuffled by (seed, epoch), sharded by rank,
    one resolution per batch drawn by (seed, epoch, step) from ``resolutions``.

    Set :attr:`epoch` and :attr:`start_step` before iterating (the loader does).
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        resolutions: Sequence[int],
        *,
        train: bool,
        shuffle: bool,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.size, self.batch_size, self.resolutions = size, batch_size, tuple(resolutions)
        self.train, self.shuffle, self.seed = train, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_step = 0, 0

    def __len__(self) -> int:
        if self.train:
            return self.size // self.world_size // self.batch_size
        per_rank = -(-self.size // self.world_size)
        return -(-per_rank // self.batch_size)

    def _order(self) -> np.ndarray:
        if self.shuffle:
            order = np.random.default_rng(derive_seed(self.seed, self.epoch)).permutation(self.size)
        else:
            order = np.arange(self.size)
        if self.world_size > 1:
            usable = self.size - self.size % self.world_size if self.train else self.size
            order = order[:usable][self.rank :: self.world_size]
        return order

    def resolution(self, step: int) -> int:
        """The resolution of batch ``step`` of the current epoch (the same on every rank)."""
        if len(self.resolutions) == 1:
            return self.resolutions[0]
        rng = np.random.default_rng(derive_seed(self.seed, self.epoch, step, 2))
        return self.resolutions[int(rng.integers(len(self.resolutions)))]

    def __iter__(self) -> Iterator[list[Sample]]:
        order = self._order()
        for step in range(self.start_step, len(self)):
            index = order[step * self.batch_size : (step + 1) * self.batch_size]
            r = self.resolution(step)
            yield [Sample(int(i), r, self.train, derive_seed(self.seed, self.epoch, int(i), 1) % 2**63) for i in index]


# --------------------------------------------------------------------------- WebDataset
class ShardBatches(IterableDataset[tuple[torch.Tensor, torch.Tensor]]):
    """Whole batches read from WebDataset shards in a worker.

    Shards are shuffled by (seed, epoch), split across ranks, then across workers; worker ``w``
    of ``W`` makes global batches ``w, w + W, ...`` of its rank (the order DataLoader yields
    them in), each at the resolution of its global index, up to ``steps`` batches per epoch
    (the same on every rank) when given.
    """

    def __init__(
        self,
        shards: Sequence[str],
        batch_size: int,
        resolutions: Sequence[int],
        *,
        train: bool,
        seed: int,
        rank: int,
        world_size: int,
        steps: int | None = None,
        shuffle_buffer: int = 1000,
    ) -> None:
        self.steps = steps
        self.shards, self.batch_size, self.resolutions = list(shards), batch_size, tuple(resolutions)
        self.train, self.seed, self.rank, self.world_size = train, seed, rank, world_size
        self.shuffle_buffer = shuffle_buffer if train else 0
        self.epoch, self.start_step = 0, 0

    def __len__(self) -> int:
        return self.steps or 0

    def resolution(self, step: int) -> int:
        if len(self.resolutions) == 1:
            return self.resolutions[0]
        rng = np.random.default_rng(derive_seed(self.seed, self.epoch, step, 2))
        return self.resolutions[int(rng.integers(len(self.resolutions)))]

    def _my_shards(self) -> tuple[list[str], int, int]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        order = list(self.shards)
        if self.train:
            np.random.default_rng(derive_seed(self.seed, self.epoch)).shuffle(order)
        mine = order[self.rank :: self.world_size][worker::workers]
        return mine, worker, workers

    def _samples(self, shards: list[str]) -> Iterator[tuple[bytes, int, str]]:
        import webdataset as wds

        def same(urls: Any) -> Any:  # the shards are already split by rank and worker here
            return urls

        source = wds.WebDataset(shards, shardshuffle=False, nodesplitter=same, workersplitter=same, empty_check=False)
        rng = np.random.default_rng(derive_seed(self.seed, self.epoch, self.rank, 3))
        buffer: list[tuple[bytes, int, str]] = []
        for sample in source:
            key = str(sample.get("__key__", "?"))
            image = next((sample[k] for k in ("jpg", "jpeg", "png", "webp") if k in sample), None)
            if image is None or "cls" not in sample:
                raise DatasetError(
                    f"{sample.get('__url__', 'shard')}: sample {key} lacks an image (.jpg/.png) or a label (.cls)"
                )
            item = (image, int(sample["cls"]), key)
            if not self.shuffle_buffer:
                yield item
                continue
            buffer.append(item)
            if len(buffer) >= self.shuffle_buffer:
                yield buffer.pop(int(rng.integers(len(buffer))))
        while buffer:
            yield buffer.pop(int(rng.integers(len(buffer))))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        shards, worker, workers = self._my_shards()
        local, images, labels = 0, list[torch.Tensor](), list[int]()
        for image, label, key in self._samples(shards):
            step = local * workers + worker
            if self.steps is not None and step >= self.steps:
                return
            if step >= self.start_step:  # skipped batches are read but not decoded
                index = derive_seed(self.seed, self.epoch, self.rank, step, len(images)) % 2**63
                sample = Sample(0, self.resolution(step), self.train, index)
                draft = None if sample.augment else _eval_side(sample.resolution)
                images.append(_transformed(decode(image, key, draft), sample))
            labels.append(label)
            if len(labels) == self.batch_size:
                if images:
                    yield torch.stack(images), torch.tensor(labels)
                local, images, labels = local + 1, [], []
        if labels and not self.train and images:
            yield torch.stack(images), torch.tensor(labels)


def expand_shards(pattern: str) -> list[str]:
    """Shard names of a brace pattern (``train-{000000..000146}.tar``), a glob, or a folder of ``*.tar``."""
    from braceexpand import braceexpand

    if pattern.startswith("pipe:") or "://" in pattern:
        return list(braceexpand(pattern))
    path = Path(pattern).expanduser()
    if path.is_dir():
        return sorted(str(p) for p in path.glob("*.tar"))
    names = [n for part in braceexpand(str(path)) for n in (sorted(glob.glob(part)) or [part])]
    missing = [n for n in names if not Path(n).is_file()]
    if missing:
        raise DatasetError(f"{pattern}: shard {missing[0]} does not exist")
    return names


# --------------------------------------------------------------------------- the dataset
class StreamingDataset:
    """A streaming dataset with ``train``, ``holdout`` and ``test`` splits and per-split loaders.

    Args:
        name: ``imagefolder-stream`` or ``webdataset``.
        root: The tree (``train/``, ``val/``) or the folder holding ``train/`` and ``val/`` shards.
        holdout_fraction: Share of ``train`` held out (ImageFolder: at most ``holdout_size``
            images, stratified; WebDataset: that share of the shards, at least one).
        seed: Seed of the holdout choice.
        workers: DataLoader worker processes per loader (0: decode in this process).
        num_classes: Classes (WebDataset, whose shards do not list them).
        train_shards, val_shards: Shard patterns (WebDataset) instead of ``root``'s folders.
        train_samples: Images in the train shards (WebDataset): sets the epoch length, the same
            on every rank; without it an epoch ends when a rank's shards do.
        image_size: Evaluation resolution when a loader is given none.
    """

    in_channels = 3
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(
        self,
        name: str,
        root: str | Path | None,
        *,
        holdout_fraction: float = 0.01,
        holdout_size: int | None = 10000,
        seed: int = 0,
        workers: int = 0,
        num_classes: int | None = None,
        train_shards: str | None = None,
        val_shards: str | None = None,
        train_samples: int | None = None,
        image_size: int = 224,
    ) -> None:
        self.name, self.workers, self.image_size = name, workers, image_size
        self._said_workers = False
        self.train_samples = train_samples
        self.shards: dict[str, list[str]] = {}
        self.files: dict[str, FileList] = {}
        if name == "imagefolder-stream":
            if root is None:
                raise DatasetError("data.root: imagefolder-stream needs the folder holding train/<class>/ and val/")
            root = Path(root).expanduser()
            train, self.classes = scan_folder(root / "train")
            test_dir = root / "val" if (root / "val").is_dir() else root / "test"
            if not test_dir.is_dir():
                raise DatasetError(f"{root}: no val/ (or test/) folder next to train/")
            test, _ = scan_folder(test_dir, self.classes)
            held = holdout_indices(train.labels, holdout_fraction, seed, holdout_size)
            keep = np.setdiff1d(np.arange(len(train)), held, assume_unique=True)
            self.files = {"train": train.subset(keep), "holdout": train.subset(held), "test": test}
            sizes = {k: len(v) for k, v in self.files.items()}
        elif name == "webdataset":
            if train_shards is None and root is None:
                raise DatasetError(
                    "data.root: webdataset needs a folder with train/*.tar and val/*.tar, or data.train_shards"
                )
            train_list = expand_shards(train_shards or str(Path(str(root)) / "train"))
            test_list = expand_shards(val_shards or str(Path(str(root)) / "val"))
            if len(train_list) < 2 or not test_list:
                raise DatasetError(
                    f"webdataset: need >= 2 train shards (one is held out) and >= 1 val shard, "
                    f"got {len(train_list)} and {len(test_list)}"
                )
            n_held = max(1, round(len(train_list) * holdout_fraction))
            self.shards = {"train": train_list[:-n_held], "holdout": train_list[-n_held:], "test": test_list}
            if num_classes is None:
                raise DatasetError("webdataset: the number of classes comes from the space; none given")
            self.classes = tuple(str(i) for i in range(num_classes))
            sizes = {k: len(v) for k, v in self.shards.items()}
        else:
            raise DatasetError(f"data.name: unknown streaming dataset {name!r}; use imagefolder-stream or webdataset")
        logger.info("%s: %s (%s)", name, sizes, "images" if self.files else "shards")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @staticmethod
    def eval_resize(resolution: int) -> str:
        """How evaluation brings an image to ``resolution`` (the export manifest records it)."""
        return (
            f"shorter side to {_eval_side(resolution)} (bilinear, antialiased), centre crop {resolution}x{resolution}"
        )

    def split(self, name: str) -> Any:
        if name not in ("train", "holdout", "test"):
            raise DatasetError(f"split: unknown split {name!r}; use train, holdout or test")
        return self.files.get(name) or self.shards[name]

    def loader(
        self,
        split: str,
        batch_size: int,
        *,
        train: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool | None = None,
        resolutions: Sequence[int] | None = None,
    ) -> StreamLoader:
        """Batches of ``split``: augmented at one random resolution of ``resolutions`` per batch when
        ``train``, else resized and centre-cropped (to ``resolutions[0]``, default the image size)."""
        resolutions = tuple(resolutions or (self.image_size,))
        shuffle = train if shuffle is None else shuffle
        self.split(split)
        source: Any
        if self.files:
            sampler = ElasticBatchSampler(
                len(self.files[split]), batch_size, resolutions, train=train, shuffle=shuffle, seed=seed,
                rank=rank, world_size=world_size,
            )  # fmt: skip
            source = sampler
            # more decoding processes than CPUs only compete for them (and make torch warn per loader);
            # batches do not depend on the number of workers
            workers = min(self.workers, usable_cpus())
            if workers < self.workers and not self._said_workers:
                logger.info("%s: data.workers %d > %d usable CPUs; decoding in %d", self.name, self.workers,
                            workers, workers)  # fmt: skip
                self._said_workers = True
            loader = DataLoader(
                FolderImages(self.files[split]),
                batch_sampler=sampler,
                num_workers=workers,
                pin_memory=torch.cuda.is_available(),
                persistent_workers=train and workers > 0,  # epochs reuse them; an evaluation loader is one pass
                prefetch_factor=4 if workers > 0 else None,
                worker_init_fn=ignore_interrupts if workers > 0 else None,
            )
        else:
            shards = self.shards[split]
            if train and len(shards) % (world_size * max(1, self.workers)):
                raise DatasetError(
                    f"webdataset: {len(shards)} train shards do not divide among {world_size} rank(s) x "
                    f"{max(1, self.workers)} worker(s); every rank must take the same steps (use a multiple)"
                )
            steps = None
            if train and split == "train" and self.train_samples:
                steps = self.train_samples // world_size // batch_size
            source = ShardBatches(
                shards, batch_size, resolutions, train=train, seed=seed, rank=rank, world_size=world_size, steps=steps
            )
            loader = DataLoader(
                source,
                batch_size=None,
                num_workers=min(self.workers, len(shards)),
                pin_memory=torch.cuda.is_available(),
                persistent_workers=train and self.workers > 0,
                worker_init_fn=ignore_interrupts if self.workers > 0 else None,
            )
        return StreamLoader(loader, source, self.mean, self.std)


class StreamLoader:
    """Normalised batches of a streaming split: ``epoch(e, start_step)`` as the in-memory loader."""

    def __init__(self, loader: DataLoader[Any], source: Any, mean: Sequence[float], std: Sequence[float]) -> None:
        self.loader, self.source = loader, source
        self.mean = torch.tensor(mean).view(1, -1, 1, 1) * 255.0
        self.std = torch.tensor(std).view(1, -1, 1, 1) * 255.0

    def __len__(self) -> int:
        """Batches per epoch (0 when unknown: WebDataset shards without ``train_samples``)."""
        return len(self.source)

    def epoch(self, epoch: int = 0, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.source.epoch, self.source.start_step = epoch, start_step
        for images, labels in self.loader:
            yield (images.float() - self.mean) / self.std, labels

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(0)
