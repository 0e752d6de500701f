"""Triton kernels for MBConv inference (pointwise GEMM, depthwise conv, squeeze-and-excitation).

One folder per op: ``kernel.py`` (the jitted kernel), ``op.py`` (a thin wrapper that
validates inputs and launches) and ``reference.py`` (pure torch, what tests compare
against). :mod:`kernels.mbconv` composes them into a block runner. Nothing runs or
compiles at import; on a CPU the kernels run under Triton's interpreter when
``TRITON_INTERPRET=1`` is set before triton is imported (the tests do this).
"""

from __future__ import annotations

import os

ACTIVATIONS = {"none": 0, "relu": 1, "h_swish": 2, "relu6": 3}


def interpreted() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def autotune_bench(fn: object, quantiles: tuple[float, ...] | None = None) -> object:
    """How the autotuners time each candidate configuration: 5 ms warm-up and 25 ms of repeats
    (Triton's default is 25 + 100 ms). Every new shape is tuned once per process, and a latency
    table has hundreds of shapes: at the default this took most of a table's build."""
    from triton.testing import do_bench

    return do_bench(fn, warmup=5, rep=25, quantiles=quantiles)


def available() -> bool:
    """Whether the kernels can run here: a CUDA GPU with Triton, or the interpreter."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    if interpreted():
        return True
    import torch

    return torch.cuda.is_available()


class KernelInputError(ValueError):
    """A tensor given to a kernel wrapper has the wrong shape, dtype or device."""


def activation_code(name: str | None) -> int:
    key = "none" if name is None else name
    if key not in ACTIVATIONS:
        raise KernelInputError(f"act: unknown activation {name!r}; use {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[key]


def check_tensor(name: str, t: object, dim: int | None = None, dtypes: tuple | None = None) -> None:
    import torch

    if not isinstance(t, torch.Tensor):
        raise KernelInputError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if dim is not None and t.dim() != dim:
        raise KernelInputError(f"{name}: expected {dim} dimensions, got shape {tuple(t.shape)}")
    if dtypes is not None and t.dtype not in dtypes:
        raise KernelInputError(f"{name}: dtype {t.dtype} not supported; use one of {[str(d) for d in dtypes]}")
    if not interpreted() and t.device.type != "cuda":
        raise KernelInputError(f"{name}: on {t.device}; the kernels need CUDA tensors (or TRITON_INTERPRET=1)")
