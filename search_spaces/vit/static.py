"""Subnets of the ViT space as timm ``VisionTransformer`` models, and the modules of its latency ops.

A subnet is built by timm itself: ``VisionTransformer`` with the subnet's embedding dimension
and depth, then in every block timm's own ``Attention`` with that layer's heads and the fixed
head width (``attn_head_dim``) and timm's ``Mlp`` with that layer's hidden width. Its state dict
and forward are timm's; a uniform subnet whose attention width equals its embedding dimension
is exactly what ``timm.create_model("vit_...", embed_dim=..., depth=..., num_heads=...,
mlp_ratio=...)`` builds.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
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
    norm = partial(nn.LayerNorm, eps=cfg.norm_eps)
    model = VisionTransformer(**timm_kwargs(cfg, arch), norm_layer=norm)
    embed = arch["embed"]
    for i, block in enumerate(model.blocks):
        block.attn = Attention(embed, num_heads=arch["heads"][i], attn_head_dim=cfg.head_dim, qkv_bias=cfg.qkv_bias)
        block.mlp = Mlp(embed, hidden_features=cfg.mlp_hidden(embed, arch["mlp"][i]), act_layer=nn.GELU)
    return model


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
