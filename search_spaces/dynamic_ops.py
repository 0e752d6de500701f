"""Dynamic (weight-slicing) layers shared by elastic supernets.

Each layer owns the weights of its largest configuration and computes with a
leading slice of them. The active input width is read from the input tensor; the
active output width, kernel size or expand ratio is an explicit attribute set by
the supernet's ``set_active`` (no global flags). Convolutions with ``fake_quant`` set compute
with int8-rounded weights and inputs (:mod:`search_spaces.fake_quant`; quantization-aware
training), set per block by the supernet's ``set_fake_quant``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.fake_quant import fake_quant_activation, fake_quant_weight
from search_spaces.ofa_mbv3.config import make_divisible


def _conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    fake_quant: bool,
    *,
    bias: torch.Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
    groups: int = 1,
) -> torch.Tensor:
    """``F.conv2d``, on int8-rounded input and weight when ``fake_quant``."""
    if fake_quant:
        x, weight = fake_quant_activation(x), fake_quant_weight(weight)
    return F.conv2d(x, weight, bias, stride, padding, 1, groups)


class DynamicConv2d(nn.Module):
    """Dense convolution whose output channels are a leading slice of the largest.

    Attributes:
        active_out_channels: Output channels to compute (defaults to the maximum).
    """

    def __init__(
        self,
        max_in_channels: int,
        max_out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.max_in_channels = max_in_channels
        self.max_out_channels = max_out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.conv = nn.Conv2d(
            max_in_channels, max_out_channels, kernel_size, stride, padding=kernel_size // 2, bias=bias
        )
        self.active_out_channels = max_out_channels
        self.fake_quant = False

    def active_weight(self, in_channels: int, out_channels: int) -> torch.Tensor:
        weight = self.conv.weight
        if out_channels == weight.shape[0] and in_channels == weight.shape[1]:
            return weight
        # a dense copy of the slice: convolution libraries take a strided view of a larger tensor
        # through a slower path (the copy's gradient flows back into the slice)
        return weight[:out_channels, :in_channels].clone(memory_format=torch.preserve_format)

    def active_bias(self, out_channels: int) -> torch.Tensor | None:
        return None if self.conv.bias is None else self.conv.bias[:out_channels]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_channels = self.active_out_channels
        weight = self.active_weight(x.size(1), out_channels)
        return _conv(
            x, weight, self.fake_quant, bias=self.active_bias(out_channels), stride=self.stride,
            padding=self.kernel_size // 2,
        )  # fmt: skip


class DynamicDepthwiseConv2d(nn.Module):
    """Depthwise convolution with elastic kernel size (once-for-all kernel transformation).

    The largest kernel is stored; a smaller kernel is the centre crop of the next
    larger (transformed) kernel passed through a learnt ``k^2 x k^2`` matrix shared
    by all channels, applied from the largest kernel down (7 -> 5 -> 3). The
    matrices start as identity, so at initialisation a small kernel is the centre
    of the large one.

    Attributes:
        active_kernel_size: Kernel size to compute with.
    """

    def __init__(self, max_channels: int, kernel_sizes: tuple[int, ...], stride: int = 1) -> None:
        super().__init__()
        self.max_channels = max_channels
        self.kernel_sizes = tuple(sorted(kernel_sizes))
        self.max_kernel_size = self.kernel_sizes[-1]
        self.stride = stride
        self.conv = nn.Conv2d(
            max_channels,
            max_channels,
            self.max_kernel_size,
            stride,
            padding=self.max_kernel_size // 2,
            groups=max_channels,
            bias=False,
        )
        self.transforms = nn.ParameterDict()
        for big, small in zip(self.kernel_sizes[1:], self.kernel_sizes[:-1]):
            self.transforms[self.transform_name(big, small)] = nn.Parameter(torch.eye(small * small))
        self.active_kernel_size = self.max_kernel_size
        self.fake_quant = False

    @staticmethod
    def transform_name(big: int, small: int) -> str:
        return f"{big}to{small}"

    def active_filter(self, channels: int, kernel_size: int) -> torch.Tensor:
        """The ``(channels, 1, k, k)`` filter of the active kernel size."""
        if kernel_size not in self.kernel_sizes:
            raise ValueError(f"kernel size {kernel_size} not in {self.kernel_sizes}")
        weight = self.conv.weight[:channels]
        big = self.max_kernel_size
        for small in reversed(self.kernel_sizes):
            if small >= big:
                continue
            if small < kernel_size:
                break
            start = (big - small) // 2
            crop = weight[:, :, start : start + small, start : start + small]
            flat = crop.reshape(channels, small * small)
            flat = F.linear(flat, self.transforms[self.transform_name(big, small)])
            weight = flat.reshape(channels, 1, small, small)
            big = small
        return weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.active_kernel_size
        channels = x.size(1)
        return _conv(
            x, self.active_filter(channels, k), self.fake_quant, stride=self.stride, padding=k // 2, groups=channels
        )


class DynamicBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over a leading slice of the channels (statistics updated in place).

    Follows ``nn.BatchNorm2d`` semantics exactly, including ``momentum=None``
    (cumulative average, used by BN recalibration).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.size(1)
        if channels == self.num_features:
            return super().forward(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch_stats = self.training or self.running_mean is None
        return F.batch_norm(
            x,
            None if self.running_mean is None else self.running_mean[:channels],
            None if self.running_var is None else self.running_var[:channels],
            None if self.weight is None else self.weight[:channels],
            None if self.bias is None else self.bias[:channels],
            use_batch_stats,
            factor,
            self.eps,
        )


class DynamicSE(nn.Module):
    """Squeeze-and-excitation over the active channels (mid = make_divisible(C // r)).

    Same computation as ``timm.layers.SEModule`` with ReLU and hard-sigmoid gate,
    which the static network uses.
    """

    def __init__(self, max_channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.reduction = reduction
        max_mid = make_divisible(max_channels // reduction, 8)
        self.fc1 = nn.Conv2d(max_channels, max_mid, 1, bias=True)
        self.fc2 = nn.Conv2d(max_mid, max_channels, 1, bias=True)
        self.fake_quant = False

    def mid_channels(self, channels: int) -> int:
        return make_divisible(channels // self.reduction, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.size(1)
        mid = self.mid_channels(channels)
        y = x.mean((2, 3), keepdim=True)
        y = F.relu(_conv(y, self.fc1.weight[:mid, :channels], self.fake_quant, bias=self.fc1.bias[:mid]))
        y = _conv(y, self.fc2.weight[:channels, :mid], self.fake_quant, bias=self.fc2.bias[:channels])
        return x * F.hardsigmoid(y)


class DynamicLinear(nn.Module):
    """Linear layer whose input features are a leading slice of the largest."""

    def __init__(self, max_in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.linear = nn.Linear(max_in_features, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.linear.weight[:, : x.size(1)], self.linear.bias)
