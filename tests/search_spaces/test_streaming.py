"""Streaming datasets: an ImageFolder tree and WebDataset shards, decoded in worker processes,
one resolution per batch, seeded augmentation, exact resume, bounded memory by construction."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.testing.images import COLOURS, jpeg, write_image_tree
from nas.testing.tiny_train import tiny
from search_spaces.datasets import DatasetError
from search_spaces.streaming import StreamingDataset
from search_spaces.training import checkpoint as ckpt
from search_spaces.training.config import load_train_config
from search_spaces.training.trainer import SupernetTrainer


def _jpeg(label: int, index: int, size: tuple[int, int]) -> bytes:
    return jpeg(COLOURS[label], index, size)


def make_tree(root: Path, per_class: int = 12, val_per_class: int = 4) -> Path:
    return write_image_tree(root, per_class, val_per_class)


def make_shards(root: Path, shards: int, per_shard: int, split: str = "train") -> Path:
    (root / split).mkdir(parents=True, exist_ok=True)
    n = 0
    for s in range(shards):
        with tarfile.open(root / split / f"{split}-{s:04d}.tar", "w") as tar:
            for _ in range(per_shard):
                label = n % len(COLOURS)
                for suffix, data in ((".jpg", _jpeg(label, n, (40, 36))), (".cls", str(label).encode())):
                    info = tarfile.TarInfo(f"sample{n:06d}{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                n += 1
    return root


def _colour_label(x: torch.Tensor, data: StreamingDataset) -> torch.Tensor:
    mean = torch.tensor(data.mean).view(1, 3, 1, 1)
    std = torch.tensor(data.std).view(1, 3, 1, 1)
    rgb = (x * std + mean).mean((2, 3)) * 255
    return torch.cdist(rgb, torch.tensor(COLOURS, dtype=torch.float32)).argmin(1)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("imagenet"))


def _batches(loader, epoch: int = 0, start: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(loader.epoch(epoch, start))


def test_imagefolder_splits_and_a_fixed_stratified_holdout(tree: Path) -> None:
    data = StreamingDataset("imagefolder-stream", tree, holdout_fraction=0.25, holdout_size=None, seed=3)
    assert data.classes == ("class0", "class1", "class2")
    train, holdout, test = (data.split(s) for s in ("train", "holdout", "test"))
    assert (len(train), len(holdout), len(test)) == (27, 9, 12)
    assert np.bincount(holdout.labels).tolist() == [3, 3, 3]  # stratified
    assert not set(train.paths.tolist()) & set(holdout.paths.tolist())
    again = StreamingDataset("imagefolder-stream", tree, holdout_fraction=0.25, holdout_size=None, seed=3)
    assert again.split("holdout").paths.tolist() == holdout.paths.tolist()  # a fixed list
    capped = StreamingDataset("imagefolder-stream", tree, holdout_fraction=0.25, holdout_size=3)
    assert len(capped.split("holdout")) == 3


def test_training_batches_one_resolution_each_seeded_and_resumable(tree: Path) -> None:
    data = StreamingDataset("imagefolder-stream", tree, holdout_fraction=0.25, holdout_size=None)
    resolutions = (16, 24, 32)
    loader = data.loader("train", 4, train=True, seed=5, resolutions=resolutions)
    batches = _batches(loader, epoch=2)
    assert len(batches) == len(loader) == 27 // 4
    sizes = [x.shape[-1] for x, _ in batches]
    assert set(sizes) <= set(resolutions) and len(set(sizes)) > 1
    assert all(x.shape[-2] == x.shape[-1] and x.dtype == torch.float32 for x, _ in batches)
    for x, y in batches:  # labels belong to their images
        assert torch.equal(_colour_label(x, data), y)
    # the same batches with worker processes, and from a resumed step
    workers = StreamingDataset("imagefolder-stream", tree, holdout_fraction=0.25, holdout_size=None, workers=2)
    parallel = _batches(workers.loader("train", 4, train=True, seed=5, resolutions=resolutions), epoch=2)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, parallel))
    resumed = _batches(loader, epoch=2, start=4)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches[4:], resumed)) and len(resumed) == len(batches) - 4
    # another epoch is another order and other crops; every rank uses the same resolution per step
    assert [x.shape[-1] for x, _ in _batches(loader, epoch=3)] != sizes or not torch.equal(
        batches[0][0], _batches(loader, epoch=3)[0][0]
    )
    ranks = [data.loader("train", 2, train=True, seed=5, rank=r, world_size=2, resolutions=resolutions) for r in (0, 1)]
    per_rank = [[x.shape[-1] for x, _ in _batches(loader_, epoch=1)] for loader_ in ranks]
    assert per_rank[0] == per_rank[1]


def test_evaluation_batches_are_centre_crops_in_order(tree: Path) -> None:
    data = StreamingDataset("imagefolder-stream", tree, workers=0)
    loader = data.loader("test", 5, train=False, resolutions=[20])
    batches = _batches(loader)
    assert [len(y) for _, y in batches] == [5, 5, 2] and all(x.shape[1:] == (3, 20, 20) for x, _ in batches)
    labels = torch.cat([y for _, y in batches])
    assert labels.tolist() == sorted(labels.tolist())  # sorted file order, no shuffling
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, _batches(loader)))


def test_bad_trees_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="needs the folder"):
        StreamingDataset("imagefolder-stream", None)
    with pytest.raises(DatasetError, match=r"train: no such folder"):
        StreamingDataset("imagefolder-stream", tmp_path)
    root = make_tree(tmp_path / "t", per_class=4, val_per_class=1)
    (root / "val" / "class2").rename(root / "val" / "classX")
    differ = r"class folders differ from train's \(missing \['class2'\], extra \['classX'\]"
    with pytest.raises(DatasetError, match=differ):
        StreamingDataset("imagefolder-stream", root)
    (root / "val" / "classX").rename(root / "val" / "class2")
    (root / "train" / "class1" / "img000.JPEG").write_bytes(b"not a jpeg")
    data = StreamingDataset("imagefolder-stream", root, holdout_fraction=0.25, holdout_size=None)
    with pytest.raises(DatasetError, match=r"class1/img000.JPEG: not a readable image"):
        for split in ("train", "holdout"):
            _batches(data.loader(split, 3, train=split == "train", resolutions=[16]))


def test_webdataset_shards(tmp_path: Path) -> None:
    root = make_shards(tmp_path, shards=5, per_shard=6)
    make_shards(root, shards=2, per_shard=5, split="val")
    data = StreamingDataset("webdataset", root, holdout_fraction=0.2, num_classes=3, train_samples=24)
    assert [len(data.split(s)) for s in ("train", "holdout", "test")] == [4, 1, 2]
    test = _batches(data.loader("test", 4, train=False, resolutions=[24]))
    assert sum(len(y) for _, y in test) == 10 and all(x.shape[-1] == 24 for x, _ in test)
    for x, y in test:
        assert torch.equal(_colour_label(x, data), y)
    loader = data.loader("train", 4, train=True, seed=1, resolutions=(16, 24))
    batches = _batches(loader, epoch=0)
    assert len(batches) == len(loader) == 6 and {x.shape[-1] for x, _ in batches} <= {16, 24}
    resumed = _batches(loader, epoch=0, start=2)
    assert len(resumed) == 4 and all(torch.equal(a[0], b[0]) for a, b in zip(batches[2:], resumed))
    two = StreamingDataset("webdataset", root, holdout_fraction=0.2, num_classes=3, train_samples=24, workers=2)
    parallel = _batches(two.loader("train", 4, train=True, seed=1, resolutions=(16, 24)))
    assert [x.shape[-1] for x, _ in parallel] == [loader.source.resolution(s) for s in range(6)]
    with pytest.raises(DatasetError, match="do not divide among 1 rank"):
        StreamingDataset("webdataset", root, holdout_fraction=0.4, num_classes=3, workers=2).loader(
            "train", 4, train=True
        )
    with pytest.raises(DatasetError, match=r"shard .*missing\.tar does not exist"):
        StreamingDataset("webdataset", None, train_shards=str(tmp_path / "missing.tar"), num_classes=3)


def _stream_config(tree: Path, **training) -> dict:
    cfg = tiny(
        data={"name": "imagefolder-stream", "root": str(tree), "batch_size": 6, "holdout_fraction": 0.25, "workers": 0},
        training={"eval_random_subnets": 0, **training},
    )
    cfg["space"]["options"]["in_channels"] = 3
    cfg["space"]["options"]["num_classes"] = 3
    return cfg


def test_training_on_a_streamed_tree_resumes_exactly(tree: Path, tmp_path: Path) -> None:
    end = 9
    ref = SupernetTrainer(load_train_config(_stream_config(tree, max_steps=end)), tmp_path / "ref")
    ref.run()
    first = SupernetTrainer(load_train_config(_stream_config(tree, max_steps=4)), tmp_path / "resumed").run()
    assert first == {"stopped": True, "reason": "max_steps", "global_step": 4}
    SupernetTrainer(load_train_config(_stream_config(tree, max_steps=end)), tmp_path / "resumed", resume=True).run()
    ref_t, _ = ckpt.load_checkpoint(tmp_path / "ref" / "checkpoint")
    res_t, _ = ckpt.load_checkpoint(tmp_path / "resumed" / "checkpoint")
    assert set(ref_t) == set(res_t) and all(torch.equal(ref_t[k], res_t[k]) for k in ref_t)


def test_ctrl_c_with_decoding_workers_stops_with_a_checkpoint(tree: Path, tmp_path: Path) -> None:
    """Issue 27, finding 16: Ctrl-C to `nas train` with DataLoader workers was swallowed
    (`Exception ignored ... KeyboardInterrupt`) and training went on. Now the workers leave the
    signal to the main process, which finishes its step, writes a checkpoint, says how to
    continue and exits 130; the run resumes from there."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    root = Path(__file__).resolve().parents[2]
    cfg = _stream_config(tree, checkpoint_every_steps=1)
    cfg["data"]["workers"] = 2
    cfg["phases"][0]["epochs"] = 200  # far longer than the test waits
    config, out = tmp_path / "train.yaml", tmp_path / "run"
    config.write_text(yaml.safe_dump(cfg))
    state = out / "checkpoint" / ckpt.STATE_FILE
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, "-m", "nas.cli", "train", str(config), "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert state.exists(), proc.communicate(timeout=5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-3000:]
    assert "stopping after this step" in err and f"nas train {config} --out {out} --resume" in err
    assert "Exception ignored" not in err and "Traceback" not in err, err[-3000:]
    step = json.loads(state.read_text())["global_step"]
    cfg["training"]["max_steps"] = step + 2
    config.write_text(yaml.safe_dump(cfg))
    again = SupernetTrainer(load_train_config(config), out, resume=True).run()
    assert again == {"stopped": True, "reason": "max_steps", "global_step": step + 2}
