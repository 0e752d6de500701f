"""A generated CIFAR-10 binary archive, for tests of the real download path without the internet."""

from __future__ import annotations

import io
import tarfile

import numpy as np


def cifar_binary_archive(records_per_batch: int) -> bytes:
    """A CIFAR-10 binary archive in the real layout: label byte + 3,072 pixel bytes per record."""
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"):
            labels = np.arange(records_per_batch, dtype=np.uint8) % 10
            pixels = rng.integers(0, 256, size=(records_per_batch, 3072), dtype=np.uint8)
            data = np.concatenate([labels[:, None], pixels], axis=1).tobytes()
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        evil = tarfile.TarInfo("../outside.txt")  # never extracted: only the known members are
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    return buf.getvalue()
