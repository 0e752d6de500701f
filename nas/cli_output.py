"""How CLI commands write their report: JSON with ``--json``, text otherwise."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    """Writes ``payload`` as JSON (``--json``) or ``text`` to the command's real stdout.

    ``nas.cli.main`` keeps the real stdout on ``args.stdout`` and sends everything else a
    ``--json`` command prints to stderr, so the JSON document is all that stdout carries.
    """
    out = getattr(args, "stdout", None) or sys.stdout
    if getattr(args, "json", False):
        json.dump(payload, out, indent=2, default=str)
        out.write("\n")
    else:
        out.write(text.rstrip("\n") + "\n")
