"""Depthwise k x k convolution (k = 3, 5, 7; stride 1, 2) with fused folded BN and activation."""
