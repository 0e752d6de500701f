"""A tiny once-for-all training config (seconds on 2 CPU cores) for tests of training, export and collection."""

from __future__ import annotations

import copy
from typing import Any

TINY_SPACE = {
    "name": "ofa_mbv3",
    "config": "mnist",
    "options": {
        "stage_widths": [8, 16],
        "stage_strides": [2, 2],
        "stage_acts": ["relu", "h_swish"],
        "stage_se": [False, True],
        "final_expand_width": 32,
        "feature_mix_width": 32,
        "ks_choices": [3, 5],
        "expand_choices": [2, 3],
        "depth_choices": [1, 2],
        "resolutions": [12, 16],
        "dropout": 0.1,
    },
}

TINY_VIT_SPACE = {
    "name": "vit",
    "config": "cifar",
    "options": {
        "img_size": 16,
        "patch_size": 4,
        "in_channels": 1,
        "embed_choices": [16, 24],
        "depth_choices": [1, 2],
        "head_choices": [1, 2],
        "mlp_choices": [1.0, 2.0],
        "head_dim": 8,
    },
}

TINY: dict[str, Any] = {
    "space": TINY_SPACE,
    "data": {"name": "synthetic", "batch_size": 32, "synthetic_samples": 384, "eval_batch_size": 128},
    "training": {"seed": 0, "bn_recal_batches": 2, "eval_random_subnets": 1, "progress": False, "threads": 2},
    "phases": [
        {"name": "full", "epochs": 2, "lr": 0.05, "open": {"r": "all"}},
        {"name": "kernel", "epochs": 1, "lr": 0.02, "open": {"ks": "all", "r": "all"}},
        {
            "name": "depth",
            "epochs": 1,
            "lr": 0.02,
            "open": {"ks": "all", "d": "all", "r": "all"},
            "subnets_per_step": 2,
        },
        {
            "name": "expand",
            "epochs": 1,
            "lr": 0.02,
            "open": {"ks": "all", "d": "all", "e": "all", "r": "all"},
            "subnets_per_step": 1,
            "sandwich": True,
        },
    ],
}


def _updated(cfg: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` (a deep copy) with top-level sections updated: a dict merges into a dict section."""
    cfg = copy.deepcopy(cfg)
    for section, values in changes.items():
        if isinstance(values, dict) and isinstance(cfg.get(section), dict):
            cfg[section].update(values)
        else:
            cfg[section] = values
    return cfg


def tiny(**changes: Any) -> dict[str, Any]:
    """A deep copy of TINY with top-level sections updated (``training={"max_steps": 5}``)."""
    return _updated(TINY, changes)


def tiny_vit(**changes: Any) -> dict[str, Any]:
    """TINY on a tiny ViT space: AdamW, the full network, then every dimension open with sandwich sampling."""
    every = {"embed": "all", "depth": "all", "heads": "all", "mlp": "all"}
    base = tiny(
        space=TINY_VIT_SPACE,
        training={"optimizer": "adamw"},
        phases=[
            {"name": "full", "epochs": 1, "lr": 0.002},
            {"name": "all", "epochs": 2, "lr": 0.001, "open": every, "subnets_per_step": 2, "sandwich": True},
        ],
    )
    return _updated(base, changes)
