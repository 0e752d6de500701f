"""The built-in spaces, evaluators and proxies run the contract classes plug-in authors use (nas.testing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.core.evaluator import Evaluator
from nas.core.registry import BUILTINS
from nas.core.space import SearchSpace, create_space
from nas.evaluators import build_evaluator
from nas.testing import EvaluatorContract, ProxyContract, SpaceContract, ToyEvaluator, ToySpace
from nas.testing.nb201 import write_nb201_tables


class TestOFAMobileNetV3Space(SpaceContract):
    space_name = "ofa_mbv3"

    def make_space(self) -> SearchSpace:
        return create_space("ofa_mbv3", config="cifar")


class TestOFAResNet50Space(SpaceContract):
    space_name = "ofa_resnet50"


class TestViTSpace(SpaceContract):
    space_name = "vit"


class TestNB201Space(SpaceContract):
    space_name = "nb201"


class TestToySpace(SpaceContract):
    def make_space(self) -> SearchSpace:
        return ToySpace()


class TestToyEvaluator(EvaluatorContract):
    def make_space(self) -> SearchSpace:
        return ToySpace()

    def make_evaluator(self, space: SearchSpace) -> Evaluator:
        return ToyEvaluator(space)


class TestTabularEvaluator(EvaluatorContract):
    @pytest.fixture(autouse=True)
    def _tables(self, tmp_path: Path) -> None:
        self.acc, self.lat = write_nb201_tables(tmp_path, create_space("nb201"))

    def make_space(self) -> SearchSpace:
        return create_space("nb201")

    def make_evaluator(self, space: SearchSpace) -> Evaluator:
        spec = {"kind": "tabular", "accuracy_csv": str(self.acc), "latency_csv": str(self.lat), "devices": ["cpu"]}
        return build_evaluator(spec, space)


class TestZeroCostEvaluator(EvaluatorContract):
    archs = 2

    def make_space(self) -> SearchSpace:
        return create_space("nb201")

    def make_evaluator(self, space: SearchSpace) -> Evaluator:
        return build_evaluator({"kind": "zero_cost", "proxy": "synflow", "batch_size": 8}, space)


@pytest.fixture(params=sorted(BUILTINS["proxy"]))
def proxy_name(request: pytest.FixtureRequest) -> str:
    return request.param


class TestBuiltinProxies(ProxyContract):
    @pytest.fixture(autouse=True)
    def _proxy(self, proxy_name: str) -> None:
        self.proxy = proxy_name  # type: ignore[misc]
