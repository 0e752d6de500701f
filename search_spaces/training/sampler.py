"""Subnets a progressive-shrinking phase samples: each gene draws from its elastic dimension's open choices."""

from __future__ import annotations

from typing import Any

import numpy as np

from nas.core.arch import Arch
from nas.core.capabilities import SupernetSpace


class PhaseSampler:
    """Samples subnets from the choices a phase opens (per elastic dimension of the space).

    Each gene draws, in gene order, from its dimension's open choices; a gene with none of them
    (a fixed-depth stage whose only depth the phase has not opened, or a precision gene, which
    no phase opens) keeps its own choices.
    """

    def __init__(self, space: SupernetSpace, choices: dict[str, tuple[int, ...]]) -> None:
        self.space: Any = space
        self.choices = choices
        self._options: list[tuple[int, ...]] = []
        for gene in self.space.genes:
            open_values = choices.get(space.gene_dimension(gene.name), ())
            options = tuple(i for i, c in enumerate(gene.choices) if c in open_values)
            self._options.append(options or tuple(range(len(gene.choices))))

    def with_resolution(self, arch: Arch, resolution: int) -> Arch:
        """``arch`` at ``resolution`` when the phase opens it (resolution genes), else ``arch``."""
        vector = list(self.space.encode(arch))
        for i, gene in enumerate(self.space.genes):
            if self.space.gene_dimension(gene.name) == "r" and resolution in gene.choices:
                index = gene.choices.index(resolution)
                if index in self._options[i]:
                    vector[i] = index
        return self.space.decode(vector)

    def _arch(self, pick: Any) -> Arch:
        return self.space.decode([pick(options) for options in self._options])

    def sample(self, rng: np.random.Generator) -> Arch:
        return self._arch(lambda options: int(options[rng.integers(len(options))]))

    def largest(self) -> Arch:
        return self._arch(lambda options: options[-1])

    def smallest(self) -> Arch:
        return self._arch(lambda options: options[0])
