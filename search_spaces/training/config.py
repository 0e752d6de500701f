"""Supernet training configuration (YAML), validated with errors that name the key.

Progressive shrinking is data: a list of phases, each naming the elastic
dimensions it opens (``ks``, ``e``, ``d``, ``r``) and their choices. A dimension a
phase does not open is fixed at its largest choice. The default schedule is
once-for-all's: full network, elastic kernel, elastic depth (two stages),
elastic expand (two stages), with elastic resolution throughout. A space with other
elastic dimensions (once-for-all ResNet: ``d``, ``e``, ``w``, ``r``) gets the same shape from
its own dimensions when the config names no phases: full network, then each dimension in the
space's order, opened in two stages (two largest, then all) when it has more than two choices.
"""

from __future__ import annotations

import dataclasses
import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nas.core.capabilities import SupernetSpace
from nas.core.config import ConfigError, from_dict, key, load_yaml
from nas.core.space import SpaceRef


@dataclass
class SpaceSpec(SpaceRef):
    """Which space (and configuration) to train: a :class:`~nas.core.space.SpaceRef`, ``mnist`` by default."""

    config: str | None = "mnist"


@dataclass
class DataSpec:
    """Dataset and batch settings."""

    name: str = "digits"
    root: str | None = None
    download: bool = False
    holdout_fraction: float = 0.1
    image_size: int | None = None
    batch_size: int = 128
    eval_batch_size: int = 500
    synthetic_samples: int = 512
    # streaming datasets (imagefolder-stream, webdataset)
    workers: int = 0
    holdout_size: int | None = 10000
    train_shards: str | None = None
    val_shards: str | None = None
    train_samples: int | None = None

    def validate(self, path: str) -> None:
        if self.workers < 0:
            raise ConfigError(f"{key(path, 'workers')}: must be >= 0, got {self.workers}")
        for name in ("holdout_size", "train_samples"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ConfigError(f"{key(path, name)}: must be positive or null, got {getattr(self, name)}")
        for name in ("batch_size", "eval_batch_size", "synthetic_samples"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{key(path, name)}: must be positive, got {getattr(self, name)}")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ConfigError(f"{key(path, 'holdout_fraction')}: must be within (0, 1), got {self.holdout_fraction}")


@dataclass
class PhaseSpec:
    """One progressive-shrinking phase.

    Attributes:
        name: Label (used in logs and checkpoints).
        epochs: Epochs of this phase (0 skips it).
        lr: Peak learning rate (cosine decay to 0 over the phase, after warm-up).
        open: Elastic dimensions opened and their choices: a list, or ``all``.
        subnets_per_step: Random subnets per step (gradients accumulated).
        sandwich: Add the phase's largest and smallest subnet to every step
            (BigNAS / AttentiveNAS sandwich rule); default from ``training.sandwich``.
        warmup_epochs: Linear warm-up length.
        fake_quant: Quantization-aware training: the probability that each elastic block of each
            subnet a step trains computes in fake int8 (weights per channel, activations per
            tensor, straight-through gradients; :mod:`search_spaces.fake_quant`). 0 (default): float.
    """

    name: str
    epochs: int
    lr: float
    open: dict[str, Any] = field(default_factory=dict)
    subnets_per_step: int = 1
    sandwich: bool | None = None
    warmup_epochs: float = 0.0
    fake_quant: float = 0.0

    def validate(self, path: str) -> None:
        if not 0.0 <= self.fake_quant <= 1.0:
            raise ConfigError(
                f"{key(path, 'fake_quant')}: a probability per block in [0, 1] (0.5 trains mixed int8/float "
                f"subnets, 1 all-int8), got {self.fake_quant}"
            )
        if self.epochs < 0:
            raise ConfigError(f"{key(path, 'epochs')}: must be >= 0, got {self.epochs}")
        if self.lr <= 0:
            raise ConfigError(f"{key(path, 'lr')}: must be positive, got {self.lr}")
        if self.subnets_per_step < 0:
            raise ConfigError(f"{key(path, 'subnets_per_step')}: must be >= 0, got {self.subnets_per_step}")
        if self.warmup_epochs < 0:
            raise ConfigError(f"{key(path, 'warmup_epochs')}: must be >= 0, got {self.warmup_epochs}")
        for dim, choices in self.open.items():  # dimension names are checked against the space (resolve_open)
            if not isinstance(choices, str) and not (
                isinstance(choices, list)
                and choices
                and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)
            ):
                raise ConfigError(
                    f"{key(path, 'open')}.{dim}: expected 'all', 'topN' or a list of choices, got {choices!r}"
                )


@dataclass
class TrainSpec:
    """Optimisation, distillation and bookkeeping settings.

    ``init_from``: a trained run folder (``nas train --out``) whose supernet weights start this
    run, to add phases to a supernet trained before (a quantization-aware phase, more epochs);
    its space must be this config's. With teacher distillation the starting supernet's largest
    subnet is the teacher from the first step.
    """

    seed: int = 0
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 3e-5
    label_smoothing: float = 0.1
    distillation: Literal["teacher", "inplace", "none"] = "teacher"
    teacher_phase: str | None = None
    kd_ratio: float = 1.0
    kd_temperature: float = 1.0
    sandwich: bool = False
    delayed_shrinking: bool = False
    shrink_start: float = 0.5
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    channels_last: bool = True
    grad_clip: float | None = 5.0
    bn_recal_batches: int = 10
    eval_random_subnets: int = 2
    checkpoint_every_steps: int = 0
    max_steps: int | None = None
    device: str = "auto"
    threads: int | None = None
    progress: bool = True
    init_from: str | None = None

    def validate(self, path: str) -> None:
        if self.init_from is not None and not self.init_from.strip():
            raise ConfigError(f"{key(path, 'init_from')}: a trained run folder, or null")
        checks = {
            "kd_ratio": self.kd_ratio >= 0,
            "kd_temperature": self.kd_temperature > 0,
            "weight_decay": self.weight_decay >= 0,
            "bn_recal_batches": self.bn_recal_batches > 0,
            "eval_random_subnets": self.eval_random_subnets >= 0,
            "checkpoint_every_steps": self.checkpoint_every_steps >= 0,
            "label_smoothing": 0 <= self.label_smoothing < 1,
            "shrink_start": 0 < self.shrink_start <= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"{key(path, name)}: invalid value {getattr(self, name)!r}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"{key(path, 'grad_clip')}: must be positive or null, got {self.grad_clip}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ConfigError(f"{key(path, 'max_steps')}: must be positive or null, got {self.max_steps}")
        if self.threads is not None and self.threads <= 0:
            raise ConfigError(f"{key(path, 'threads')}: must be positive or null, got {self.threads}")


def default_phases(epochs: tuple[int, ...] = (4, 2, 1, 2, 1, 2), lr: float = 0.05) -> list[PhaseSpec]:
    """Once-for-all's progressive-shrinking order (epochs per phase as given)."""
    full, kernel, depth1, depth2, expand1, expand2 = epochs
    return [
        PhaseSpec("full", full, lr, {"r": "all"}),
        PhaseSpec("kernel", kernel, lr * 0.6, {"ks": "all", "r": "all"}),
        PhaseSpec("depth_1", depth1, lr * 0.16, {"ks": "all", "d": "top2", "r": "all"}, subnets_per_step=2),
        PhaseSpec("depth_2", depth2, lr * 0.16, {"ks": "all", "d": "all", "r": "all"}, subnets_per_step=2),
        PhaseSpec("expand_1", expand1, lr * 0.16, {"ks": "all", "d": "all", "e": "top2", "r": "all"}, 2),
        PhaseSpec("expand_2", expand2, lr * 0.16, {"ks": "all", "d": "all", "e": "all", "r": "all"}, 2),
    ]


def space_phases(space: SupernetSpace, epochs: int = 2, lr: float = 0.05) -> list[PhaseSpec]:
    """A progressive-shrinking schedule from a space's own elastic dimensions (resolution open
    throughout): once-for-all's MobileNetV3 schedule for a space with ``ks``, ``d`` and ``e``;
    otherwise the full network, then each dimension in order, in two stages when it has more
    than two choices (``epochs`` per phase)."""
    dims = [d for d in space.elastic_choices() if d != "r"]
    resolution = {"r": "all"} if "r" in space.elastic_choices() else {}
    if dims == ["ks", "e", "d"] or sorted(dims) == ["d", "e", "ks"]:
        return default_phases()
    phases = [PhaseSpec("full", epochs * 2, lr, dict(resolution))]
    opened: dict[str, Any] = dict(resolution)
    for dim in dims:
        stages = ["top2", "all"] if len(space.elastic_choices()[dim]) > 2 else ["all"]
        for i, value in enumerate(stages):
            opened = {**opened, dim: value}
            name = dim if len(stages) == 1 else f"{dim}_{i + 1}"
            phases.append(PhaseSpec(name, epochs, lr * 0.16, dict(opened), subnets_per_step=2))
    return phases


@dataclass
class TrainConfig:
    """A whole training run."""

    space: SpaceSpec = field(default_factory=SpaceSpec)
    data: DataSpec = field(default_factory=DataSpec)
    training: TrainSpec = field(default_factory=TrainSpec)
    phases: list[PhaseSpec] = field(default_factory=default_phases)

    def validate(self, path: str) -> None:
        if not self.phases:
            raise ConfigError("phases: at least one phase is needed")
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ConfigError(f"phases: phase names must be unique, got {names}")
        if self.training.teacher_phase is not None and self.training.teacher_phase not in names:
            raise ConfigError(f"training.teacher_phase: {self.training.teacher_phase!r} is not one of {names}")
        space = self.space.build()
        for i, phase in enumerate(self.phases):
            resolve_open(phase.open, space, f"phases[{i}].open")


def resolve_open(open_dims: dict[str, Any], space: Any, path: str = "open") -> dict[str, tuple[int, ...]]:
    """Choices per dimension for a phase (unopened dimensions: the largest choice only).

    ``all`` opens every choice, ``topN`` the N largest; a list must be a subset of
    the space's choices.

    Raises:
        ConfigError: naming the key for a choice outside the space.
    """
    if not isinstance(space, SupernetSpace):
        raise ConfigError(f"space: {space.space_id} has no supernet to train (SupernetSpace)")
    dimensions = space.elastic_choices()
    unknown = [d for d in open_dims if d not in dimensions]
    if unknown:
        raise ConfigError(
            f"{path}.{unknown[0]}: unknown elastic dimension of {space.space_id}; use {', '.join(dimensions)}"
        )
    out: dict[str, tuple[int, ...]] = {}
    for dim, allowed in dimensions.items():
        value = open_dims.get(dim)
        if value is None:
            out[dim] = (allowed[-1],)
        elif value == "all":
            out[dim] = allowed
        elif isinstance(value, str) and value.startswith("top") and value[3:].isdigit() and int(value[3:]) > 0:
            out[dim] = allowed[-int(value[3:]) :]
        elif isinstance(value, list):
            bad = [c for c in value if c not in allowed]
            if bad:
                raise ConfigError(
                    f"{path}.{dim}: {bad} {'is' if len(bad) == 1 else 'are'} not choices of the space "
                    f"{space.space_id} (choices {list(allowed)})"
                )
            out[dim] = tuple(sorted(set(value)))
        else:
            raise ConfigError(f"{path}.{dim}: expected 'all', 'topN' or a list of choices, got {value!r}")
    return out


def load_train_config(source: str | Path | dict[str, Any]) -> TrainConfig:
    """Loads and validates a training config from a YAML path or a dict."""
    data = source if isinstance(source, dict) else load_yaml(source)
    if isinstance(data, dict) and "phases" not in data:  # no schedule given: the space's own
        space = from_dict(SpaceSpec, data.get("space") or {}, "space").build()
        if isinstance(space, SupernetSpace):
            data = {**data, "phases": [dataclasses.asdict(p) for p in space_phases(space)]}
    config = from_dict(TrainConfig, data)
    if not isinstance(source, dict):
        _resolve_data_paths(config.data, Path(source).resolve().parent)
    return config


def _resolve_data_paths(data: DataSpec, base: Path) -> None:
    """A config file's relative data paths resolve against its folder, as a job spec's do (then, for
    older configs, the working directory); they become absolute, so a run folder records where its
    data is and Ray workers on other directories find it. ``pipe:`` commands and URLs stay as given."""
    for name in ("root", "train_shards", "val_shards"):
        value = getattr(data, name)
        if not isinstance(value, str) or value.startswith("pipe:") or "://" in value or Path(value).is_absolute():
            continue
        beside = base / value
        if beside.exists() or glob.glob(str(beside)) or not Path(value).exists():
            setattr(data, name, str(beside))
        else:
            setattr(data, name, str(Path(value).resolve()))
