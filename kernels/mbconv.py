"""Inference runner of a static MBConv block on the Triton kernels (BN folded once)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kernels.reference import fold_bn


@dataclass
class _Conv:
    weight: torch.Tensor
    scale: torch.Tensor
    shift: torch.Tensor
    act: str | None


def _act_name(module: torch.nn.Module) -> str | None:
    if isinstance(module, torch.nn.ReLU6):
        return "relu6"
    if isinstance(module, torch.nn.ReLU):
        return "relu"
    if isinstance(module, torch.nn.Hardswish):
        return "h_swish"
    if isinstance(module, torch.nn.Identity):
        return None
    raise ValueError(f"activation {type(module).__name__} has no kernel; use ReLU, ReLU6, Hardswish or Identity")


def fold_conv(layer: torch.nn.Module, dtype: torch.dtype, device: str | torch.device | None = None) -> _Conv:
    """A ``ConvBNAct`` as kernel operands: weight in ``dtype``, folded BN scale/shift in float32, on ``device``."""
    scale, shift = fold_bn(layer.bn, layer.conv.out_channels)
    return _Conv(
        layer.conv.weight.detach().to(device=device, dtype=dtype),
        scale.to(device=device),
        shift.to(device=device),
        _act_name(layer.act),
    )


class MBConvRunner:
    """Runs an ``MBConvBlock`` (``search_spaces.ofa_mbv3.static``) with the kernels, in eval semantics.

    Args:
        block: The static block (its BatchNorms are folded with their running statistics).
        dtype: float32, float16 or bfloat16 (weights are cast once).
        device: Where the weights go (``cuda``, or ``cpu`` under the interpreter).
    """

    def __init__(self, block: torch.nn.Module, dtype: torch.dtype = torch.float32, device: str | None = None) -> None:
        def place(t: torch.Tensor, cast: bool = True) -> torch.Tensor:
            return t.to(device=device, dtype=dtype if cast else torch.float32)

        self.dtype = dtype
        self.expand = fold_conv(block.expand, dtype, device) if block.expand is not None else None
        self.depthwise = fold_conv(block.depthwise, dtype, device)
        self.stride = block.depthwise.conv.stride[0]
        self.project = fold_conv(block.project, dtype, device)
        self.residual = block.residual
        self.se = None
        if block.se is not None:
            se = block.se
            self.se = tuple(
                place(t.detach(), cast) for t, cast in (
                    (se.fc1.weight, True), (se.fc1.bias, False), (se.fc2.weight, True), (se.fc2.bias, False),
                )
            )  # fmt: skip

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` NCHW or NHWC memory; returns channels-last memory in the runner's dtype."""
        from kernels.depthwise.op import depthwise_conv
        from kernels.pointwise.op import pointwise_conv
        from kernels.se.op import squeeze_excite

        x = x.to(self.dtype)
        y = x
        if self.expand is not None:
            e = self.expand
            y = pointwise_conv(y, e.weight, e.scale, e.shift, e.act)
        d = self.depthwise
        y = depthwise_conv(y, d.weight, d.scale, d.shift, self.stride, d.act)
        if self.se is not None:
            y = squeeze_excite(y, *self.se)
        p = self.project
        return pointwise_conv(y, p.weight, p.scale, p.shift, p.act, residual=x if self.residual else None)
