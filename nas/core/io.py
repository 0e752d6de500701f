"""Small file helpers every layer uses: checksums, atomic writes, and JSON read with a clear error."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Writes ``text`` to a temporary file beside ``path``, syncs it, then renames it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: str | Path, what: str, hint: str = "") -> Any:
    """The JSON document in ``path``, or ValueError naming the file and ``what`` it should be.

    The message never quotes the file's content (it may not be what the caller thinks it is).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: {what} not found" + (f"; {hint}" if hint else ""))
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not {what} ({type(exc).__name__})" + (f"; {hint}" if hint else "")) from None


__all__ = ["atomic_write_text", "read_json", "sha256_file"]
