"""Errors shared by every layer (no imports of ours)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


__all__ = ["ConfigError"]
