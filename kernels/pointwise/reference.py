"""Pure-torch pointwise convolution with folded BN, activation and residual."""

from __future__ import annotations

import torch

from kernels.reference import activation


def pointwise_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    act: str | None = None,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """``x`` NCHW (any memory format), ``weight`` [Cout, Cin] (or [Cout, Cin, 1, 1]); computed in float32."""
    w = weight.reshape(weight.shape[0], -1).float()
    y = torch.einsum("nchw,oc->nohw", x.float(), w)
    y = activation(y * scale.float()[None, :, None, None] + shift.float()[None, :, None, None], act)
    if residual is not None:
        y = y + residual.float()
    return y.to(x.dtype)
