"""Configurations of the once-for-all ResNet-50 space.

The ``imagenet`` preset reproduces once-for-all's ``ofa_resnet50`` (published as
``ofa_resnet50_d0-1-2_e0.2-0.25-0.35_w0.65-0.8-1.0``): a deep stem of three 3x3 convolutions
(stride 2; the middle one residual and skippable), a 3x3 stride-2 max pooling, four stages of
bottleneck blocks (widths 256/512/1024/2048, strides 1/2/2/2, 2/2/4/2 blocks plus an elastic
0-2 more), an average-pool-then-1x1 shortcut where the shape changes, global average pooling
and the classifier. Elastic: depth {0, 1, 2} extra blocks per stage (and the stem's middle
conv on or off), expand ratio {0.2, 0.25, 0.35} per block (bottleneck width = output width x
ratio), width multiplier {0.65, 0.8, 1.0} for the stem's first two convs, its last conv and
each stage, and the input resolution.

The ``cifar`` preset keeps the structure at 32x32 with narrow layers and one base block per
stage, so that it trains on a CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nas.core.limits import check_sizes
from nas.core.precision import check_precisions
from search_spaces.elastic.config import (
    StagedConfig,
    ascending,
    make_divisible,
    positive_int,
    positive_ints,
    resolve_config,
)
from search_spaces.ofa_mbv3.config import MAX_STAGES

# The largest value of each option that sizes the network (far above every preset; see ofa_mbv3's).
SIZE_BOUNDS = {
    "in_channels": 64, "num_classes": 100_000, "stem_width": 4096, "stage_widths": 16_384, "base_depths": 32,
    "depth_choices": 32, "expand_choices": 4.0, "width_choices": 4.0, "resolutions": 1024,
}  # fmt: skip


@dataclass(frozen=True)
class OFAResNetConfig(StagedConfig):
    """Macro-architecture and elastic choices of an OFA ResNet supernet.

    Attributes:
        name: Preset name (or a user label).
        in_channels: Image channels.
        num_classes: Classifier outputs.
        stem_width: Output channels of the stem (before the width multiplier); its first two
            convs have half of it.
        stem_stride: Stride of the stem's first conv.
        max_pool: Whether a 3x3 stride-2 max pooling follows the stem.
        stage_widths: Output channels of each stage (before the width multiplier).
        base_depths: Blocks of each stage at depth 0 (the elastic depth adds up to max(depth_choices)).
        stage_strides: Stride of the first block of each stage.
        depth_choices: Elastic extra blocks per stage (ascending, starting at 0).
        expand_choices: Elastic bottleneck expand ratios (ascending).
        width_choices: Elastic width multipliers (ascending); an arch picks them by index.
        resolutions: Allowed input resolutions (ascending).
        dropout: Dropout before the classifier.
        bn_momentum: BatchNorm momentum (PyTorch convention).
        bn_eps: BatchNorm epsilon.
        precisions: Empty (the float space), or the precision choices of every bottleneck block
            (``int8``, ``fp32``; :mod:`nas.core.precision`): the arch gets a ``q`` list.
    """

    name: str = "imagenet"
    in_channels: int = 3
    num_classes: int = 1000
    stem_width: int = 64
    stem_stride: int = 2
    max_pool: bool = True
    stage_widths: tuple[int, ...] = (256, 512, 1024, 2048)
    base_depths: tuple[int, ...] = (2, 2, 4, 2)
    stage_strides: tuple[int, ...] = (1, 2, 2, 2)
    depth_choices: tuple[int, ...] = (0, 1, 2)
    expand_choices: tuple[float, ...] = (0.2, 0.25, 0.35)
    width_choices: tuple[float, ...] = (0.65, 0.8, 1.0)
    resolutions: tuple[int, ...] = field(default_factory=lambda: tuple(range(128, 225, 4)))
    dropout: float = 0.0
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5
    precisions: tuple[str, ...] = ()

    family = "ofa_resnet50"
    later_fields = ("precisions",)  # added later: the ids of float spaces stay as they were

    def __post_init__(self) -> None:
        object.__setattr__(self, "precisions", check_precisions(self.precisions))
        check_sizes(SIZE_BOUNDS, self)
        if len(self.stage_widths) > MAX_STAGES:
            raise ValueError(f"stage_widths: at most {MAX_STAGES} stages, got {len(self.stage_widths)}")
        for name in ("in_channels", "num_classes", "stem_width"):
            positive_int(name, getattr(self, name))
        n = len(self.stage_widths)
        positive_ints("stage_widths", self.stage_widths)
        for name in ("base_depths", "stage_strides"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name}: needs one entry per stage ({n} stages from stage_widths)")
        positive_ints("base_depths", self.base_depths)
        if any(s not in (1, 2) for s in (*self.stage_strides, self.stem_stride)):
            raise ValueError("stage_strides/stem_stride: strides must be 1 or 2")
        ascending("depth_choices", self.depth_choices, 0)
        if any(not isinstance(d, int) for d in self.depth_choices):
            raise ValueError(f"depth_choices: extra block counts are integers, got {list(self.depth_choices)}")
        ascending("expand_choices", self.expand_choices, 0.01)
        ascending("width_choices", self.width_choices, 0.01)
        ascending("resolutions", self.resolutions, 1)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: must be within [0, 1), got {self.dropout}")

    # ------------------------------------------------------------ derived sizes
    @property
    def num_stages(self) -> int:
        return len(self.stage_widths)

    @property
    def stage_blocks(self) -> tuple[int, ...]:
        """Blocks built per stage (base depth plus the largest elastic depth)."""
        return tuple(b + max(self.depth_choices) for b in self.base_depths)

    @property
    def num_widths(self) -> int:
        """Width genes: the stem's first two convs, its last conv, then one per stage."""
        return 2 + self.num_stages

    def stem_out_channels(self) -> tuple[int, ...]:
        """Channels of the stem's last conv, per width choice."""
        return tuple(make_divisible(self.stem_width * w, 8) for w in self.width_choices)

    def stem_mid_channels(self) -> tuple[int, ...]:
        """Channels of the stem's first two convs, per width choice."""
        return tuple(make_divisible(c // 2, 8) for c in self.stem_out_channels())

    def stage_channels(self, stage: int) -> tuple[int, ...]:
        """Output channels of stage ``stage``, per width choice."""
        return tuple(make_divisible(self.stage_widths[stage] * w, 8) for w in self.width_choices)

    def has_projection(self, stage: int, block: int) -> bool:
        """Whether block ``block`` of stage ``stage`` has a projection shortcut: unless its stride
        is 1 and its input and output widths are the same for every width choice."""
        if block > 0:
            return False
        before = self.stem_out_channels() if stage == 0 else self.stage_channels(stage - 1)
        return self.stage_strides[stage] != 1 or before != self.stage_channels(stage)

    @staticmethod
    def mid_channels(out_channels: int, expand: float) -> int:
        """Bottleneck width: the output width times the expand ratio, rounded as once-for-all does."""
        return make_divisible(round(out_channels * expand), 8)


PRESETS: Mapping[str, OFAResNetConfig] = {
    "imagenet": OFAResNetConfig(),
    "cifar": OFAResNetConfig(
        name="cifar",
        num_classes=10,
        stem_width=16,
        stem_stride=1,
        max_pool=False,
        stage_widths=(32, 64, 128, 256),
        base_depths=(1, 1, 1, 1),
        resolutions=(24, 28, 32),
    ),
}


def get_config(config: str | OFAResNetConfig | Mapping[str, Any] = "imagenet", **overrides: Any) -> OFAResNetConfig:
    """A preset by name (or a config / dict), with keyword overrides applied."""
    return resolve_config(OFAResNetConfig, PRESETS, config, **overrides)
