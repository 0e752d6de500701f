"""NAS-Bench-201 cell space and its tabular evaluator."""

from search_spaces.nb201.space import NB201Space

__all__ = ["NB201Space"]
