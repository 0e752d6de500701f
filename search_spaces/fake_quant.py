"""Fake int8 quantization for quantization-aware supernet training (straight-through estimator).

The forms match what ONNX Runtime's static QDQ quantization deploys (:mod:`predictors.quantization`):
weights int8, symmetric, one scale per output channel (per-channel scaling commutes with the
batch-norm folding done at export, so quantizing the raw convolution weight per channel is
quantizing the folded one); activations uint8, asymmetric, one scale per tensor, here from the
batch's own range (the deployed model calibrates it once on training images). Gradients pass
straight through inside the range and stop outside it (torch's fake-quantize operators).
"""

from __future__ import annotations

import torch

INT8_MAX = 127
UINT8_MAX = 255


def fake_quant_weight(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` (output channels first) rounded to int8 per output channel, symmetric."""
    reduce = tuple(range(1, weight.dim()))
    scale = weight.detach().abs().amax(dim=reduce).float().clamp(min=1e-8) / INT8_MAX
    zero = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -INT8_MAX, INT8_MAX)


def fake_quant_activation(x: torch.Tensor) -> torch.Tensor:
    """``x`` rounded to uint8 over its range (which always holds zero), one scale per tensor."""
    detached = x.detach()
    low = detached.min().float().clamp(max=0.0)
    high = detached.max().float().clamp(min=0.0)
    scale = ((high - low) / UINT8_MAX).clamp(min=1e-8).reshape(1)
    zero = torch.round(-low / scale).clamp(0, UINT8_MAX).to(torch.int32).reshape(1)
    return torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, UINT8_MAX)


__all__ = ["fake_quant_activation", "fake_quant_weight"]
