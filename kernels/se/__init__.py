"""Squeeze-and-excitation: global average pool, FC + ReLU, FC + h-sigmoid, channel gating."""
