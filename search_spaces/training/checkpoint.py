"""Checkpoints without pickles: tensors in safetensors, everything else in JSON.

A training checkpoint folder holds ``weights-<step>.safetensors`` and
``state.json``; the JSON names its weights file and checksum and is replaced
atomically (write to a temporary file, ``os.replace``) after the weights are on
disk, so a run killed at any moment leaves the previous complete checkpoint.

A finished supernet is ``supernet.safetensors`` + ``supernet.json`` (space
config, training record, versions); :func:`load_supernet` rebuilds it.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from nas.core import registry
from nas.core.capabilities import Supernet, SupernetSpace
from nas.core.io import atomic_write_text, read_json, sha256_file
from nas.core.space import create_space, list_spaces

STATE_FILE = "state.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete or does not match the run."""


def save_tensors(path: Path, tensors: Mapping[str, torch.Tensor], metadata: dict[str, str] | None = None) -> str:
    """Writes tensors atomically; returns the file's SHA-256."""
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}, str(tmp), metadata)
    os.replace(tmp, path)
    return sha256_file(path)


def versions() -> dict[str, str]:
    """Library versions recorded with checkpoints and results."""
    import numpy

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}
    try:
        import triton

        out["triton"] = triton.__version__
    except ImportError:  # pragma: no cover - triton is Linux x86_64 only
        pass
    return out


def save_checkpoint(folder: Path, tensors: Mapping[str, torch.Tensor], state: dict[str, Any]) -> Path:
    """Writes a training checkpoint (weights first, then the state that points to them)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"weights-{state['global_step']:09d}.safetensors"
    checksum = save_tensors(folder / name, tensors)
    state = {**state, "weights_file": name, "weights_sha256": checksum}
    atomic_write_text(folder / STATE_FILE, json.dumps(state, indent=1))
    for old in folder.glob("weights-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return folder / STATE_FILE


def load_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Reads a training checkpoint and verifies its checksum."""
    state_path = folder / STATE_FILE
    if not state_path.is_file():
        raise CheckpointError(f"{folder}: no {STATE_FILE}; nothing to resume (run without --resume to start)")
    try:
        state = json.loads(state_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{state_path}: corrupt checkpoint state ({exc})") from exc
    weights = folder / state.get("weights_file", "")
    if not weights.is_file():
        raise CheckpointError(f"{folder}: weights file {state.get('weights_file')!r} is missing")
    if sha256_file(weights) != state.get("weights_sha256"):
        raise CheckpointError(f"{weights}: checksum mismatch; the checkpoint is corrupt")
    return load_file(str(weights)), state


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Splits an optimizer state into tensors and JSON-able metadata."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in sd["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, entries in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entries)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def prefixed(prefix: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v for k, v in tensors.items()}


def unprefixed(prefix: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def save_supernet(folder: Path, supernet: Supernet, record: dict[str, Any]) -> Path:
    """Writes ``supernet.safetensors`` and ``supernet.json`` (space config + record)."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "supernet.safetensors"
    checksum = save_tensors(weights, supernet.state_dict())
    space: SupernetSpace = supernet.space
    meta = {
        "space": space.name,
        "space_id": space.space_id,
        "space_config": space.config_dict(),
        "weights_file": weights.name,
        "weights_sha256": checksum,
        "versions": versions(),
        **record,
    }
    atomic_write_text(folder / "supernet.json", json.dumps(meta, indent=1))
    return folder / "supernet.json"


def read_supernet_meta(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The ``supernet.json`` of a run folder (or of the file given) and its content, without weights.

    Raises:
        CheckpointError: when it is missing or not a supernet description (its content is never quoted).
    """
    path = Path(path)
    meta_path = path / "supernet.json" if path.is_dir() else path
    if meta_path.suffix == ".safetensors":
        meta_path = meta_path.with_name("supernet.json")
    if not meta_path.is_file():
        raise CheckpointError(f"{path}: no supernet.json found (expected the output folder of `nas train`)")
    try:
        meta = read_json(meta_path, "a supernet description")
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    if not isinstance(meta, dict) or not {"space", "space_config", "weights_file", "weights_sha256"} <= set(meta):
        raise CheckpointError(f"{meta_path}: not a supernet description (expected the output folder of `nas train`)")
    return meta_path, meta


def supernet_space(meta_path: Path, meta: Mapping[str, Any]) -> SupernetSpace:
    """The space a supernet description names: a registered space with the supernet capability."""
    name = meta["space"]
    if not isinstance(name, str) or not registry.has("space", name):
        raise CheckpointError(f"{meta_path}: its space is not a registered space ({', '.join(list_spaces())})")
    try:
        space = create_space(name, allow_code=False, config=meta["space_config"])
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{meta_path}: its space_config is not valid ({type(exc).__name__})") from None
    if not isinstance(space, SupernetSpace):
        raise CheckpointError(f"{meta_path}: space {name} has no supernet")
    return space


def supernet_space_id(path: str | Path) -> str:
    """The ``space_id`` of the supernet a run folder holds (reads only its description)."""
    meta_path, meta = read_supernet_meta(path)
    return supernet_space(meta_path, meta).space_id


def load_supernet(path: str | Path) -> tuple[Supernet, dict[str, Any]]:
    """Rebuilds a trained supernet from its folder (or its ``supernet.json``).

    Raises:
        CheckpointError: when files are missing, corrupt or of an unknown space.
    """
    meta_path, meta = read_supernet_meta(path)
    weights = meta_path.with_name(meta["weights_file"])
    if not weights.is_file() or sha256_file(weights) != meta["weights_sha256"]:
        raise CheckpointError(f"{weights}: missing or checksum mismatch")
    space = supernet_space(meta_path, meta)
    supernet = space.build_supernet(seed=None)
    supernet.load_state_dict(load_file(str(weights)))
    return supernet, meta
