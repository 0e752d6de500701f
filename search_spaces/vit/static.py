"""Subnets of the ViT space as timm ``VisionTransformer`` models, and the modules of its latency ops.

A subnet is built by timm itself: ``VisionTransformer`` with the subnet's embedding dimension
and depth, then in every block timm's own ``Attention`` with that layer's heads and the fixed
head width (``attn_head_dim``) and timm's ``Mlp`` with that layer's hidden width. Its state dict
and forward are timm's; a uniform subnet whose attention width equals its embedding dimension
is exactly what ``timm.create_model("vit_...", embed_dim=..., depth=..., num_heads=...,
mlp_ratio=...)`` builds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import torch
from timm.layers import Attention, Mlp
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from nas.core.arch import Arch
from search_spaces.vit.config import ViTConfig


def timm_kwargs(cfg: ViTConfig, arch: Arch | Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of timm's ``VisionTransformer`` for ``arch`` (heads and MLP ratio of
    its first layer; :func:`timm_vit` then gives every layer its own)."""
    return {
        "img_size": cfg.img_size,
        "patch_size": cfg.patch_size,
        "in_chans": cfg.in_channels,
        "num_classes": cfg.num_classes,
        "embed_dim": arch["embed"],
        "depth": arch["depth"],
        "num_heads": arch["heads"][0] if arch["embed"] % arch["heads"][0] == 0 else 1,  # timm asks E % heads == 0
        "mlp_ratio": float(arch["mlp"][0]),
        "qkv_bias": cfg.qkv_bias,
        "drop_rate": cfg.dropout,
        "global_pool": "token",
        "class_token": True,
    }


def timm_vit(cfg: ViTConfig, arch: Arch | Mapping[str, Any]) -> VisionTransformer:
    """A freshly initialised timm ``VisionTransformer`` of ``arch``: per layer its own heads
    (each ``cfg.head_dim`` wide) and MLP hidden width."""
    heads, hidden = _layer_widths(cfg, arch)
    return _timm_model(timm_kwargs(cfg, arch), cfg.norm_eps, heads, cfg.head_dim, hidden)


def _layer_widths(cfg: ViTConfig, arch: Arch | Mapping[str, Any]) -> tuple[list[int], list[int]]:
    """The heads and the MLP hidden width of each layer ``arch`` runs."""
    depth = arch["depth"]
    return list(arch["heads"][:depth]), [cfg.mlp_hidden(arch["embed"], r) for r in arch["mlp"][:depth]]


def _timm_model(
    args: Mapping[str, Any], norm_eps: float, heads: list[int], head_dim: int, hidden: list[int]
) -> VisionTransformer:
    """timm's ``VisionTransformer`` of ``args``, then in each block timm's ``Attention`` with that
    layer's heads of ``head_dim`` and timm's ``Mlp`` with that layer's hidden width."""
    model = VisionTransformer(**args, norm_layer=partial(nn.LayerNorm, eps=norm_eps))
    embed = args["embed_dim"]
    for block, h, width in zip(model.blocks, heads, hidden, strict=True):
        block.attn = Attention(embed, num_heads=h, attn_head_dim=head_dim, qkv_bias=args["qkv_bias"])
        block.mlp = Mlp(embed, hidden_features=width, act_layer=nn.GELU)
    return model


# timm's registered ViT whose factory the exported config names; its model_args set every size
TIMM_ARCHITECTURE = "vit_tiny_patch16_224"


def timm_native(cfg: ViTConfig, arch: Arch | Mapping[str, Any]) -> bool:
    """Whether timm's own ``VisionTransformer`` arguments build ``arch``: every layer it runs with
    the same heads and MLP ratio, attention as wide as the embedding, timm's layer-norm epsilon."""
    depth = arch["depth"]
    heads, mlp = set(arch["heads"][:depth]), set(arch["mlp"][:depth])
    return len(heads) == 1 and len(mlp) == 1 and heads.pop() * cfg.head_dim == arch["embed"] and cfg.norm_eps == 1e-6


def timm_folder_config(
    cfg: ViTConfig, arch: Arch | Mapping[str, Any], mean: tuple[float, ...], std: tuple[float, ...]
) -> dict[str, Any]:
    """The ``config.json`` of a timm model folder (``timm.create_model("local-dir:FOLDER",
    pretrained=True)`` reads it with ``model.safetensors`` beside it). Its ``model_args`` build the
    subnet when :func:`timm_native` holds; ``hwnas`` holds the per-layer heads and hidden widths
    that :func:`load_timm_folder` applies otherwise."""
    heads, hidden = _layer_widths(cfg, arch)
    return {
        "architecture": TIMM_ARCHITECTURE,
        "num_classes": cfg.num_classes,
        "num_features": arch["embed"],
        "model_args": timm_kwargs(cfg, arch),
        "pretrained_cfg": {
            "input_size": [cfg.in_channels, cfg.img_size, cfg.img_size],
            "fixed_input_size": True,
            "interpolation": "bilinear",
            "crop_pct": 1.0,
            "mean": list(mean),
            "std": list(std),
            "num_classes": cfg.num_classes,
            "classifier": "head",
            "first_conv": "patch_embed.proj",
        },
        "hwnas": {
            "timm_native": timm_native(cfg, arch),
            "heads": heads,
            "head_dim": cfg.head_dim,
            "mlp_hidden": hidden,
            "norm_eps": cfg.norm_eps,
        },
    }


def load_timm_folder(folder: str | Path) -> VisionTransformer:
    """A timm ``VisionTransformer`` from a folder written by ``nas export --format timm`` (any
    subnet; a native one also loads with ``timm.create_model("local-dir:FOLDER", pretrained=True)``)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    args, extra = config["model_args"], config["hwnas"]
    model = _timm_model(args, extra["norm_eps"], extra["heads"], extra["head_dim"], extra["mlp_hidden"])
    model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
    return model.eval()


# ------------------------------------------------------------------ latency ops (one layer each)
class PatchEmbedOp(nn.Module):
    """Patches to tokens: strided convolution, flatten, class token, position embeddings (timm's order)."""

    def __init__(self, layer: Mapping[str, Any]) -> None:
        super().__init__()
        embed, patch = layer["embed"], layer["patch"]
        self.proj = nn.Conv2d(layer["in_ch"], embed, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed))
        self.pos_embed = nn.Parameter(torch.randn(1, layer["tokens"], embed) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return x + self.pos_embed


class AttentionOp(nn.Module):
    """One block's attention half: layer norm, timm's ``Attention``, residual."""

    def __init__(self, layer: Mapping[str, Any]) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(layer["embed"], eps=layer["eps"])
        self.attn = Attention(
            layer["embed"], num_heads=layer["heads"], attn_head_dim=layer["head_dim"], qkv_bias=layer["qkv_bias"]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attn(self.norm(x))


class MlpOp(nn.Module):
    """One block's MLP half: layer norm, timm's ``Mlp`` (GELU), residual."""

    def __init__(self, layer: Mapping[str, Any]) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(layer["embed"], eps=layer["eps"])
        self.mlp = Mlp(layer["embed"], hidden_features=layer["hidden"], act_layer=nn.GELU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(x))


class NormPoolOp(nn.Module):
    """The final layer norm over every token, then the class token (timm's ``global_pool="token"``)."""

    def __init__(self, layer: Mapping[str, Any]) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(layer["embed"], eps=layer["eps"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)[:, 0]
