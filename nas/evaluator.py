"""Evaluator interface: named metrics for a batch of archs (see DESIGN.md, "Evaluator")."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from nas.arch import Arch


class Evaluator(ABC):
    """Scores archs; every returned dict maps metric names to floats.

    Metric names follow the design: ``accuracy``, ``latency_ms@<device>``, ``flops``,
    ``params``, ... ``metrics`` lists what :meth:`evaluate` returns.
    """

    @property
    @abstractmethod
    def metrics(self) -> tuple[str, ...]:
        """Names of the metrics of every result."""

    @abstractmethod
    def evaluate(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        """One metrics dict per arch, in order."""
