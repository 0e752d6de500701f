"""A small synthetic search problem: the toy space and evaluator the project's tests and plug-in authors use."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nas.core.arch import Arch
from nas.core.evaluator import CheapMetricsMixin, Evaluator
from nas.core.space import Gene, SearchSpace


class ToySpace(SearchSpace):
    """``n`` genes with ``k`` integer choices each (k**n archs)."""

    name = "toy"

    def __init__(self, n: int = 6, k: int = 5) -> None:
        # a plug-in bounds the options that size it, as the built-in spaces do (docs/SECURITY.md)
        for name, value in (("n", n), ("k", k)):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 64:
                raise ValueError(f"{name}: an integer in [1, 64], got {value!r}")
        self.n, self.k = n, k

    @property
    def space_id(self) -> str:
        return f"toy/{self.n}x{self.k}"

    @property
    def genes(self) -> tuple[Gene, ...]:
        return tuple(Gene(f"g{i}", tuple(range(self.k))) for i in range(self.n))

    def _to_dict(self, vector: Sequence[int]) -> dict[str, Any]:
        return {"x": [int(v) for v in vector]}

    def _from_dict(self, data: Mapping[str, Any]) -> list[int]:
        x = list(data["x"])
        if len(x) != self.n or not all(0 <= int(v) < self.k for v in x):
            raise ValueError(f"x: expected {self.n} integers in [0, {self.k})")
        return [int(v) for v in x]


def toy_metrics(arch: Arch) -> dict[str, float]:
    """Two conflicting objectives: ``acc`` grows with the genes, ``lat`` with their weighted sum."""
    x = arch["x"]
    acc = sum(min(v, 3) for v in x) + 0.1 * x[0]
    lat = sum((i + 1) * v for i, v in enumerate(x)) / 10 + 1.0
    return {"acc": float(acc), "lat": float(lat)}


class ToyEvaluator(CheapMetricsMixin, Evaluator):
    """Toy metrics; ``fail_when`` makes archs whose first gene equals it raise."""

    def __init__(
        self, space: SearchSpace | None = None, fail_when: int | None = None, sleep_s: float = 0.0, warn: bool = False
    ) -> None:
        self.fail_when = fail_when
        self.sleep_s = sleep_s
        self.warn = warn  # emit a warning and a log line per evaluation, as chatty libraries do
        self.calls: list[str] = []

    @property
    def metrics(self) -> tuple[str, ...]:
        return ("acc", "lat")

    @property
    def cheap_metrics(self) -> tuple[str, ...]:
        return ("lat",)

    def evaluate_cheap(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        return [{"lat": toy_metrics(a)["lat"]} for a in archs]

    def evaluate(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        import time

        out = []
        for arch in archs:
            time.sleep(self.sleep_s)
            if self.warn:
                import logging
                import warnings

                warnings.warn(f"toy warning for {arch.arch_id}", UserWarning, stacklevel=2)
                logging.getLogger("toy.library").warning("toy log line for %s", arch.arch_id)
            if self.fail_when is not None and arch["x"][0] == self.fail_when:
                raise RuntimeError(f"cannot evaluate arch with x0={self.fail_when}")
            self.calls.append(arch.arch_id)
            out.append(toy_metrics(arch))
        return out


def toy_job_spec(**overrides: Any) -> dict[str, Any]:
    """A job spec on the toy problem (CLI form: ``module:factory`` names), with ``overrides`` applied."""
    spec: dict[str, Any] = {
        "name": "toy",
        "space": {"name": "nas.testing.toy:ToySpace"},
        "evaluator": {"kind": "custom", "target": "nas.testing.toy:ToyEvaluator", "options": {"fail_when": 4}},
        "objectives": [{"metric": "acc", "direction": "max"}, {"metric": "lat", "direction": "min"}],
        "constraints": [{"metric": "lat", "max": 6.0}],
        "searcher": {"kind": "evolution", "settings": {"population": 8}},
        "budget": {"evaluations": 24},
        "reference": {"acc": 0.0, "lat": 10.0},
        "executor": "local",
        "parallelism": 3,
        "seed": 0,
    }
    spec.update(overrides)
    return spec
