"""Image-classification datasets held in memory as uint8 tensors, with batch loaders.

Datasets: ``digits`` (scikit-learn's bundled 8x8 digits, upsampled to 28x28; zero
set-up), ``fashion-mnist`` (idx ``.gz`` files), ``cifar10`` (python pickle batches
or a ``train|test/<class>/*.jpg`` folder), ``imagefolder`` (any class-folder
dataset, resized at load) and ``synthetic`` (learnable random data for tests).

Every dataset has a ``train`` split, a ``holdout`` split carved from the training
set (seeded, stratified; used for BN recalibration and subnet evaluation during
search, never the test set) and a ``test`` split. Augmentation (random crop with
padding, optional horizontal flip) and normalisation run per batch on tensors,
from a generator seeded by (seed, epoch, step), so a resumed run sees exactly the
same batches.
"""

from __future__ import annotations

import gzip
import io
import logging
import pickle
import struct
import tarfile
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from nas.core.seeding import derive_seed

logger = logging.getLogger(__name__)

DATASETS = ("digits", "fashion-mnist", "cifar10", "imagefolder", "synthetic")
STREAMING_DATASETS = ("imagefolder-stream", "webdataset")  # search_spaces.streaming
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist", "~/.cache/hwnas/fashion-mnist")
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
FASHION_MNIST_CLASSES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
)
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".webp")


class DatasetError(ValueError):
    """A dataset is missing, corrupt or misconfigured (the message says which file and how to fix it)."""


@dataclass
class ImageSplit:
    """Images as uint8 ``[N, C, H, W]`` and int64 labels ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DatasetError(f"images must be uint8 [N, C, H, W], got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise DatasetError(f"{self.images.shape[0]} images but labels of shape {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor) -> ImageSplit:
        return ImageSplit(self.images[index], self.labels[index])


@dataclass
class Dataset:
    """Train / holdout / test splits with their statistics and augmentation settings."""

    name: str
    train: ImageSplit
    holdout: ImageSplit
    test: ImageSplit
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    hflip: bool
    crop_padding: int

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[-1])

    @staticmethod
    def eval_resize(resolution: int) -> str:
        """How evaluation brings an image to ``resolution`` (the export manifest records it)."""
        return f"bilinear to {resolution}x{resolution}"

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
    ) -> BatchLoader:
        """Batches of ``split`` at the images' own size (callers resize to a subnet's resolution;
        ``resolutions`` is for streaming datasets, which decode at the batch's resolution)."""
        return BatchLoader(
            self.split(split), self, batch_size, train=train, seed=seed, rank=rank, world_size=world_size,
            shuffle=shuffle,
        )  # fmt: skip

    def split(self, name: str) -> ImageSplit:
        if name not in ("train", "holdout", "test"):
            raise DatasetError(f"split: unknown split {name!r}; use train, holdout or test")
        return getattr(self, name)


# --------------------------------------------------------------------- loaders
def _read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Reads a gzip idx file (MNIST format) with header and size checks."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable gzip file ({exc}); re-download or reinstall it") from exc
    if len(raw) < 8:
        raise DatasetError(f"{path}: truncated idx header")
    magic, count = struct.unpack(">II", raw[:8])
    if magic != expected_magic:
        raise DatasetError(f"{path}: bad idx magic number {magic} (expected {expected_magic}); wrong or corrupt file")
    ndim = magic & 0xFF
    dims = [count, *struct.unpack(f">{ndim - 1}I", raw[8 : 4 + 4 * ndim])] if ndim > 1 else [count]
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise DatasetError(f"{path}: expected {expected} bytes of data for shape {dims}, found {len(raw) - offset}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def find_fashion_mnist(root: str | Path | None) -> Path:
    """The folder holding the four Fashion-MNIST idx files."""
    candidates = [Path(root).expanduser()] if root else [Path(d).expanduser() for d in FASHION_MNIST_DIRS]
    for folder in candidates:
        if all((folder / f).is_file() for f in FASHION_MNIST_FILES.values()):
            return folder
    where = ", ".join(str(c) for c in candidates)
    raise DatasetError(
        f"Fashion-MNIST idx files not found in {where}; install Debian's package dataset-fashion-mnist "
        "(`apt-get install dataset-fashion-mnist`), pass data.root, or set data.download: true"
    )


def download_fashion_mnist(root: str | Path) -> Path:  # pragma: no cover - needs internet
    """Downloads the four idx files into ``root`` (only for machines with internet)."""
    folder = Path(root).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    for name in FASHION_MNIST_FILES.values():
        target = folder / name
        if not target.is_file():
            logger.info("downloading %s", FASHION_MNIST_URL + name)
            tmp = target.with_suffix(".part")
            urllib.request.urlretrieve(FASHION_MNIST_URL + name, tmp)
            tmp.replace(target)
    return folder


def load_fashion_mnist(root: str | Path | None = None, download: bool = False) -> tuple[ImageSplit, ImageSplit]:
    if download:
        root = download_fashion_mnist(root or FASHION_MNIST_DIRS[1])
    folder = find_fashion_mnist(root)
    f = FASHION_MNIST_FILES
    splits = []
    for part in ("train", "test"):
        images = _read_idx(folder / f[f"{part}_images"], 2051)
        labels = _read_idx(folder / f[f"{part}_labels"], 2049)
        if images.shape[0] != labels.shape[0]:
            raise DatasetError(f"{folder}: {images.shape[0]} {part} images but {labels.shape[0]} labels")
        if labels.max() >= 10:
            raise DatasetError(f"{folder / f[f'{part}_labels']}: label {labels.max()} out of range 0..9")
        splits.append(
            ImageSplit(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))
        )
    return splits[0], splits[1]


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR python batches that refuses every global but numpy arrays."""

    ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DatasetError(f"{path}: CIFAR-10 batch file not found")
    try:
        with path.open("rb") as fh:
            batch = _CifarUnpickler(fh, encoding="bytes").load()
    except Exception as exc:
        raise DatasetError(f"{path}: not a valid CIFAR-10 python batch ({exc})") from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DatasetError(f"{path}: CIFAR-10 batch lacks 'data' or 'labels'")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise DatasetError(f"{path}: expected data of shape [N, 3072] and N labels, got {data.shape}, {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


def _decode_image(blob: bytes, channels: int, size: int | None, source: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(blob)) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"{source}: cannot decode image ({exc})") from exc
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def _folder_split(
    folder: Path, classes: Sequence[str] | None, channels: int, size: int | None
) -> tuple[ImageSplit, tuple[str, ...]]:
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir())
    if not class_dirs:
        raise DatasetError(f"{folder}: no class folders (expected {folder}/<class>/<image>)")
    names = tuple(d.name for d in class_dirs)
    if classes is not None and set(names) != set(classes):
        raise DatasetError(f"{folder}: class folders {list(names)} differ from {list(classes)}")
    order = tuple(classes) if classes is not None else names
    images, labels = [], []
    for label, name in enumerate(order):
        files = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in files:
            images.append(_decode_image(path.read_bytes(), channels, size, str(path)))
            labels.append(label)
    if not images:
        raise DatasetError(f"{folder}: no images found (suffixes {', '.join(IMAGE_SUFFIXES)})")
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise DatasetError(
            f"{folder}: images have different sizes {sorted(shapes)[:3]}; set data.image_size to resize them"
        )
    return ImageSplit(torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64)), order


def _archive_splits(archive: Path, channels: int, size: int | None) -> tuple[ImageSplit, ImageSplit, tuple[str, ...]]:
    """Reads ``*/train|test/<class>/<image>`` members of a tar archive without extracting it."""
    per_split: dict[str, list[tuple[str, str, bytes]]] = {"train": [], "test": []}
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                if not member.isfile() or not member.name.lower().endswith(IMAGE_SUFFIXES):
                    continue
                parts = Path(member.name).parts
                if len(parts) < 3 or parts[-3] not in per_split:
                    continue
                fh = tar.extractfile(member)
                if fh is not None:
                    per_split[parts[-3]].append((parts[-2], member.name, fh.read()))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DatasetError(f"{archive}: cannot read archive ({exc})") from exc
    if not per_split["train"] or not per_split["test"]:
        raise DatasetError(f"{archive}: no train/<class>/ and test/<class>/ images inside")
    classes = tuple(sorted({c for c, _, _ in per_split["train"]}))
    out = []
    for split in ("train", "test"):
        items = sorted(per_split[split], key=lambda t: t[1])
        images = np.stack([_decode_image(blob, channels, size, name) for _, name, blob in items])
        labels = torch.tensor([classes.index(c) for c, _, _ in items], dtype=torch.int64)
        out.append(ImageSplit(torch.from_numpy(images), labels))
    return out[0], out[1], classes


def _read_cifar_binary(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-10 binary batch: records of one label byte and 3,072 pixel bytes (no pickle)."""
    if not path.is_file():
        raise DatasetError(f"{path}: CIFAR-10 binary batch not found")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % 3073:
        raise DatasetError(f"{path}: not a CIFAR-10 binary batch ({raw.size} bytes is not a whole number of records)")
    records = raw.reshape(-1, 3073)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= len(CIFAR10_CLASSES):
        raise DatasetError(f"{path}: a label is {labels.max()}, CIFAR-10 has {len(CIFAR10_CLASSES)} classes")
    return records[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


def load_cifar10(root: str | Path) -> tuple[ImageSplit, ImageSplit, tuple[str, ...]]:
    """CIFAR-10 from binary batches (``nas data fetch cifar10``), python batches, a JPEG class-folder
    tree, or a tar archive of one."""
    path = Path(root).expanduser()
    if path.is_file() and tarfile.is_tarfile(path):
        return _archive_splits(path, 3, 32)
    binary = path / "cifar-10-batches-bin" if (path / "cifar-10-batches-bin").is_dir() else path
    if (binary / "data_batch_1.bin").exists():
        parts = [_read_cifar_binary(binary / f"data_batch_{i}.bin") for i in range(1, 6)]
        test_images, test_labels = _read_cifar_binary(binary / "test_batch.bin")
        train = ImageSplit(
            torch.from_numpy(np.concatenate([p[0] for p in parts])),
            torch.from_numpy(np.concatenate([p[1] for p in parts])),
        )
        return train, ImageSplit(torch.from_numpy(test_images), torch.from_numpy(test_labels)), CIFAR10_CLASSES
    if (path / "data_batch_1").exists() or (path / "test_batch").exists():
        parts = [_read_cifar_batch(path / f"data_batch_{i}") for i in range(1, 6)]
        test = _read_cifar_batch(path / "test_batch")
        train = ImageSplit(
            torch.from_numpy(np.concatenate([p[0] for p in parts])),
            torch.from_numpy(np.concatenate([p[1] for p in parts])),
        )
        return train, ImageSplit(torch.from_numpy(test[0]), torch.from_numpy(test[1])), CIFAR10_CLASSES
    if (path / "train").is_dir() and (path / "test").is_dir():
        train_split, classes = _folder_split(path / "train", None, 3, 32)
        test_split, _ = _folder_split(path / "test", classes, 3, 32)
        return train_split, test_split, classes
    nested = [p for p in path.glob("*/train") if p.is_dir()] if path.is_dir() else []
    if nested:
        return load_cifar10(nested[0].parent)
    raise DatasetError(
        f"{path}: no CIFAR-10 found; expected python batches (data_batch_1..5, test_batch), "
        "train/<class>/*.jpg and test/<class>/*.jpg folders, or a .tar(.xz) archive of them"
    )


def load_imagefolder(
    root: str | Path, channels: int = 3, image_size: int | None = None
) -> tuple[ImageSplit, ImageSplit, tuple[str, ...]]:
    """``root/train/<class>/*`` and ``root/test/<class>/*`` (or ``val``), resized to ``image_size``."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetError(f"{path}: image folder not found")
    if not (path / "train").is_dir():
        raise DatasetError(f"{path}: expected a train/<class>/ folder (and test/ or val/)")
    test_dir = path / "test" if (path / "test").is_dir() else path / "val"
    if not test_dir.is_dir():
        raise DatasetError(f"{path}: expected a test/<class>/ or val/<class>/ folder beside train/")
    train, classes = _folder_split(path / "train", None, channels, image_size)
    test, _ = _folder_split(test_dir, classes, channels, image_size)
    return train, test, classes


def load_digits_splits(size: int = 28) -> tuple[ImageSplit, ImageSplit]:
    """scikit-learn's 1,797 8x8 digits, upsampled to ``size``; fixed stratified 80/20 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=0.2, random_state=0, stratify=digits.target
    )
    return ImageSplit(images[train_idx], labels[train_idx]), ImageSplit(images[test_idx], labels[test_idx])


def make_synthetic(
    num_train: int = 512,
    num_test: int = 128,
    channels: int = 1,
    size: int = 28,
    num_classes: int = 10,
    seed: int = 0,
) -> tuple[ImageSplit, ImageSplit]:
    """Smooth class templates plus pixel noise: learnable in a few steps, for fast tests."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, channels, 4, 4, generator=gen)  # smooth: survives crops and resizes
    templates = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    splits = []
    for n in (num_train, num_test):
        labels = torch.randint(0, num_classes, (n,), generator=gen)
        noise = 0.35 * torch.randn(n, channels, size, size, generator=gen)
        images = ((templates[labels] + noise).clamp(0, 1) * 255).round().to(torch.uint8)
        splits.append(ImageSplit(images, labels))
    return splits[0], splits[1]


def holdout_split(train: ImageSplit, fraction: float, seed: int) -> tuple[ImageSplit, ImageSplit]:
    """Stratified, seeded carve-out of ``fraction`` of the training set."""
    if not 0.0 < fraction < 1.0:
        raise DatasetError(f"holdout_fraction: must be within (0, 1), got {fraction}")
    gen = torch.Generator().manual_seed(seed)
    keep, held = [], []
    for label in torch.unique(train.labels):
        idx = torch.nonzero(train.labels == label).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_held = max(1, round(len(idx) * fraction)) if len(idx) > 1 else 0
        held.append(idx[:n_held])
        keep.append(idx[n_held:])
    keep_idx, held_idx = torch.sort(torch.cat(keep)).values, torch.sort(torch.cat(held)).values
    return train.subset(keep_idx), train.subset(held_idx)


def load_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    holdout_fraction: float = 0.1,
    seed: int = 0,
    download: bool = False,
    image_size: int | None = None,
    channels: int = 3,
    synthetic_size: int = 28,
    synthetic_channels: int = 1,
    synthetic_samples: int = 512,
    synthetic_classes: int = 10,
) -> Dataset:
    """Loads a dataset by name with its holdout split.

    Raises:
        DatasetError: unknown name, missing root, or missing / corrupt files.
    """
    hflip, padding = False, 2
    if name == "digits":
        train, test = load_digits_splits()
        classes = tuple(str(i) for i in range(10))
    elif name == "fashion-mnist":
        train, test = load_fashion_mnist(root, download)
        classes, hflip = FASHION_MNIST_CLASSES, True
    elif name == "cifar10":
        if root is None:  # the copy `nas data fetch cifar10` keeps
            from nas.data import DataError
            from nas.data import path as fetched

            try:
                root = fetched("cifar10")
            except DataError as e:
                raise DatasetError(
                    f"data.root: {e}, or set data.root to a folder or archive holding CIFAR-10"
                ) from None
        train, test, classes = load_cifar10(root)
        hflip, padding = True, 4
    elif name == "imagefolder":
        if root is None:
            raise DatasetError("data.root: imagefolder needs the folder holding train/<class>/ and test/<class>/")
        train, test, classes = load_imagefolder(root, channels, image_size)
        hflip, padding = True, 4
    elif name == "synthetic":
        train, test = make_synthetic(
            synthetic_samples, synthetic_samples // 4, synthetic_channels, synthetic_size, synthetic_classes, seed=seed
        )
        classes = tuple(str(i) for i in range(synthetic_classes))
    else:
        raise DatasetError(
            f"data.name: unknown dataset {name!r}; choose one of {', '.join(DATASETS + STREAMING_DATASETS)}"
        )
    if image_size is not None and name != "imagefolder" and train.images.shape[-1] != image_size:
        train = ImageSplit(_resize_uint8(train.images, image_size), train.labels)
        test = ImageSplit(_resize_uint8(test.images, image_size), test.labels)
    train, holdout = holdout_split(train, holdout_fraction, seed)
    pixels = train.images.float() / 255.0
    mean = tuple(float(v) for v in pixels.mean((0, 2, 3)))
    std = tuple(max(float(v), 1e-3) for v in pixels.std((0, 2, 3)))
    logger.info("%s: %d train / %d holdout / %d test images", name, len(train), len(holdout), len(test))
    return Dataset(name, train, holdout, test, classes, mean, std, hflip, padding)


def _resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


# --------------------------------------------------------------------- batches
def step_generator(seed: int, *parts: int) -> torch.Generator:
    """A torch generator seeded from ``seed`` and a path of integers (epoch, step, ...)."""
    return torch.Generator().manual_seed(derive_seed(seed, *parts))


class BatchLoader:
    """Seeded, resumable batches of normalised (and optionally augmented) images.

    Args:
        split: The images.
        dataset: Provides mean, std and augmentation settings.
        batch_size: Batch size (per process).
        train: Shuffle, augment and drop the last incomplete batch (the defaults of
            ``shuffle`` and ``augment``).
        seed: Base seed; epoch ``e`` uses a permutation drawn from (seed, e).
        shuffle: Override of the shuffling (default: ``train``).
        augment: Override of the augmentation (default: ``train``).
        rank: This process's rank (data is sharded by rank).
        world_size: Number of processes.
    """

    def __init__(
        self,
        split: ImageSplit,
        dataset: Dataset,
        batch_size: int,
        *,
        train: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool | None = None,
        augment: bool | None = None,
    ) -> None:
        if batch_size <= 0:
            raise DatasetError(f"batch_size: must be positive, got {batch_size}")
        self.split = split
        self.batch_size = batch_size
        self.train = train
        self.shuffle = train if shuffle is None else shuffle
        self.augment = train if augment is None else augment
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.mean = torch.tensor(dataset.mean).view(1, -1, 1, 1)
        self.std = torch.tensor(dataset.std).view(1, -1, 1, 1)
        self.hflip = dataset.hflip
        self.padding = dataset.crop_padding

    def __len__(self) -> int:
        per_rank = len(self.split) // self.world_size if self.train else -(-len(self.split) // self.world_size)
        return per_rank // self.batch_size if self.train else -(-per_rank // self.batch_size)

    def _indices(self, epoch: int) -> torch.Tensor:
        n = len(self.split)
        order = torch.randperm(n, generator=step_generator(self.seed, epoch)) if self.shuffle else torch.arange(n)
        if self.world_size > 1:
            usable = n - n % self.world_size if self.train else n
            order = order[:usable][self.rank :: self.world_size]
        return order

    def epoch(self, epoch: int = 0, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of epoch ``epoch``, starting at batch ``start_step``."""
        order = self._indices(epoch)
        for step in range(start_step, len(self)):
            index = order[step * self.batch_size : (step + 1) * self.batch_size]
            images = self.split.images[index]
            if self.augment:
                images = self._augment(images, step_generator(self.seed, epoch, step, 1))
            x = (images.float().div_(255.0) - self.mean) / self.std
            yield x, self.split.labels[index]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(0)

    def _augment(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n, _, h, w = images.shape
        if self.padding:
            p = self.padding
            padded = F.pad(images, (p, p, p, p))
            dx = torch.randint(0, 2 * p + 1, (n,), generator=gen)
            dy = torch.randint(0, 2 * p + 1, (n,), generator=gen)
            rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).view(n, 1, h, 1)
            cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).view(n, 1, 1, w)
            batch = torch.arange(n).view(n, 1, 1, 1)
            chans = torch.arange(images.shape[1]).view(1, -1, 1, 1)
            images = padded[batch, chans, rows, cols]
        if self.hflip:
            flip = torch.rand(n, generator=gen) < 0.5
            images = torch.where(flip.view(n, 1, 1, 1), images.flip(3), images)
        return images
