"""A plug-in written outside the repository: an installed package whose entry points register a
searcher and a proxy, tested by its own test file with the contract classes of nas.testing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PLUGIN = '''
"""An example hwnas plug-in: a local-search searcher and a weight-norm proxy."""

from nas.searchers.base import Searcher


class NeighbourSearcher(Searcher):
    """Random archs until ``warmup`` trials completed, then one-gene mutations of the best one."""

    kind = "neighbour"

    def defaults(self):
        return {"warmup": 6}

    def _propose(self, n):
        rng = self.rng(self.next_id)
        done = self.completed()
        if len(done) < self.settings["warmup"]:
            return self.space.sample_unique(n, rng, max_draws=1000)
        best = max(done, key=lambda o: o.metrics[self.objectives[0].metric])
        return [self.space.mutate(best.arch, rng, prob=0.3) for _ in range(n * 4)]


def weight_norm(model, batch=None, loss_fn=None):
    """Sum of the L2 norms of the weights (bigger = better), without touching the model."""
    import torch

    with torch.no_grad():
        return float(sum(p.norm() for p in model.parameters()))
'''

PLUGIN_TESTS = """
from nas.core import registry
from nas.testing import ProxyContract, SearcherContract


class TestNeighbourSearcher(SearcherContract):
    kind = "neighbour"
    settings = {"warmup": 4}


class TestWeightNorm(ProxyContract):
    proxy = "weight_norm"


def test_found_through_entry_points():
    assert "neighbour" in registry.plugin_names("searcher")
    assert "weight_norm" in registry.plugin_names("proxy")
"""

ENTRY_POINTS = """\
[hwnas.searchers]
neighbour = hwnas_example_plugin:NeighbourSearcher

[hwnas.proxies]
weight_norm = hwnas_example_plugin:weight_norm
"""


def test_a_plugin_package_registers_and_passes_the_contracts(tmp_path: Path) -> None:
    site = tmp_path / "site"
    package = site / "hwnas_example_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "hwnas_example_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hwnas-example-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    tests = tmp_path / "plugin_tests"
    tests.mkdir()
    (tests / "test_plugin.py").write_text(textwrap.dedent(PLUGIN_TESTS))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(tests), "-q", "-p", "no:cacheprovider", "--rootdir", str(tests)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "9 passed" in run.stdout, run.stdout[-2000:]  # 5 searcher + 3 proxy contract tests + discovery
