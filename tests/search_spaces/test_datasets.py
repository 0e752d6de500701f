"""Dataset loaders on small files written here, in every on-disk format."""

from __future__ import annotations

import gzip
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from search_spaces.datasets import BatchLoader, DatasetError, holdout_split, load_dataset, make_synthetic


def write_idx(path: Path, array: np.ndarray) -> None:
    magic = (0x08 << 8) | array.ndim
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fashion_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for part, n in (("train", 60), ("t10k", 20)):
        write_idx(tmp_path / f"{part}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{part}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return tmp_path


def test_fashion_mnist_idx(fashion_dir: Path) -> None:
    data = load_dataset("fashion-mnist", fashion_dir, holdout_fraction=0.2)
    # 6 images per class, 20% held out per class (stratified): 1 per class
    assert data.train.images.shape == (50, 1, 28, 28) and data.train.images.dtype == torch.uint8
    assert len(data.holdout) == 10 and len(data.test) == 20
    assert torch.bincount(data.holdout.labels).tolist() == [1] * 10
    assert data.num_classes == 10 and data.in_channels == 1 and data.hflip
    with gzip.open(fashion_dir / "t10k-images-idx3-ubyte.gz") as fh:
        raw = np.frombuffer(fh.read()[16:], dtype=np.uint8)
    assert torch.equal(data.test.images.flatten(), torch.from_numpy(raw.copy()))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_bytes(b"not gzip at all"), "not a readable gzip file"),
        (lambda p: p.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 20)), "bad idx magic number"),
        (
            lambda p: p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:-100])),
            "expected 47040 bytes",
        ),
        (lambda p: p.unlink(), "Fashion-MNIST idx files not found"),
    ],
)
def test_fashion_mnist_corrupt_or_missing(fashion_dir: Path, damage, message: str) -> None:
    damage(fashion_dir / "train-images-idx3-ubyte.gz")
    with pytest.raises(DatasetError, match=message):
        load_dataset("fashion-mnist", fashion_dir)


def test_fashion_mnist_default_location_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("search_spaces.datasets.FASHION_MNIST_DIRS", (str(tmp_path / "nowhere"),))
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist")


def _cifar_batches(folder: Path, per_batch: int = 10) -> None:
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8),
            b"labels": list(range(per_batch)),
        }
        (folder / name).write_bytes(pickle.dumps(batch))


def test_cifar10_python_batches(tmp_path: Path) -> None:
    _cifar_batches(tmp_path)
    data = load_dataset("cifar10", tmp_path, holdout_fraction=0.2)
    assert len(data.train) + len(data.holdout) == 50 and len(data.test) == 10
    assert data.train.images.shape[1:] == (3, 32, 32)
    first = pickle.loads((tmp_path / "test_batch").read_bytes())[b"data"][0].reshape(3, 32, 32)
    assert torch.equal(data.test.images[0], torch.from_numpy(first))


def test_cifar10_refuses_malicious_pickle(tmp_path: Path) -> None:
    _cifar_batches(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "data_batch_3").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DatasetError, match=r"data_batch_3: not a valid CIFAR-10 python batch .*not allowed"):
        load_dataset("cifar10", tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="data_batch_3: CIFAR-10 batch file not found"):
        load_dataset("cifar10", tmp_path)


def _jpeg_tree(root: Path, classes=("cat", "dog"), per_class: int = 6, size: int = 32) -> None:
    rng = np.random.default_rng(2)
    for split in ("train", "test"):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = np.full(
                    (size, size, 3), 40 + 150 * c // max(1, len(classes) - 1), dtype=np.uint8
                ) + rng.integers(0, 20, (size, size, 3)).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:04d}.jpg", quality=95)


def test_cifar10_jpeg_folders_and_archive(tmp_path: Path) -> None:
    _jpeg_tree(tmp_path / "cifar10_jpg")
    data = load_dataset("cifar10", tmp_path / "cifar10_jpg", holdout_fraction=0.25)
    assert data.classes == ("cat", "dog") and len(data.test) == 12
    assert data.test.images[:6].float().mean() < 100 < data.test.images[6:].float().mean()
    archive = tmp_path / "cifar.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(tmp_path / "cifar10_jpg", arcname="cifar10_jpg")
    from_archive = load_dataset("cifar10", archive, holdout_fraction=0.25)
    assert torch.equal(from_archive.test.images, data.test.images)
    assert torch.equal(from_archive.test.labels, data.test.labels)


def test_imagefolder_resizes_and_reports_bad_images(tmp_path: Path) -> None:
    _jpeg_tree(tmp_path, classes=("a", "b", "c"), per_class=4, size=20)
    data = load_dataset("imagefolder", tmp_path, image_size=16, holdout_fraction=0.25)
    assert data.train.images.shape[1:] == (3, 16, 16) and data.num_classes == 3
    (tmp_path / "train" / "b" / "0001.jpg").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"0001\.jpg: cannot decode image"):
        load_dataset("imagefolder", tmp_path, image_size=16)
    with pytest.raises(DatasetError, match="image folder not found"):
        load_dataset("imagefolder", tmp_path / "missing")
    with pytest.raises(DatasetError, match="unknown dataset 'mnist2'"):
        load_dataset("mnist2")


def test_cifar10_as_a_user_gets_it(cifar10_data: Path) -> None:
    data = load_dataset("cifar10", cifar10_data)
    assert len(data.train) + len(data.holdout) == 50000 and len(data.test) == 10000
    assert data.classes[0] == "airplane" and data.classes[-1] == "truck"
    assert torch.bincount(data.test.labels).tolist() == [1000] * 10


def test_digits_is_zero_setup() -> None:
    data = load_dataset("digits")
    assert data.image_size == 28 and data.in_channels == 1 and data.num_classes == 10
    assert len(data.train) + len(data.holdout) + len(data.test) == 1797
    assert not data.hflip  # flipping digits would change their meaning


def test_holdout_is_stratified_and_disjoint() -> None:
    train, _ = make_synthetic(400, 10, seed=3)
    keep, held = holdout_split(train, 0.1, seed=0)
    assert len(keep) + len(held) == 400
    counts = torch.bincount(held.labels, minlength=10).float()
    expected = torch.bincount(train.labels, minlength=10).float() * 0.1
    assert torch.all((counts - expected).abs() <= 1)
    with pytest.raises(DatasetError, match="holdout_fraction"):
        holdout_split(train, 1.5, seed=0)


def test_batch_loader_is_deterministic_resumable_and_sharded() -> None:
    data = load_dataset("synthetic", synthetic_samples=300)
    loader = BatchLoader(data.train, data, 32, train=True, seed=5)
    full = list(loader.epoch(3))
    again = list(loader.epoch(3))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(full, again))
    resumed = list(loader.epoch(3, start_step=4))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(full[4:], resumed))
    assert not torch.equal(full[0][1], next(loader.epoch(4))[1])
    shards = [BatchLoader(data.train, data, 8, train=False, rank=r, world_size=2) for r in (0, 1)]
    seen = [torch.cat([y for _, y in s.epoch(0)]) for s in shards]
    assert len(seen[0]) + len(seen[1]) == len(data.train)
    x, _ = next(BatchLoader(data.holdout, data, 1000, train=False).epoch(0))
    assert abs(float(x.mean())) < 0.2  # normalised with training statistics
