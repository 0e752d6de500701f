"""Evaluator interface: named metrics for a batch of archs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from nas.core.arch import Arch


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


class CheapMetricsMixin:
    """Evaluators whose some metrics are cheap (table lookups, FLOPs) expose them separately.

    Predictor-in-the-loop search calls :meth:`evaluate_cheap` on thousands of
    candidates; it must not train, measure or run a network.
    """

    @property
    def cheap_metrics(self) -> tuple[str, ...]:
        return ()

    def evaluate_cheap(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        """The cheap metrics of archs; classes that declare cheap metrics must override this."""
        if self.cheap_metrics:
            raise NotImplementedError(f"{type(self).__name__} declares cheap metrics but no evaluate_cheap")
        return [{} for _ in archs]
