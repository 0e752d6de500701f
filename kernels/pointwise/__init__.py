"""1x1 convolution as a GEMM with fused folded-BN scale/shift, activation and residual."""
