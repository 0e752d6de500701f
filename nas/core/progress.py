"""Progress bars that suit where they are written: redrawn every second on a terminal, one line
every 30 seconds into a log file (a redirected ``stderr``), instead of thousands of ``\\r`` updates."""

from __future__ import annotations

import sys
from typing import Any

TERMINAL_INTERVAL_S = 1.0
LOG_INTERVAL_S = 30.0


def redraw_interval() -> float:
    """Seconds between two updates of a bar on ``stderr``."""
    return TERMINAL_INTERVAL_S if sys.stderr.isatty() else LOG_INTERVAL_S


def bar(**kwargs: Any) -> Any:
    """A ``tqdm`` bar on ``stderr`` with :func:`redraw_interval` (other arguments as tqdm's)."""
    from tqdm import tqdm

    kwargs.setdefault("mininterval", redraw_interval())
    return tqdm(**kwargs)
