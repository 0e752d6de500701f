"""Configurations of the elastic vision-transformer space (AutoFormer's search dimensions).

A subnet is a pre-norm ViT as timm builds it (patch embedding by a strided convolution, a class
token and learned position embeddings, blocks of attention and MLP with residuals, a final layer
norm and a linear head on the class token). Elastic, as in AutoFormer: the embedding dimension
(one for the whole subnet), the depth, and per layer the number of attention heads (each of a
fixed ``head_dim``, so the attention's width is ``heads x head_dim``) and the MLP ratio (hidden
width ``int(embed x ratio)``). Patch size and image size are fixed per preset.

Presets: ``cifar`` (32 px, patch 4, 65 tokens; small enough to train on a CPU), ``imagenet``
(224 px, patch 16; AutoFormer-T's choices, a DeiT-Tiny-like largest subnet) and
``imagenet_small`` (AutoFormer-S's choices, DeiT-Small-like).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nas.core.limits import check_sizes
from nas.core.precision import check_precisions
from search_spaces.elastic.config import ElasticConfig, ascending, positive_int, resolve_config

# The largest value of each option that sizes the network (far above every preset).
SIZE_BOUNDS = {
    "in_channels": 64, "num_classes": 100_000, "img_size": 1024, "embed_choices": 4096, "depth_choices": 64,
    "head_choices": 64, "mlp_choices": 16.0, "head_dim": 512,
}  # fmt: skip


@dataclass(frozen=True)
class ViTConfig(ElasticConfig):
    """Macro-architecture and elastic choices of an elastic ViT supernet.

    Attributes:
        name: Preset name (or a user label).
        in_channels: Image channels.
        num_classes: Classifier outputs.
        img_size: Input side length (fixed: the position embeddings are per patch).
        patch_size: Patch side length (``img_size`` must be a multiple of it).
        embed_choices: Elastic embedding dimension (ascending; one per subnet).
        depth_choices: Elastic number of blocks (ascending; the first ``depth`` blocks run).
        head_choices: Elastic attention heads per block (ascending).
        mlp_choices: Elastic MLP ratio per block (ascending; hidden width ``int(embed x ratio)``).
        head_dim: Width of one attention head (fixed; AutoFormer's 64).
        qkv_bias: Whether the query/key/value projection has a bias.
        dropout: Dropout before the classifier.
        norm_eps: Layer-norm epsilon (timm's ViT: 1e-6).
        precisions: Empty (the float space), or the precision choices of every transformer
            layer (``int8``, ``fp32``; :mod:`nas.core.precision`): the arch gets a ``q`` list,
            one entry per layer, that sets its attention and its MLP (patch embedding, final
            norm and head stay in float).
    """

    name: str = "imagenet"
    in_channels: int = 3
    num_classes: int = 1000
    img_size: int = 224
    patch_size: int = 16
    embed_choices: tuple[int, ...] = (192, 216, 240)
    depth_choices: tuple[int, ...] = (12, 13, 14)
    head_choices: tuple[int, ...] = (3, 4)
    mlp_choices: tuple[float, ...] = (3.5, 4.0)
    head_dim: int = 64
    qkv_bias: bool = True
    dropout: float = 0.0
    norm_eps: float = 1e-6
    precisions: tuple[str, ...] = ()

    family = "vit"

    def __post_init__(self) -> None:
        object.__setattr__(self, "precisions", check_precisions(self.precisions))
        check_sizes(SIZE_BOUNDS, self)
        for name in ("in_channels", "num_classes", "img_size", "patch_size", "head_dim"):
            positive_int(name, getattr(self, name))
        if self.img_size % self.patch_size:
            raise ValueError(
                f"img_size: {self.img_size} is not a multiple of patch_size {self.patch_size}; "
                "choose sizes whose patches tile the image"
            )
        ascending("embed_choices", self.embed_choices, 1, integer=True)
        ascending("depth_choices", self.depth_choices, 1, integer=True)
        ascending("head_choices", self.head_choices, 1, integer=True)
        ascending("mlp_choices", self.mlp_choices, 0.25)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: must be within [0, 1), got {self.dropout}")
        if not 0.0 < self.norm_eps < 1.0:
            raise ValueError(f"norm_eps: must be within (0, 1), got {self.norm_eps}")

    # ------------------------------------------------------------ derived sizes
    @property
    def resolutions(self) -> tuple[int, ...]:
        """The one input size (a ViT's resolution is fixed by its position embeddings)."""
        return (self.img_size,)

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2

    @property
    def tokens(self) -> int:
        """Sequence length: the patches and the class token."""
        return self.num_patches + 1

    @property
    def max_depth(self) -> int:
        return max(self.depth_choices)

    @staticmethod
    def mlp_hidden(embed: int, ratio: float) -> int:
        """Hidden width of an MLP (AutoFormer's and timm's rule)."""
        return int(embed * ratio)


PRESETS: Mapping[str, ViTConfig] = {
    "imagenet": ViTConfig(),
    "imagenet_small": ViTConfig(
        name="imagenet_small",
        embed_choices=(320, 384, 448),
        head_choices=(5, 6, 7),
        mlp_choices=(3.0, 3.5, 4.0),
    ),
    "cifar": ViTConfig(
        name="cifar",
        num_classes=10,
        img_size=32,
        patch_size=4,
        embed_choices=(64, 96, 128),
        depth_choices=(4, 5, 6),
        head_choices=(2, 3, 4),
        mlp_choices=(2.0, 3.0, 4.0),
        head_dim=32,
    ),
}


def get_config(config: str | ViTConfig | Mapping[str, Any] = "imagenet", **overrides: Any) -> ViTConfig:
    """A preset by name (or a config / dict), with keyword overrides applied."""
    return resolve_config(ViTConfig, PRESETS, config, **overrides)
