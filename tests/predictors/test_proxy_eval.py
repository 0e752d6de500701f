"""Proxy evaluation on NB201: rank metrics, resumable scoring, agreement with NASLib's per-arch values."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from nas.testing.nb201 import write_nb201_tables
from predictors.proxy_eval import rank_metrics, score_nb201
from predictors.zero_cost import score
from search_spaces.nb201.network import NB201Network
from search_spaces.nb201.space import NB201Space


def test_rank_metrics() -> None:
    assert rank_metrics([1, 2, 3, 4], [10, 20, 30, 40]) == {"spearman": 1.0, "kendall": 1.0, "n": 4}
    assert rank_metrics([4, 3, 2, 1], [10, 20, 30, 40])["spearman"] == -1.0
    assert rank_metrics([1, float("nan"), 3, 4], [1, 2, 3, 4])["n"] == 3
    assert math.isnan(rank_metrics([1, float("nan")], [1, 2])["spearman"])
    # -inf (no input-output path) is the worst score, kept and ranked last, not dropped
    with_dead = rank_metrics([float("-inf"), float("-inf"), 1, 2, 3], [10, 10, 30, 40, 50])
    assert with_dead["n"] == 5 and with_dead["spearman"] == 1.0


def test_score_nb201_resumes_from_its_jsonl(tmp_path: Path) -> None:
    space = NB201Space()
    acc, _ = write_nb201_tables(tmp_path, space)  # accuracy = index / 1000 percent
    batch = (torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]))
    results = tmp_path / "scores.jsonl"
    first = score_nb201(["params", "flops"], 5, acc, batch, seed=3, results_path=results, progress=False)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(rows) == 5 and first["archs"] == 5
    for row in rows:
        assert row["accuracy"] == pytest.approx(row["index"] / 100_000)  # as a fraction
        net = NB201Network(row["arch"])
        assert row["scores"]["params"] == sum(p.numel() for p in net.parameters())
    # a file written when accuracy was stored in percent resumes with the accuracy looked up again
    results.write_text("".join(json.dumps({**r, "accuracy": r["accuracy"] * 100}) + "\n" for r in rows))
    again = score_nb201(["params", "flops"], 5, acc, batch, seed=3, results_path=results, progress=False)
    assert len(results.read_text().splitlines()) == 5  # nothing recomputed
    for name, metrics in first["proxies"].items():
        for key in ("spearman", "kendall", "n"):
            assert again["proxies"][name][key] == metrics[key]
    with pytest.raises(ValueError, match="unknown"):
        score_nb201(["magic"], 5, acc, batch)


def test_agreement_with_naslib_per_arch_values(shared_data: Path) -> None:
    """Our params equal NASLib's exactly; our synflow ranks archs as NASLib's does."""
    with (shared_data / "zero_cost" / "nb201_zc12_725archs.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["task"] == "cifar10"][:40]
    space = NB201Space()
    ours, theirs = [], []
    for i, row in enumerate(rows):
        arch = space.from_string(row["arch_str"])
        torch.manual_seed(i)
        net = NB201Network(arch, num_classes=10)
        assert score("params", net, None) / 1e6 == pytest.approx(float(row["params"]), abs=1e-6)
        ours.append(score("synflow", net, torch.zeros(1, 3, 32, 32)))
        theirs.append(float(row["synflow"]))
    rho = spearmanr(ours, theirs).statistic
    assert rho > 0.9, rho
    assert np.median(np.abs(np.array(ours) - np.array(theirs))) < 3.0  # both log-space, same init family


def test_named_archs_in_worker_processes_score_as_one_process(tmp_path: Path) -> None:
    """indices= scores exactly those archs; two worker processes give the same scores as one."""
    space = NB201Space()
    acc, _ = write_nb201_tables(tmp_path, space)
    torch.manual_seed(0)
    batch = (torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
    names = ["snip", "grad_norm", "synflow", "params"]
    indices = [7, 4811, 15000, 123]
    one = score_nb201(names, 0, acc, batch, indices=indices, results_path=tmp_path / "one.jsonl", progress=False)
    two = score_nb201(names, 0, acc, batch, indices=indices, results_path=tmp_path / "two.jsonl", progress=False,
                      workers=2)  # fmt: skip
    read = lambda p: {r["index"]: r["scores"] for r in map(json.loads, p.read_text().splitlines())}  # noqa: E731
    assert set(read(tmp_path / "one.jsonl")) == set(indices)
    first, second = read(tmp_path / "one.jsonl"), read(tmp_path / "two.jsonl")
    for index in indices:
        for name in names:
            assert second[index][name] == pytest.approx(first[index][name], rel=1e-4), (index, name)
    assert one["archs"] == two["archs"] == 4
    with pytest.raises(ValueError, match="distinct NB201 indices"):
        score_nb201(names, 0, acc, batch, indices=[1, 1])
