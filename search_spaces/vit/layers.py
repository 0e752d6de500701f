"""The layer kinds of the ViT space's static configs: what each costs and the module that
computes it (registered as ``layer`` ops; ``linear`` is the shared classifier kind).

Counting convention (as fvcore and torch's flop counter count transformers, in
multiply-accumulates): every linear projection and the patch convolution cost
``tokens x in x out``; attention adds its two matrix products per head, ``tokens^2 x head_dim``
each; layer norms, softmax, GELU, residual additions and the position-embedding addition are
free. Parameters: weights, biases, layer-norm affine parameters, the class token and the
position embeddings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _tokens(layer: Mapping[str, Any]) -> tuple[int, int]:
    return (layer["tokens"], layer["embed"])


class PatchEmbedLayer:
    """``vit_patch_embed``: patch convolution, class token and position embeddings."""

    @staticmethod
    def cost(layer: Mapping[str, Any]) -> tuple[int, int]:
        embed, patch, in_ch = layer["embed"], layer["patch"], layer["in_ch"]
        patches = layer["tokens"] - 1
        macs = patches * embed * in_ch * patch * patch
        params = embed * in_ch * patch * patch + embed + embed + layer["tokens"] * embed
        return macs, params

    @staticmethod
    def module(layer: Mapping[str, Any]) -> tuple[Any, tuple[int, ...]]:
        from search_spaces.vit.static import PatchEmbedOp

        return PatchEmbedOp(layer), (layer["in_ch"], layer["in_hw"], layer["in_hw"])


class AttentionLayer:
    """``vit_attention``: layer norm, query/key/value projection, attention per head, output projection."""

    @staticmethod
    def cost(layer: Mapping[str, Any]) -> tuple[int, int]:
        embed, tokens = layer["embed"], layer["tokens"]
        width = layer["heads"] * layer["head_dim"]
        macs = tokens * embed * 3 * width + 2 * tokens * tokens * width + tokens * width * embed
        bias = 3 * width if layer["qkv_bias"] else 0
        params = 2 * embed + embed * 3 * width + bias + width * embed + embed
        return macs, params

    @staticmethod
    def module(layer: Mapping[str, Any]) -> tuple[Any, tuple[int, ...]]:
        from search_spaces.vit.static import AttentionOp

        return AttentionOp(layer), _tokens(layer)


class MlpLayer:
    """``vit_mlp``: layer norm, two linear layers with GELU between."""

    @staticmethod
    def cost(layer: Mapping[str, Any]) -> tuple[int, int]:
        embed, hidden, tokens = layer["embed"], layer["hidden"], layer["tokens"]
        macs = 2 * tokens * embed * hidden
        params = 2 * embed + embed * hidden + hidden + hidden * embed + embed
        return macs, params

    @staticmethod
    def module(layer: Mapping[str, Any]) -> tuple[Any, tuple[int, ...]]:
        from search_spaces.vit.static import MlpOp

        return MlpOp(layer), _tokens(layer)


class NormPoolLayer:
    """``vit_norm_pool``: the final layer norm, then the class token."""

    @staticmethod
    def cost(layer: Mapping[str, Any]) -> tuple[int, int]:
        return 0, 2 * layer["embed"]

    @staticmethod
    def module(layer: Mapping[str, Any]) -> tuple[Any, tuple[int, ...]]:
        from search_spaces.vit.static import NormPoolOp

        return NormPoolOp(layer), _tokens(layer)


__all__ = ["AttentionLayer", "MlpLayer", "NormPoolLayer", "PatchEmbedLayer"]
