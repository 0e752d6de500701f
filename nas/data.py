"""Data the examples, recipes and benchmarks need, for a user who has only the repository (``nas data``).

Two kinds of entries:

- **shipped** with the package (``nas/bundled/``, gzip-compressed CSV): NAS-Bench-201's accuracy
  table, its per-device latency table and NASLib's zero-cost table — MIT-licensed, 3.7 MB in all,
  small enough to ship, so they work offline and in CI. ``nas data path NAME`` prints where.
- **downloaded** on demand into a cache (``$NAS_DATA_DIR``, else ``~/.cache/hwnas/data``): CIFAR-10
  in its authors' *binary* version (162 MB; fixed-size records, no pickle), from the authors' page.

Every file's SHA-256 is recorded here and checked after a download and before use; a download
goes to a temporary file and is renamed only once its checksum matches. Offline, the error names
the URL, the file to place by hand and the checksum it must have (``nas data fetch NAME --from FILE``
takes a copy from elsewhere). No torch import.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.core.errors import ConfigError

logger = logging.getLogger(__name__)

BUNDLED = Path(__file__).with_name("bundled")
DATA_DIR_ENV = "NAS_DATA_DIR"


class DataError(ConfigError):
    """A data file is missing, corrupt or cannot be fetched (the message says what to do)."""


@dataclass(frozen=True)
class DataEntry:
    """One file ``nas data`` knows: where it comes from, its checksum and licence."""

    name: str
    what: str
    filename: str
    sha256: str
    size: int
    licence: str
    source: str
    url: str | None = None  # downloaded entries; None: shipped in nas/bundled
    extract: tuple[str, ...] = ()  # archive members kept (downloaded archives), under the entry's folder


CIFAR10_MEMBERS = tuple(
    f"cifar-10-batches-bin/{n}.bin" for n in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
)
CATALOGUE: tuple[DataEntry, ...] = (
    DataEntry(
        "nb201-accuracy", "NAS-Bench-201 test accuracy (200 epochs) of all 15,625 cells on CIFAR-10, CIFAR-100, "
        "ImageNet16-120 (the `tabular` evaluator's accuracy_csv)", "nb201_accuracy.csv.gz",
        "dcf87e37a224fe93789c7ac35745f956a3641fca17516625e16308e0f90e912a", 426_731, "MIT",
        "NATS-Bench topology search space (Dong et al., TPAMI 2021), via a public CSV export",
    ),
    DataEntry(
        "nb201-latency", "measured latency (ms) of the 15,625 cells on 27 device settings: GPUs at batch 1/32/256, "
        "Xeon CPUs, phones, Raspberry Pi 4, Eyeriss, FPGA (the `tabular` evaluator's latency_csv)",
        "nb201_latency.csv.gz", "f4b1790e597e1178a8a10709b7282ff04b0d43a85ff3dd17b9a1b81ab3adb87b", 2_978_907,
        "MIT", "HELP (Lee et al., NeurIPS 2021); pixel3/raspi4/eyeriss/fpga columns from HW-NAS-Bench (MIT)",
    ),
    DataEntry(
        "nb201-zero-cost", "NASLib's 12 zero-cost proxy values and validation accuracy of 725 cells on three datasets "
        "(reference values for `nas proxy` checks)", "nb201_zero_cost.csv.gz",
        "9a827018faf2feba85e2dc9a5e938f98d3c958f2b62675499046ff16dd09f690", 256_730, "Apache-2.0",
        "NASLib / NAS-Bench-Suite-Zero (Krishnakumar et al., NeurIPS 2022 Datasets and Benchmarks)",
    ),
    DataEntry(
        "cifar10", "CIFAR-10, 50,000 training and 10,000 test images of 10 classes, binary version (the `cifar10` "
        "dataset of training configs and `nas proxy score --data`)", "cifar-10-binary.tar.gz",
        "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", 170_052_171,
        "free for research, cite Krizhevsky 2009", "Krizhevsky, Learning Multiple Layers of Features from Tiny Images",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        extract=CIFAR10_MEMBERS,
    ),
)  # fmt: skip


def entry(name: str) -> DataEntry:
    """The catalogue entry ``name``, or an error listing the names."""
    for e in CATALOGUE:
        if e.name == name:
            return e
    raise DataError(f"unknown data {name!r}; `nas data list` shows {', '.join(e.name for e in CATALOGUE)}")


def data_dir() -> Path:
    """The download cache: ``$NAS_DATA_DIR``, else ``~/.cache/hwnas/data``."""
    return Path(os.environ.get(DATA_DIR_ENV) or Path.home() / ".cache" / "hwnas" / "data").expanduser()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checked(path: Path, e: DataEntry, sha256: str) -> Path:
    found = sha256_of(path)
    if found != sha256:
        raise DataError(
            f"{path}: checksum {found[:16]}… is not {e.name}'s ({sha256[:16]}…); the file is damaged or another "
            f"version: delete it and run `nas data fetch {e.name}` again"
        )
    return path


def location(e: DataEntry) -> Path:
    """Where an entry is used from: the shipped file, or the entry's folder in the cache."""
    return BUNDLED / e.filename if e.url is None else data_dir() / e.name


def status(e: DataEntry) -> str:
    """``shipped``, ``cached`` or ``missing`` (cheap: no checksum)."""
    if e.url is None:
        return "shipped" if (BUNDLED / e.filename).is_file() else "missing"
    return "cached" if (location(e) / ".complete").is_file() else "missing"


def path(name: str) -> Path:
    """The file (shipped) or folder (downloaded) of ``name``, ready to use.

    Raises:
        DataError: when a downloaded entry is not in the cache (saying how to fetch it).
    """
    e = entry(name)
    if status(e) == "missing":
        how = f"`nas data fetch {name}`" if e.url else "a complete checkout (it ships in nas/bundled)"
        raise DataError(f"{name} is not here ({location(e)}); get it with {how}")
    return location(e)


def fetch(name: str, source: str | Path | None = None, *, url: str | None = None, sha256: str | None = None,
          timeout_s: float = 60.0) -> Path:  # fmt: skip
    """Makes ``name`` available and returns :func:`path`: a shipped file is checked; a downloaded one
    is fetched from ``source`` (a local copy), else ``url`` (default: the entry's), checked against
    its SHA-256 (``sha256`` overrides it, for mirrors and tests), and its members extracted.

    Raises:
        DataError: offline, a bad checksum, or a damaged archive, saying what to do instead.
    """
    e = entry(name)
    expected = sha256 or e.sha256
    if e.url is None:
        return _checked(path(name), e, expected)
    folder = location(e)
    if status(e) == "cached" and source is None:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / e.filename
    if source is not None:
        given = Path(source).expanduser()
        if not given.is_file():
            raise DataError(f"--from {given}: no such file")
        _checked(given, e, expected)
        shutil.copyfile(given, archive)
    elif not (archive.is_file() and sha256_of(archive) == expected):
        _download(url or str(e.url), archive, e, expected, timeout_s)
    _extract(archive, folder, e)
    (folder / ".complete").write_text(expected + "\n")
    logger.info("%s: ready in %s", name, folder)
    return folder


def _download(url: str, archive: Path, e: DataEntry, sha256: str, timeout_s: float) -> None:
    if not url.startswith(("https://", "http://")):
        raise DataError(f"{e.name}: {url} is not an http(s) URL")
    partial = archive.with_name(archive.name + ".part")
    logger.info("%s: downloading %s (%.0f MB)", e.name, url, e.size / 1e6)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"{e.name}: cannot download {url} ({reason}). Offline? Place the file by hand: download it elsewhere "
            f"and run `nas data fetch {e.name} --from FILE` (SHA-256 {sha256}), or put it at {archive}"
        ) from None
    _checked(partial, e, sha256)
    partial.replace(archive)


def _extract(archive: Path, folder: Path, e: DataEntry) -> None:
    """Extracts exactly the entry's members (regular files, known names: nothing else of the archive)."""
    try:
        with tarfile.open(archive) as tar:
            for member_name in e.extract:
                member = tar.getmember(member_name)
                if not member.isfile():
                    raise DataError(f"{archive}: {member_name} is not a regular file")
                target = folder / member_name
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                with source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
    except (tarfile.TarError, KeyError, EOFError, OSError) as exc:
        raise DataError(f"{archive}: not the expected archive ({type(exc).__name__}: {exc})") from None


def describe() -> list[dict[str, Any]]:
    """Every entry with its status and location (``nas data list``)."""
    return [
        {
            "name": e.name,
            "status": status(e),
            "path": str(location(e)),
            "what": e.what,
            "size_mb": round(e.size / 1e6, 1),
            "licence": e.licence,
            "source": e.source,
            "url": e.url,
            "sha256": e.sha256,
        }
        for e in CATALOGUE
    ]


__all__ = ["CATALOGUE", "DataEntry", "DataError", "data_dir", "describe", "entry", "fetch", "path", "status"]
