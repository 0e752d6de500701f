"""Small generated image trees for tests of the streaming loaders and the ImageNet walkthrough."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# one colour per class, so that a test can check that labels belong to their images
COLOURS: tuple[tuple[int, int, int], ...] = ((220, 30, 30), (30, 200, 40), (40, 60, 230))


def jpeg(colour: Sequence[int], seed: int, size: tuple[int, int]) -> bytes:
    """A noisy single-colour JPEG of ``size`` (width, height)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.integers(-20, 20, (size[1], size[0], 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def write_image_tree(
    root: Path,
    per_class: int = 12,
    val_per_class: int = 4,
    base_size: int = 40,
    colours: Sequence[Sequence[int]] = COLOURS,
) -> Path:
    """ImageNet's layout: ``root/train/classN/*.JPEG`` and ``root/val/classN/*.JPEG``, images of
    different sizes (about ``base_size`` pixels), one class per colour of ``colours``."""
    for split, count in (("train", per_class), ("val", val_per_class)):
        for label, colour in enumerate(colours):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                size = (base_size + 3 * i, base_size - 4 + 2 * (i % 4))
                (folder / f"img{i:03d}.JPEG").write_bytes(
                    jpeg(colour, 1000 * label + i + 7919 * (split == "val"), size)
                )
    return root
