"""Published supernets (once-for-all's checkpoints) as run folders, and back.

``import_supernet(NAME | FILE, out)`` reads a checkpoint in the reference format (a dict whose
``state_dict`` maps the reference module names to tensors) with ``torch.load(weights_only=True)``
- never unpickling code - maps it onto our supernet and writes the same run folder ``nas train``
writes (``supernet.json`` + safetensors), which ``nas eval``, ``nas search`` (supernet
evaluator), ``nas export`` and ``nas predictor collect`` take. ``export_reference(run, FILE)``
writes the reference format back, so the reference tooling keeps working.

By name, the file is downloaded from the URL of the reference model zoo into a cache folder
(``$HWNAS_CACHE`` or ``~/.cache/hwnas``, ``ofa_nets/NAME``); its SHA-256 is recorded beside it
on first download and checked on every later use.
"""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nas.core.capabilities import PublishedSpace, Supernet, SupernetSpace
from nas.core.io import sha256_file
from nas.core.space import create_space, list_spaces

logger = logging.getLogger(__name__)

CACHE_ENV = "HWNAS_CACHE"


class PublishedError(ValueError):
    """A published checkpoint cannot be found, fetched, verified or mapped."""


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "hwnas") / "ofa_nets"


def published_names() -> dict[str, tuple[str, str, Mapping[str, Any]]]:
    """Every published supernet a registered space knows: name -> (space name, URL, space options)."""
    out: dict[str, tuple[str, str, Mapping[str, Any]]] = {}
    for space_name in list_spaces():
        try:
            space = create_space(space_name)
        except (TypeError, ValueError):
            continue
        if isinstance(space, PublishedSpace):
            for name, (url, options) in space.published_supernets().items():
                out[name] = (space_name, url, options)
    return out


def fetch(name: str, url: str, folder: Path | None = None) -> Path:
    """The cached file of ``name``, downloading it from ``url`` the first time (checksum recorded, then checked)."""
    folder = folder or cache_dir()
    path, digest_file = folder / name, folder / f"{name}.sha256"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{name}.part"
        logger.info("downloading %s from %s", name, url)
        try:
            with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            partial.unlink(missing_ok=True)
            raise PublishedError(
                f"{name}: cannot download {url} ({type(exc).__name__}: {exc}); without network access, download it "
                f"elsewhere and pass the file instead: nas supernet import FILE --option width_mult=..."
            ) from None
        partial.replace(path)
        digest_file.write_text(sha256_file(path) + "\n")
        return path
    digest = sha256_file(path)
    if digest_file.is_file() and digest_file.read_text().strip() != digest:
        raise PublishedError(
            f"{path}: checksum differs from the one recorded at download ({digest_file}); delete both to download again"
        )
    return path


def read_reference_state(path: str | Path) -> dict[str, Any]:
    """The reference checkpoint's tensors (``state_dict`` of the saved dict, or the dict itself), no pickled code."""
    import torch

    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PublishedError(
            f"{path}: not a checkpoint torch.load(weights_only=True) can read ({type(exc).__name__})"
        ) from None
    state = data.get("state_dict", data) if isinstance(data, Mapping) else None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PublishedError(f"{path}: expected a dict of tensors, or a dict whose 'state_dict' is one")
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}


def map_reference_state(supernet: Supernet, state: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The reference state dict under our parameter names, checked against ``supernet``'s names and shapes."""
    space = supernet.space
    if not isinstance(space, PublishedSpace):
        raise PublishedError(f"space {space.space_id} cannot read reference checkpoints")
    ours = supernet.state_dict()
    mapped: dict[str, Any] = {}
    unknown = []
    for key, value in state.items():
        try:
            mapped[space.parameter_from_reference(key)] = value
        except KeyError:
            unknown.append(key)
    missing = sorted(set(ours) - set(mapped))
    unexpected = sorted(unknown + [k for k in mapped if k not in ours])
    wrong = [f"{k} {tuple(mapped[k].shape)} (expected {tuple(ours[k].shape)})" for k in ours
             if k in mapped and tuple(mapped[k].shape) != tuple(ours[k].shape)]  # fmt: skip
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} not of this supernet (first: {', '.join(unexpected[:3])})")
        if wrong:
            parts.append(f"{len(wrong)} of another shape (first: {'; '.join(wrong[:3])})")
        raise PublishedError(
            f"{source}: does not fit the supernet of space {supernet.space.space_id}: " + "; ".join(parts)
            + " - is it a checkpoint of this space and width? (--config / --option width_mult=...)"
        )  # fmt: skip
    return mapped


CHECKPOINT_SUFFIXES = (".pth.tar", ".pth", ".pt", ".tar", ".ckpt", ".bin")


def zoo_name(file_name: str) -> str | None:
    """The published supernet a checkpoint file is named after: the zoo's bare name, or that name
    with a checkpoint suffix (``ofa_resnet50.pth``); ``None`` for any other name."""
    known = published_names()
    if file_name in known:
        return file_name
    for suffix in CHECKPOINT_SUFFIXES:
        if file_name.endswith(suffix) and file_name[: -len(suffix)] in known:
            return file_name[: -len(suffix)]
    return None


def import_supernet(
    source: str,
    out: str | Path,
    *,
    space_name: str | None = None,
    space_options: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    download_folder: Path | None = None,
) -> Path:
    """Writes a run folder for a published supernet (by name) or a reference checkpoint file.

    Args:
        source: A published name (see :func:`published_names`) or the path of a checkpoint file.
        out: The run folder to write.
        space_name, space_options: The space of a checkpoint file (by name, or for a file named as a
            published supernet: from the zoo entry; options given here override the entry's).
        data: The ``data`` section evaluation uses (``nas eval``, the supernet evaluator), as in a
            training config; default: ImageNet-sized synthetic images (replace with real data).
        download_folder: Where downloads are cached (default: :func:`cache_dir`).

    Returns:
        The run folder's ``supernet.json``.
    """
    from search_spaces.training.checkpoint import save_supernet

    known = published_names()
    if source in known:
        space_name, url, zoo_options = known[source]
        options = {**zoo_options, **(space_options or {})}
        path = fetch(source, url, download_folder)
    elif Path(source).is_file():
        path = Path(source)
        # a file named as a published supernet (downloaded by hand) gets that supernet's space
        zoo_space, _, zoo_options = known.get(zoo_name(path.name) or "", (None, "", {"config": "imagenet"}))
        if space_name is None or space_name == zoo_space:
            options = {**zoo_options, **(space_options or {})}
        else:
            options = dict(space_options or {})
        space_name = space_name or zoo_space or "ofa_mbv3"
    else:
        raise PublishedError(
            f"{source}: neither a file nor a published supernet; published: {', '.join(sorted(known)) or 'none'}"
        )
    space = create_space(space_name, allow_code=False, **options)
    if not isinstance(space, SupernetSpace):
        raise PublishedError(f"space {space.space_id} has no supernet")
    supernet = space.build_supernet(seed=None)
    supernet.load_state_dict(map_reference_state(supernet, read_reference_state(path), str(path)))
    record = {
        "source": {"name": source if source in known else None, "file": str(path), "sha256": sha256_file(path)},
        "data": dict(data or {"name": "synthetic", "synthetic_samples": 128}),
    }
    if data is None:
        logger.warning("no data given: evaluation uses synthetic images; give real data (e.g. ImageNet) for accuracy")
    return save_supernet(Path(out), supernet, record)


def export_reference(run: str | Path, file: str | Path) -> Path:
    """Writes a run folder's supernet in the reference format (``{"state_dict": ...}`` under reference names)."""
    import torch

    from search_spaces.training.checkpoint import load_supernet

    supernet, _ = load_supernet(run)
    space = supernet.space
    if not isinstance(space, PublishedSpace):
        raise PublishedError(f"space {space.space_id} has no reference format")
    state = {space.parameter_to_reference(k): v.detach().cpu() for k, v in supernet.state_dict().items()}
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state}, str(file))
    return file


__all__ = [
    "CACHE_ENV",
    "PublishedError",
    "cache_dir",
    "export_reference",
    "fetch",
    "import_supernet",
    "map_reference_state",
    "published_names",
    "read_reference_state",
]
