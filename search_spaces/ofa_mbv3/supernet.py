"""Weight-sharing once-for-all MobileNetV3 supernet."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from nas.core.arch import Arch
from search_spaces.dynamic_ops import (
    DynamicBatchNorm2d,
    DynamicConv2d,
    DynamicDepthwiseConv2d,
    DynamicLinear,
    DynamicSE,
)
from search_spaces.elastic.supernet import ElasticSupernet, copy_bn
from search_spaces.ofa_mbv3.config import OFAMobileNetV3Config, make_divisible
from search_spaces.ofa_mbv3.static import ConvBNAct, MBConvBlock, StaticOFAMobileNetV3, make_activation

if TYPE_CHECKING:  # the space builds its supernet (space.build_supernet); the supernet only reads the space
    from search_spaces.ofa_mbv3.space import OFAMobileNetV3Space


class DynamicMBConvBlock(nn.Module):
    """MBConv block with elastic kernel size and expand ratio.

    Attributes:
        active_kernel_size: Depthwise kernel size in use.
        active_expand: Expand ratio in use.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        *,
        kernel_sizes: tuple[int, ...],
        expand_ratios: tuple[int, ...],
        use_se: bool,
        act: str,
        cfg: OFAMobileNetV3Config,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.use_se = use_se
        self.max_mid = make_divisible(round(in_channels * max(expand_ratios)), 8)
        bn: dict[str, Any] = {"eps": cfg.bn_eps, "momentum": cfg.bn_momentum}
        self.expand_conv = DynamicConv2d(in_channels, self.max_mid, 1)
        self.expand_bn = DynamicBatchNorm2d(self.max_mid, **bn)
        self.depthwise_conv = DynamicDepthwiseConv2d(self.max_mid, kernel_sizes, stride)
        self.depthwise_bn = DynamicBatchNorm2d(self.max_mid, **bn)
        self.act = make_activation(act)
        self.se = DynamicSE(self.max_mid, cfg.se_reduction) if use_se else None
        self.project_conv = DynamicConv2d(self.max_mid, out_channels, 1)
        self.project_bn = nn.BatchNorm2d(out_channels, **bn)
        self.residual = stride == 1 and in_channels == out_channels
        self.active_kernel_size = max(kernel_sizes)
        self.active_expand = max(expand_ratios)

    @property
    def fake_quant(self) -> bool:
        """Whether the block's convolutions compute in fake int8 (quantization-aware training)."""
        return self.expand_conv.fake_quant

    @fake_quant.setter
    def fake_quant(self, enabled: bool) -> None:
        convs: list[nn.Module] = [self.expand_conv, self.depthwise_conv, self.project_conv]
        for conv in [*convs, *([self.se] if self.se is not None else [])]:
            conv.fake_quant = enabled

    @property
    def active_mid(self) -> int:
        return make_divisible(round(self.in_channels * self.active_expand), 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.expand_conv.active_out_channels = self.active_mid
        self.depthwise_conv.active_kernel_size = self.active_kernel_size
        y = self.act(self.expand_bn(self.expand_conv(x)))
        y = self.act(self.depthwise_bn(self.depthwise_conv(y)))
        if self.se is not None:
            y = self.se(y)
        y = self.project_bn(self.project_conv(y))
        return x + y if self.residual else y

    @torch.no_grad()
    def copy_into(self, block: MBConvBlock) -> None:
        """Copies the active weights into a static block of matching shape."""
        mid, k = self.active_mid, self.active_kernel_size
        assert block.expand is not None
        block.expand.conv.weight.copy_(self.expand_conv.active_weight(self.in_channels, mid))
        copy_bn(self.expand_bn, block.expand.bn, mid)
        block.depthwise.conv.weight.copy_(self.depthwise_conv.active_filter(mid, k))
        copy_bn(self.depthwise_bn, block.depthwise.bn, mid)
        if self.se is not None:
            assert block.se is not None
            se_mid = self.se.mid_channels(mid)
            block.se.fc1.weight.copy_(self.se.fc1.weight[:se_mid, :mid])
            block.se.fc1.bias.copy_(self.se.fc1.bias[:se_mid])
            block.se.fc2.weight.copy_(self.se.fc2.weight[:mid, :se_mid])
            block.se.fc2.bias.copy_(self.se.fc2.bias[:mid])
        block.project.conv.weight.copy_(self.project_conv.active_weight(mid, self.out_channels))
        copy_bn(self.project_bn, block.project.bn, self.out_channels)


class OFAMobileNetV3Supernet(ElasticSupernet):
    """Once-for-all MobileNetV3 with elastic kernel, expand ratio, depth (and resolution).

    The resolution of an arch is the input size the caller feeds; the network
    itself is fully convolutional up to the global pooling.

    Args:
        space: The space (or a preset name / config accepted by ``OFAMobileNetV3Space``).
        seed: Seed of the weight initialisation (He fan-out for convs, as in once-for-all);
            ``None`` keeps PyTorch's default initialisation.
        **overrides: Config overrides when ``space`` is a name or config.
    """

    family = "ofa_mbv3"
    space: OFAMobileNetV3Space

    def _build(self, cfg: OFAMobileNetV3Config) -> None:
        bn: dict[str, Any] = {"bn_eps": cfg.bn_eps, "bn_momentum": cfg.bn_momentum}
        stem, first = cfg.stem_channels, cfg.first_block_channels
        self.stem = ConvBNAct(cfg.in_channels, stem, 3, cfg.stem_stride, act=cfg.stem_act, **bn)
        self.first_block = MBConvBlock(
            stem, first, stem, 3, 1, expand=False, act=cfg.first_block_act, residual=stem == first, **bn
        )
        self.blocks = nn.ModuleList()
        in_ch = first
        for width, stride, act, se, built in zip(
            cfg.stage_channels, cfg.stage_strides, cfg.stage_acts, cfg.stage_se, cfg.stage_blocks
        ):
            for i in range(built):
                self.blocks.append(
                    DynamicMBConvBlock(
                        in_ch,
                        width,
                        stride if i == 0 else 1,
                        kernel_sizes=cfg.ks_choices,
                        expand_ratios=cfg.expand_choices,
                        use_se=se,
                        act=act,
                        cfg=cfg,
                    )
                )
                in_ch = width
        self.final_expand = (
            ConvBNAct(in_ch, cfg.final_expand_channels, 1, act=cfg.head_act, **bn)
            if cfg.final_expand_channels
            else None
        )
        mix_in = cfg.final_expand_channels or in_ch
        self.feature_mix = ConvBNAct(mix_in, cfg.feature_mix_channels, 1, bn=cfg.feature_mix_bn, act=cfg.head_act, **bn)
        self.feature_mix_before_pool = cfg.feature_mix_before_pool
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = DynamicLinear(cfg.feature_mix_channels, cfg.num_classes)

    def _reset_other(self, module: nn.Module) -> None:
        """Kernel-transform matrices start as the identity (once-for-all's)."""
        if isinstance(module, DynamicDepthwiseConv2d):
            for matrix in module.transforms.values():
                matrix.copy_(torch.eye(matrix.shape[0]))

    # ------------------------------------------------------------ activation
    def set_active(self, arch: Arch | Mapping[str, Any]) -> Arch:
        """Selects the subnet used by ``forward``; returns the canonical arch."""
        arch = self.space.make(arch)
        for block, k, e in zip(self.blocks, arch["ks"], arch["e"]):
            block.active_kernel_size = k
            block.active_expand = e
        self.active_arch = arch
        return arch

    def set_fake_quant(self, blocks: Sequence[bool]) -> None:
        """Which elastic blocks (one flag per block, as the arch's ``ks``) compute in fake int8."""
        if len(blocks) != len(self.blocks):
            raise ValueError(f"set_fake_quant: {len(blocks)} flags for {len(self.blocks)} elastic blocks")
        for block, enabled in zip(self.blocks, blocks):
            block.fake_quant = bool(enabled)

    def active_blocks(self) -> list[DynamicMBConvBlock]:
        """The elastic blocks the active arch runs, in order."""
        offsets = self.space.config.stage_offsets
        return [self.blocks[offset + i] for offset, d in zip(offsets, self.active_arch["d"]) for i in range(d)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_block(self.stem(x))
        for block in self.active_blocks():
            x = block(x)
        if self.final_expand is not None:
            x = self.final_expand(x)
        if self.feature_mix_before_pool:
            x = self.feature_mix(x).mean((2, 3), keepdim=True)
        else:
            x = self.feature_mix(x.mean((2, 3), keepdim=True))
        return self.classifier(self.dropout(torch.flatten(x, 1)))

    # ------------------------------------------------------------ extraction
    @torch.no_grad()
    def extract(self, arch: Arch | Mapping[str, Any] | None = None) -> StaticOFAMobileNetV3:
        """A plain network with copied weights equal to the supernet with ``arch`` active."""
        arch = self.active_arch if arch is None else self.space.make(arch)
        net: StaticOFAMobileNetV3 = self._new_static(arch)
        with self.active(arch):
            net.stem.load_state_dict(self.stem.state_dict())
            net.blocks[0].load_state_dict(self.first_block.state_dict())
            for static_block, block in zip(list(net.blocks)[1:], self.active_blocks()):
                block.copy_into(static_block)
        if self.final_expand is not None:
            assert net.final_expand is not None
            net.final_expand.load_state_dict(self.final_expand.state_dict())
        net.feature_mix.load_state_dict(self.feature_mix.state_dict())
        net.classifier[1].weight.copy_(self.classifier.linear.weight)
        net.classifier[1].bias.copy_(self.classifier.linear.bias)
        return net
