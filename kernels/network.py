"""Inference runner of a whole static OFA MobileNetV3 subnet on the Triton kernels.

MBConv blocks run on :class:`kernels.mbconv.MBConvRunner`; the final expand and the
feature mix (1x1 convolutions) on the pointwise kernel; the stem's full 3x3
convolution, the global pooling and the classifier stay on torch. This is what a
CUDA latency table built with ``backend="triton"`` is validated against end to end,
so that table entries and whole-network measurements come from the same runtime.
"""

from __future__ import annotations

import torch

from kernels.mbconv import MBConvRunner, fold_conv


class NetworkRunner:
    """Runs a ``StaticOFAMobileNetV3`` (``search_spaces.ofa_mbv3.static``) with eval semantics.

    Args:
        net: the static network; BatchNorms are folded once with their running statistics.
        dtype: float32, float16 or bfloat16 (weights are cast once).
        device: where the weights go (``cuda``, or ``cpu`` under the interpreter).
    """

    def __init__(self, net: torch.nn.Module, dtype: torch.dtype = torch.float32, device: str | None = None) -> None:
        net = net.eval()
        self.dtype = dtype
        self.stem = net.stem.to(device=device, dtype=dtype).to(memory_format=torch.channels_last)
        self.blocks = [MBConvRunner(block, dtype, device) for block in net.blocks]
        self.final_expand = None if net.final_expand is None else fold_conv(net.final_expand, dtype, device)
        self.feature_mix = fold_conv(net.feature_mix, dtype, device)
        self.feature_mix_before_pool = bool(net.feature_mix_before_pool)
        self.classifier = net.classifier.to(device=device, dtype=dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, classes]`` of NCHW ``x`` (any memory format), in the runner's dtype."""
        from kernels.pointwise.op import pointwise_conv

        with torch.no_grad():
            y = self.stem(x.to(self.dtype).contiguous(memory_format=torch.channels_last))
            for block in self.blocks:
                y = block(y)
            f, m = self.final_expand, self.feature_mix
            if f is not None:
                y = pointwise_conv(y, f.weight, f.scale, f.shift, f.act)
            if self.feature_mix_before_pool:
                y = pointwise_conv(y, m.weight, m.scale, m.shift, m.act).mean((2, 3), keepdim=True)
            else:
                y = pointwise_conv(y.mean((2, 3), keepdim=True), m.weight, m.scale, m.shift, m.act)
            return self.classifier(torch.flatten(y, 1))

    # ``measure_module`` moves and switches modes; the runner is already placed and in eval.
    def to(self, *args: object, **kwargs: object) -> NetworkRunner:
        return self

    def eval(self) -> NetworkRunner:
        return self
