"""Seeds derived from a base seed and a path of integers (phase, epoch, step, ...).

Deriving every random draw from such a path, instead of advancing one generator,
is what lets an interrupted run resume exactly where it stopped.
"""

from __future__ import annotations

import numpy as np


def derive_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed from ``seed`` and ``parts`` (NumPy's SeedSequence mixing)."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1, dtype=np.uint64)[0] >> 1)
