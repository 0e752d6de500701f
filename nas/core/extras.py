"""Optional dependencies, installed as extras: a clear error naming the extra when one is missing.

``pip install 'hwnas[ray]'`` (Ray Tune executor), ``[serve]`` (HTTP service), ``[export]``
(ONNX export and ONNX Runtime timing), ``[gpu]`` (Triton kernels); ``[dev]`` installs them all
with the test tools (the README's commands do).
"""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS = {
    "ray": ("ray", "ray.tune"),
    "serve": ("fastapi", "uvicorn"),
    "export": ("onnx", "onnxruntime", "onnxscript"),
    "gpu": ("triton",),
}


class MissingExtra(ImportError):
    """An optional dependency a feature needs is not installed."""


def require_extra(extra: str, what: str) -> None:
    """Raises :class:`MissingExtra` naming ``pip install 'hwnas[extra]'`` when ``extra``'s modules are missing."""
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingExtra(
                f"{what} needs the optional dependency {module!r}, which is not installed; "
                f"install it with: pip install 'hwnas[{extra}]'"
            ) from exc


def import_extra(module: str, extra: str, what: str) -> ModuleType:
    """``importlib.import_module(module)``, or :class:`MissingExtra` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(
            f"{what} needs the optional dependency {module!r}, which is not installed; "
            f"install it with: pip install 'hwnas[{extra}]'"
        ) from exc


__all__ = ["EXTRAS", "MissingExtra", "import_extra", "require_extra"]
