"""Weight-sharing ViT supernet with weight entanglement (AutoFormer): every subnet's weights are
the leading slices of the largest subnet's.

Slices: the embedding dimension takes the first ``E`` channels of the patch convolution, the
class token, the position embeddings, every layer norm, the output projections, the MLP's second
layer and the classifier's inputs; a layer's ``h`` heads are the first ``h`` heads of each of
the query, key and value projections (and the matching inputs of the output projection); its
MLP hidden width the first ``int(E x ratio)`` units. The first ``depth`` blocks run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.core.arch import Arch
from search_spaces.elastic.supernet import ElasticSupernet
from search_spaces.fake_quant import fake_quant_activation, fake_quant_weight
from search_spaces.vit.config import ViTConfig

if TYPE_CHECKING:  # the space builds its supernet; the supernet only reads the space
    from timm.models.vision_transformer import VisionTransformer

    from search_spaces.vit.space import ViTSpace


def sliced_norm(norm: nn.LayerNorm, x: torch.Tensor, embed: int) -> torch.Tensor:
    """``norm`` over the first ``embed`` channels, with its affine parameters' first ``embed``."""
    return F.layer_norm(x, (embed,), norm.weight[:embed], norm.bias[:embed], norm.eps)


@torch.no_grad()
def copy_norm(src: nn.LayerNorm, dst: Any, embed: int) -> None:
    """Copies the first ``embed`` affine parameters of a layer norm into a static one."""
    dst.weight.copy_(src.weight[:embed])
    dst.bias.copy_(src.bias[:embed])


class ElasticViTBlock(nn.Module):
    """A pre-norm transformer block whose embedding dimension, heads and MLP width are elastic.

    Attributes:
        active_embed: Embedding dimension in use.
        active_heads: Attention heads in use.
        active_hidden: MLP hidden width in use.
        fake_quant: Whether its linear layers (qkv, proj, fc1, fc2) compute in fake int8 —
            weights per output channel, inputs per tensor over the batch's range — as the
            quantization-aware phase trains them for both int8 forms (static QDQ and dynamic,
            whose activation ranges are the batch's own); the two attention products stay float.
    """

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        embed, self.head_dim = max(cfg.embed_choices), cfg.head_dim
        self.max_heads = max(cfg.head_choices)
        width = self.max_heads * cfg.head_dim
        hidden = cfg.mlp_hidden(embed, max(cfg.mlp_choices))
        self.norm1 = nn.LayerNorm(embed, eps=cfg.norm_eps)
        self.qkv = nn.Linear(embed, 3 * width, bias=cfg.qkv_bias)
        self.proj = nn.Linear(width, embed)
        self.norm2 = nn.LayerNorm(embed, eps=cfg.norm_eps)
        self.fc1 = nn.Linear(embed, hidden)
        self.fc2 = nn.Linear(hidden, embed)
        self.active_embed, self.active_heads, self.active_hidden = embed, self.max_heads, hidden
        self.fake_quant = False

    def _linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.fake_quant:
            return F.linear(fake_quant_activation(x), fake_quant_weight(weight), bias)
        return F.linear(x, weight, bias)

    def qkv_weights(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The active query/key/value projection: the first heads of each of the three parts."""
        e, w = self.active_embed, self.active_heads * self.head_dim
        weight = self.qkv.weight.view(3, -1, self.qkv.in_features)[:, :w, :e].reshape(3 * w, e)
        bias = None if self.qkv.bias is None else self.qkv.bias.view(3, -1)[:, :w].reshape(3 * w)
        return weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e, h, hidden = self.active_embed, self.active_heads, self.active_hidden
        batch, tokens, _ = x.shape
        weight, bias = self.qkv_weights()
        qkv = self._linear(sliced_norm(self.norm1, x, e), weight, bias)
        q, k, v = qkv.reshape(batch, tokens, 3, h, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, tokens, h * self.head_dim)
        x = x + self._linear(y, self.proj.weight[:e, : h * self.head_dim], self.proj.bias[:e])
        y = F.gelu(self._linear(sliced_norm(self.norm2, x, e), self.fc1.weight[:hidden, :e], self.fc1.bias[:hidden]))
        return x + self._linear(y, self.fc2.weight[:e, :hidden], self.fc2.bias[:e])

    @torch.no_grad()
    def copy_into(self, block: Any) -> None:
        """Copies the active weights into a timm ``Block`` of matching shape."""
        e, hidden, w = self.active_embed, self.active_hidden, self.active_heads * self.head_dim
        copy_norm(self.norm1, block.norm1, e)
        copy_norm(self.norm2, block.norm2, e)
        weight, bias = self.qkv_weights()
        block.attn.qkv.weight.copy_(weight)
        if bias is not None:
            block.attn.qkv.bias.copy_(bias)
        block.attn.proj.weight.copy_(self.proj.weight[:e, :w])
        block.attn.proj.bias.copy_(self.proj.bias[:e])
        block.mlp.fc1.weight.copy_(self.fc1.weight[:hidden, :e])
        block.mlp.fc1.bias.copy_(self.fc1.bias[:hidden])
        block.mlp.fc2.weight.copy_(self.fc2.weight[:e, :hidden])
        block.mlp.fc2.bias.copy_(self.fc2.bias[:e])


class ViTSupernet(ElasticSupernet):
    """Elastic ViT with elastic embedding dimension, depth, heads and MLP ratio per layer.

    Args:
        space: The space (or a preset name / config accepted by ``ViTSpace``).
        seed: Seed of the weight initialisation (timm's ViT initialisation); ``None`` keeps
            PyTorch's default initialisation.
        **overrides: Config overrides when ``space`` is a name or config.
    """

    family = "vit"
    space: ViTSpace

    def _build(self, cfg: ViTConfig) -> None:
        embed = max(cfg.embed_choices)
        self.patch_embed = nn.Conv2d(cfg.in_channels, embed, cfg.patch_size, cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.tokens, embed))
        self.blocks = nn.ModuleList(ElasticViTBlock(cfg) for _ in range(cfg.max_depth))
        self.norm = nn.LayerNorm(embed, eps=cfg.norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(embed, cfg.num_classes)
        self.active_embed = embed
        self.active_depth = cfg.max_depth

    @torch.no_grad()
    def reset_parameters(self, seed: int) -> None:
        """timm's ViT initialisation from an explicit seed: truncated normal (std 0.02) for linear
        layers, the patch convolution and the position embeddings, zero biases, class token
        normal (std 1e-6), layer norms weight 1 and bias 0; the classifier zero (timm's ``head``
        initialisation)."""
        gen = torch.Generator().manual_seed(seed)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(module.weight, std=0.02, generator=gen)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.LayerNorm):
                module.reset_parameters()
        nn.init.trunc_normal_(self.pos_embed, std=0.02, generator=gen)
        self.cls_token.copy_(torch.randn(self.cls_token.shape, generator=gen) * 1e-6)
        self.head.weight.zero_()

    def no_weight_decay(self) -> set[str]:
        """Parameters trained without weight decay besides biases and norms (timm's convention)."""
        return {"cls_token", "pos_embed"}

    # ------------------------------------------------------------ activation
    def set_active(self, arch: Arch | Mapping[str, Any]) -> Arch:
        """Selects the subnet used by ``forward``; returns the canonical arch."""
        arch = self.space.make(arch)
        cfg = self.space.config
        self.active_embed, self.active_depth = arch["embed"], arch["depth"]
        blocks: list[ElasticViTBlock] = list(self.blocks)  # type: ignore[arg-type]
        for block, heads, ratio in zip(blocks, arch["heads"], arch["mlp"]):
            block.active_embed, block.active_heads = arch["embed"], heads
            block.active_hidden = cfg.mlp_hidden(arch["embed"], ratio)
        self.active_arch = arch
        return arch

    def set_fake_quant(self, blocks: Sequence[bool]) -> None:
        """Which layers (one flag per layer built, as the arch's ``heads``) compute in fake int8."""
        if len(blocks) != len(self.blocks):
            raise ValueError(f"set_fake_quant: {len(blocks)} flags for {len(self.blocks)} layers")
        layers: list[ElasticViTBlock] = list(self.blocks)  # type: ignore[arg-type]
        for block, enabled in zip(layers, blocks):
            block.fake_quant = bool(enabled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.active_embed
        bias = self.patch_embed.bias
        assert bias is not None
        x = F.conv2d(x, self.patch_embed.weight[:e], bias[:e], stride=self.patch_embed.stride)
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token[:, :, :e].expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed[:, :, :e]
        for block in self.blocks[: self.active_depth]:
            x = block(x)
        x = sliced_norm(self.norm, x, e)[:, 0]
        return F.linear(self.dropout(x), self.head.weight[:, :e], self.head.bias)

    # ------------------------------------------------------------ extraction
    @torch.no_grad()
    def extract(self, arch: Arch | Mapping[str, Any] | None = None) -> VisionTransformer:
        """A timm ``VisionTransformer`` with copied weights equal to the supernet with ``arch`` active."""
        arch = self.active_arch if arch is None else self.space.make(arch)
        net: Any = self._new_static(arch)  # a timm VisionTransformer
        e = arch["embed"]
        with self.active(arch):
            net.patch_embed.proj.weight.copy_(self.patch_embed.weight[:e])
            net.patch_embed.proj.bias.copy_(self.patch_embed.bias[:e])  # type: ignore[index]
            net.cls_token.copy_(self.cls_token[:, :, :e])
            net.pos_embed.copy_(self.pos_embed[:, :, :e])
            blocks: list[ElasticViTBlock] = list(self.blocks)  # type: ignore[arg-type]
            for block, target in zip(blocks, net.blocks):
                block.copy_into(target)
            copy_norm(self.norm, net.norm, e)
            net.head.weight.copy_(self.head.weight[:, :e])
            net.head.bias.copy_(self.head.bias)
        return net
