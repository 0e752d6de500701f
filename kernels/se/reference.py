"""Pure-torch squeeze-and-excitation (as timm's SEModule with ReLU and h-sigmoid)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def se_reference(
    x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor
) -> torch.Tensor:
    """``x`` NCHW, ``w1`` [mid, C], ``w2`` [C, mid]; computed in float32."""
    pooled = x.float().mean((2, 3))
    hidden = F.relu(pooled @ w1.reshape(w1.shape[0], -1).float().T + b1.float())
    gate = F.hardsigmoid(hidden @ w2.reshape(w2.shape[0], -1).float().T + b2.float())
    return (x.float() * gate[:, :, None, None]).to(x.dtype)
