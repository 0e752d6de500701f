"""Configurations of the once-for-all MobileNetV3 space.

The ``imagenet`` preset reproduces once-for-all's ``ofa_mbv3_d234_e346_k357_w1.0``:
a 3x3 stride-2 h-swish stem of 16 channels, a fixed expand-1 block of 16 channels,
five elastic stages of up to four MBConv blocks (widths 24/40/80/112/160, strides
2/2/2/1/2, ReLU in the first two stages and h-swish after, squeeze-and-excitation
in stages 2, 4 and 5), a 1x1 final expand to 960 channels, global average pooling,
a 1x1 feature-mix convolution to 1280 channels without BN, and the classifier.

The ``proxyless_w1.3`` preset reproduces once-for-all's ``ofa_proxyless_d234_e346_k357_w1.3``
(ProxylessNAS's macro-architecture at width 1.3): a ReLU6 stem of 32 channels, a fixed expand-1
block to 16 channels without residual, five elastic stages (widths 24/40/80/96/192, strides
2/2/2/1/2) and a sixth stage of exactly one elastic block (320 channels), all ReLU6 without
squeeze-and-excitation, then a 1x1 feature-mix convolution with BN to 1280 channels *before*
the global pooling, and the classifier (BN epsilon 1e-3).

The ``cifar`` and ``mnist`` presets keep the same block structure for 32x32 and
28x28 inputs with fewer strides and narrower layers, so that they train on a CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nas.core.limits import check_sizes
from nas.core.precision import check_precisions
from search_spaces.elastic.config import StagedConfig, ascending, make_divisible, positive_int, resolve_config

ACTIVATIONS = ("relu", "relu6", "h_swish")

# fields added after the first release: hashed into a custom config's fingerprint only when they
# differ from their default, so that the space ids of runs made before stay as they were
_LATER_FIELDS = (
    "stem_act",
    "first_block_width",
    "first_block_act",
    "stage_fixed_depths",
    "head_act",
    "feature_mix_bn",
    "feature_mix_before_pool",
    "precisions",
)


# The largest value of each option that sizes the network (far above every preset): a spec cannot
# ask for a network that exhausts memory by one option (the service also bounds the whole network's
# parameters and MACs at admission).
SIZE_BOUNDS = {
    "in_channels": 64, "num_classes": 100_000, "stem_width": 4096, "first_block_width": 4096,
    "stage_widths": 4096, "stage_fixed_depths": 32, "final_expand_width": 8192, "feature_mix_width": 8192,
    "width_mult": 8.0, "ks_choices": 15, "expand_choices": 16, "depth_choices": 32, "resolutions": 1024,
    "se_reduction": 1024,
}  # fmt: skip
MAX_STAGES = 16


@dataclass(frozen=True)
class OFAMobileNetV3Config(StagedConfig):
    """Macro-architecture and elastic choices of an OFA MobileNetV3 supernet.

    Attributes:
        name: Preset name (or a user label).
        in_channels: Image channels.
        num_classes: Classifier outputs.
        stem_width: Channels of the stem conv (before width_mult).
        stem_stride: Stride of the stem conv.
        stem_act: Activation of the stem.
        first_block_width: Output channels of the fixed expand-1 first block (before
            width_mult); 0 means the stem's width (a residual block then).
        first_block_act: Activation of the first block's depthwise conv.
        stage_widths: Output channels of each elastic stage (before width_mult).
        stage_strides: Stride of the first block of each stage.
        stage_acts: Activation of each stage, ``relu``, ``relu6`` or ``h_swish``.
        stage_se: Whether each stage's blocks use squeeze-and-excitation.
        stage_fixed_depths: Empty (every stage elastic), or one entry per stage: 0 for an
            elastic stage, n > 0 for a stage of exactly n blocks (kernel and expand still elastic).
        final_expand_width: Channels of the 1x1 conv after the last stage (before
            width_mult); 0 for none.
        feature_mix_width: Channels of the feature-mix conv (before width_mult).
        head_act: Activation of the final expand and the feature mix.
        feature_mix_bn: Whether the feature mix has BN.
        feature_mix_before_pool: Feature mix before the global pooling (ProxylessNAS) or
            after it (MobileNetV3).
        width_mult: Width multiplier (channels rounded with ``make_divisible``).
        ks_choices: Elastic depthwise kernel sizes (odd, ascending).
        expand_choices: Elastic expand ratios (ascending).
        depth_choices: Elastic number of blocks per stage (ascending; the maximum
            is the number of blocks built per stage).
        resolutions: Allowed input resolutions (ascending).
        dropout: Dropout before the classifier.
        bn_momentum: BatchNorm momentum (PyTorch convention).
        bn_eps: BatchNorm epsilon.
        se_reduction: Squeeze-and-excitation reduction (mid = make_divisible(C // r)).
        precisions: Empty (the float space), or the precision choices of every elastic block
            (``int8``, ``fp32``; :mod:`nas.core.precision`): the arch gets a ``q`` list.
    """

    name: str = "imagenet"
    in_channels: int = 3
    num_classes: int = 1000
    stem_width: int = 16
    stem_stride: int = 2
    stem_act: str = "h_swish"
    first_block_width: int = 0
    first_block_act: str = "relu"
    stage_widths: tuple[int, ...] = (24, 40, 80, 112, 160)
    stage_strides: tuple[int, ...] = (2, 2, 2, 1, 2)
    stage_acts: tuple[str, ...] = ("relu", "relu", "h_swish", "h_swish", "h_swish")
    stage_se: tuple[bool, ...] = (False, True, False, True, True)
    stage_fixed_depths: tuple[int, ...] = ()
    final_expand_width: int = 960
    feature_mix_width: int = 1280
    head_act: str = "h_swish"
    feature_mix_bn: bool = False
    feature_mix_before_pool: bool = False
    width_mult: float = 1.0
    ks_choices: tuple[int, ...] = (3, 5, 7)
    expand_choices: tuple[int, ...] = (3, 4, 6)
    depth_choices: tuple[int, ...] = (2, 3, 4)
    resolutions: tuple[int, ...] = field(default_factory=lambda: tuple(range(128, 225, 4)))
    dropout: float = 0.1
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5
    se_reduction: int = 4
    precisions: tuple[str, ...] = ()

    family = "ofa_mbv3"
    later_fields = _LATER_FIELDS

    def __post_init__(self) -> None:
        object.__setattr__(self, "precisions", check_precisions(self.precisions))
        for name in (
            "in_channels",
            "num_classes",
            "stem_width",
            "stem_stride",
            "feature_mix_width",
            "se_reduction",
        ):
            positive_int(name, getattr(self, name))
        for name in ("final_expand_width", "first_block_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name}: must be a non-negative integer (0 for the default), got {value!r}")
        if self.feature_mix_before_pool and self.final_expand_width:
            raise ValueError(
                "final_expand_width: a head with the feature mix before pooling has no final expand; set it to 0"
            )
        check_sizes(SIZE_BOUNDS, self)
        n = len(self.stage_widths)
        if n == 0:
            raise ValueError("stage_widths: at least one stage is needed")
        if n > MAX_STAGES:
            raise ValueError(f"stage_widths: at most {MAX_STAGES} stages, got {n}")
        for name in ("stage_strides", "stage_acts", "stage_se"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"{name}: needs one entry per stage ({n} stages from stage_widths), got {len(getattr(self, name))}"
                )
        if any(not isinstance(w, int) or isinstance(w, bool) or w <= 0 for w in self.stage_widths):
            raise ValueError(f"stage_widths: must be positive integers, got {list(self.stage_widths)}")
        if any(s not in (1, 2) for s in self.stage_strides) or self.stem_stride not in (1, 2):
            raise ValueError("stage_strides/stem_stride: strides must be 1 or 2")
        if self.stage_fixed_depths and len(self.stage_fixed_depths) != n:
            raise ValueError(
                f"stage_fixed_depths: needs one entry per stage ({n} stages) or none at all, "
                f"got {len(self.stage_fixed_depths)}"
            )
        if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in self.stage_fixed_depths):
            raise ValueError(
                "stage_fixed_depths: entries are 0 (elastic) or a positive block count, "
                f"got {list(self.stage_fixed_depths)}"
            )
        for name, acts in (
            ("stage_acts", self.stage_acts),
            ("stem_act", (self.stem_act,)),
            ("first_block_act", (self.first_block_act,)),
            ("head_act", (self.head_act,)),
        ):
            for act in acts:
                if act not in ACTIVATIONS:
                    raise ValueError(f"{name}: unknown activation {act!r}; use one of {ACTIVATIONS}")
        ascending("ks_choices", self.ks_choices, 1, integer=True)
        if any(k % 2 == 0 for k in self.ks_choices):
            raise ValueError(f"ks_choices: kernel sizes must be odd, got {list(self.ks_choices)}")
        ascending("expand_choices", self.expand_choices, 1, integer=True)
        ascending("depth_choices", self.depth_choices, 1, integer=True)
        ascending("resolutions", self.resolutions, 1, integer=True)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: must be within [0, 1), got {self.dropout}")
        if self.width_mult <= 0:
            raise ValueError(f"width_mult: must be positive, got {self.width_mult}")

    # ------------------------------------------------------------ derived sizes
    @property
    def num_stages(self) -> int:
        return len(self.stage_widths)

    def stage_depth_choices(self, stage: int) -> tuple[int, ...]:
        """The depths stage ``stage`` may take (one value for a fixed-depth stage)."""
        fixed = self.stage_fixed_depths[stage] if self.stage_fixed_depths else 0
        return (fixed,) if fixed else self.depth_choices

    @property
    def stage_blocks(self) -> tuple[int, ...]:
        """Blocks built per stage (the largest depth each stage may take)."""
        return tuple(max(self.stage_depth_choices(s)) for s in range(self.num_stages))

    def channels(self, base: int) -> int:
        """Channels of a layer after the width multiplier."""
        return make_divisible(base * self.width_mult, 8)

    @property
    def stem_channels(self) -> int:
        return self.channels(self.stem_width)

    @property
    def first_block_channels(self) -> int:
        return self.channels(self.first_block_width) if self.first_block_width else self.stem_channels

    @property
    def stage_channels(self) -> tuple[int, ...]:
        return tuple(self.channels(w) for w in self.stage_widths)

    @property
    def final_expand_channels(self) -> int:
        """Channels of the final expand conv (0 when the head has none)."""
        return self.channels(self.final_expand_width) if self.final_expand_width else 0

    @property
    def feature_mix_channels(self) -> int:
        return self.channels(self.feature_mix_width)


PRESETS: Mapping[str, OFAMobileNetV3Config] = {
    "imagenet": OFAMobileNetV3Config(),
    # once-for-all's ofa_mbv3_d234_e346_k357_w1.2: the same network 1.2x as wide
    "imagenet_w1.2": OFAMobileNetV3Config(name="imagenet_w1.2", width_mult=1.2),
    # once-for-all's ofa_proxyless_d234_e346_k357_w1.3
    "proxyless_w1.3": OFAMobileNetV3Config(
        name="proxyless_w1.3",
        stem_width=32,
        stem_act="relu6",
        first_block_width=16,
        first_block_act="relu6",
        stage_widths=(24, 40, 80, 96, 192, 320),
        stage_strides=(2, 2, 2, 1, 2, 1),
        stage_acts=("relu6",) * 6,
        stage_se=(False,) * 6,
        stage_fixed_depths=(0, 0, 0, 0, 0, 1),
        final_expand_width=0,
        feature_mix_width=1280,
        head_act="relu6",
        feature_mix_bn=True,
        feature_mix_before_pool=True,
        width_mult=1.3,
        bn_eps=1e-3,
    ),
    "cifar": OFAMobileNetV3Config(
        name="cifar",
        num_classes=10,
        stem_width=16,
        stem_stride=1,
        stage_widths=(16, 24, 40, 64, 96),
        stage_strides=(1, 2, 2, 1, 2),
        final_expand_width=384,
        feature_mix_width=512,
        resolutions=(24, 28, 32),
        dropout=0.1,
    ),
    "mnist": OFAMobileNetV3Config(
        name="mnist",
        in_channels=1,
        num_classes=10,
        stem_width=8,
        stem_stride=1,
        stage_widths=(16, 24, 40),
        stage_strides=(2, 2, 2),
        stage_acts=("relu", "h_swish", "h_swish"),
        stage_se=(False, True, True),
        final_expand_width=160,
        feature_mix_width=256,
        resolutions=(20, 24, 28),
        dropout=0.1,
    ),
}


def get_config(
    config: str | OFAMobileNetV3Config | Mapping[str, Any] = "imagenet", **overrides: Any
) -> OFAMobileNetV3Config:
    """A preset by name (or a config / dict), with keyword overrides applied.

    Raises:
        ValueError: for an unknown preset or an unknown / invalid field.
    """
    return resolve_config(OFAMobileNetV3Config, PRESETS, config, **overrides)


__all__ = ["MAX_STAGES", "PRESETS", "SIZE_BOUNDS", "OFAMobileNetV3Config", "get_config", "make_divisible"]
