"""What every CLI command shares: its report (JSON with ``--json``, text otherwise), its one-line
errors and its ``--option KEY=VALUE`` parsing."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import unicodedata
from collections.abc import Sequence
from typing import Any

_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def printable(text: str) -> str:
    """``text`` with control and formatting characters (C0 but newlines and tabs, DEL, C1 such as
    the terminal's CSI, bidi overrides) shown as escapes: names from a store are shown, never
    obeyed by the terminal."""
    if all(c in "\n\t" or unicodedata.category(c) not in _HIDDEN for c in text):
        return text
    return "".join(c if c in "\n\t" or unicodedata.category(c) not in _HIDDEN else ascii(c)[1:-1] for c in text)


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
        out.write(printable(text.rstrip("\n")) + "\n")


class CLIError(Exception):
    """An error to report as one line (with a hint) and exit status 2."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (``--option``) as a mapping; a value that is JSON is parsed, and so is a
    flow list of plain words as YAML writes it (``[int8,fp32]``)."""
    import yaml

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"--option {pair!r} is not KEY=VALUE", "for example --option num_classes=100")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
            if raw.startswith("[") and raw.endswith("]"):
                with contextlib.suppress(yaml.YAMLError):
                    options[key] = yaml.safe_load(raw)
    return options
