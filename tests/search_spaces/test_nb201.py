"""NAS-Bench-201 space: string and index forms, NASLib coding, tabular evaluator."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from nas.core.space import create_space
from nas.testing.nb201 import write_nb201_tables
from search_spaces.nb201.space import NUM_ARCHS, NB201Space
from search_spaces.nb201.tabular import TabularNB201Evaluator


@pytest.fixture(scope="module")
def space() -> NB201Space:
    return create_space("nb201")  # type: ignore[return-value]


def test_index_string_round_trip_for_all_archs(space: NB201Space) -> None:
    seen = set()
    for index in range(NUM_ARCHS):
        arch = space.from_index(index)
        text = space.to_string(arch)
        assert space.from_string(text) == arch
        assert space.index(arch) == index
        seen.add(arch.arch_id)
    assert len(seen) == NUM_ARCHS == space.size()
    assert space.to_string(space.from_index(0)) == (
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    )


def test_space_contract(space: NB201Space) -> None:
    assert space.max_arch()["ops"] == ["nor_conv_3x3"] * 6
    assert space.min_arch()["ops"] == ["none"] * 6
    rng = np.random.default_rng(0)
    for _ in range(50):
        arch = space.sample(rng)
        assert space.decode(space.encode(arch)) == arch
        assert space.make(space.mutate(arch, rng, 0.5).to_dict())
    assert space.onehot(space.max_arch()).sum() == 6


def test_path_features_count_input_output_paths(space: NB201Space) -> None:
    # edges 0->1, 0->2, 1->2, 0->3, 1->3, 2->3: paths 0-1-3 (conv3, conv1) and 0-1-2-3 (conv3, skip, pool)
    arch = space.make({"ops": ["nor_conv_3x3", "none", "skip_connect", "none", "nor_conv_1x1", "avg_pool_3x3"]})
    paths = space.features(arch, "path")
    assert paths.shape == (space.feature_size("path"),) == (4 + 16 + 64 + 1,)
    ops = ["skip_connect", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3"]
    two = 4 + ops.index("nor_conv_3x3") * 4 + ops.index("nor_conv_1x1")
    three = 20 + ops.index("nor_conv_3x3") * 16 + ops.index("skip_connect") * 4 + ops.index("avg_pool_3x3")
    assert np.flatnonzero(paths).tolist() == [two, three] and paths[-1] == 0
    full = space.features(space.max_arch(), "path")
    assert full[3] == 1 and full[4 + 15] == 2 and full[20 + 63] == 1 and full.sum() == 4
    cut = space.features(space.make({"ops": ["nor_conv_3x3"] * 3 + ["none", "none", "none"]}), "path")
    assert cut[:-1].sum() == 0 and cut[-1] == 1  # no input-output path: the "no path" flag
    dead = space.make({"ops": ["nor_conv_3x3"] * 3 + ["none", "none", "skip_connect"]})  # 0->1->3 cut, 1->2 used
    dead_edge = space.make({"ops": ["nor_conv_3x3", "none", "avg_pool_3x3", "skip_connect", "none", "none"]})
    assert np.array_equal(
        space.features(dead_edge, "path"),
        space.features(space.make({"ops": ["none"] * 3 + ["skip_connect", "none", "none"]}), "path"),
    )
    assert not np.array_equal(space.features(dead, "path"), cut)


def test_summary_features_describe_the_live_cell(space: NB201Space) -> None:
    # columns: live 3x3 convs, 1x1 convs, pools, skips; paths; most convs on a path; identity path; no path
    assert space.encodings[0] == "summary" and space.num_features == 8
    arch = space.make({"ops": ["nor_conv_3x3", "none", "skip_connect", "none", "nor_conv_1x1", "avg_pool_3x3"]})
    assert space.features(arch).tolist() == [1, 1, 1, 1, 2, 2, 0, 0]
    assert space.features(space.max_arch()).tolist() == [6, 0, 0, 0, 4, 3, 0, 0]
    assert space.features(space.min_arch()).tolist() == [0, 0, 0, 0, 0, 0, 0, 1]
    residual = space.make({"ops": ["none", "nor_conv_3x3", "none", "skip_connect", "none", "nor_conv_1x1"]})
    assert space.features(residual).tolist() == [1, 1, 0, 1, 2, 2, 1, 0]
    # a conv on the dead edge 0->1 (node 1 feeds nothing) computes nothing: same features
    dead = space.make({"ops": ["nor_conv_3x3", "nor_conv_3x3", "none", "skip_connect", "none", "nor_conv_1x1"]})
    assert np.array_equal(space.features(dead), space.features(residual))
    assert space.features(arch, "onehot").sum() == 6
    with pytest.raises(ValueError, match="no feature encoding 'paths'; choose one of summary, path, onehot"):
        space.features(arch, "paths")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|", "expected 3 nodes"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", r"ops\[0\] \(edge 0->1\): 'conv' is not an allowed value"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "malformed edge 'none~1'"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 inputs"),
    ],
)
def test_bad_strings(space: NB201Space, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        space.from_string(text)


def test_bad_dicts_and_indices(space: NB201Space) -> None:
    with pytest.raises(ValueError, match="ops: expected a list of 6 op names"):
        space.make({"ops": ["none"] * 5})
    with pytest.raises(ValueError, match="unknown arch keys"):
        space.make({"ops": ["none"] * 6, "cells": 5})
    with pytest.raises(ValueError, match="not a NAS-Bench-201 index"):
        space.from_index(NUM_ARCHS)
    with pytest.raises(ValueError, match="naslib encoding"):
        space.from_naslib((0, 1, 2))


def test_tabular_evaluator_on_written_tables(tmp_path: Path, space: NB201Space) -> None:
    acc, lat = write_nb201_tables(tmp_path, space)
    ev = TabularNB201Evaluator(acc, "cifar100", latency_csv=lat, devices=["cpu"])
    assert ev.metrics == ("accuracy", "latency_ms@cpu")
    results = ev.evaluate([space.from_index(7), space.from_index(15000)])
    # the written column is in percent (up to 7.8): reported as a fraction
    expected = [{"accuracy": 7 / 200000, "latency_ms@cpu": 0.07}, {"accuracy": 0.075, "latency_ms@cpu": 150.0}]
    assert [r["accuracy"] for r in results] == pytest.approx([e["accuracy"] for e in expected])
    assert [r["latency_ms@cpu"] for r in results] == [e["latency_ms@cpu"] for e in expected]
    with pytest.raises(ValueError, match=r"devices: 'tpu' not columns of .*lat"):
        TabularNB201Evaluator(acc, latency_csv=lat, devices=["tpu"])
    with pytest.raises(ValueError, match=r"dataset: .* has no column 'mnist'"):
        TabularNB201Evaluator(acc, "mnist")
    with pytest.raises(ValueError, match=r"accuracy_csv: file .* not found"):
        TabularNB201Evaluator(tmp_path / "missing.csv")
    lines = acc.read_text().splitlines()
    lines[5] = lines[5].replace("~0|+|", "~1|+|", 1)
    acc.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"acc\.csv, line 6: column ArchitectureString is not an NB201 arch string"):
        TabularNB201Evaluator(acc)


def test_against_shared_benchmark_files(shared_data: Path, space: NB201Space) -> None:
    acc_csv = shared_data / "nb201" / "nats_bench_tss_200ep.csv"
    lat_csv = shared_data / "nb201" / "nb201_latency_help.csv"
    with acc_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for index, row in enumerate(rows):
        assert space.index(space.from_string(row["ArchitectureString"])) == index
    ev = TabularNB201Evaluator(acc_csv, "cifar10", latency_csv=lat_csv, devices=["gold_6240", "pixel3"])
    results = ev.evaluate([space.from_index(i) for i in range(NUM_ARCHS)])
    accuracies = [r["accuracy"] for r in results]
    assert max(accuracies) == pytest.approx(0.94373, abs=1e-5)  # the published CIFAR-10 optimum, as a fraction
    best = int(np.argmax(accuracies))
    assert float(rows[best]["CIFAR10TestAccuracy200Epochs"]) / 100 == pytest.approx(accuracies[best], rel=1e-12)
    result = results[best]
    assert result["latency_ms@gold_6240"] > 0


def test_naslib_coding_matches_zero_cost_file(shared_data: Path, space: NB201Space) -> None:
    with (shared_data / "zero_cost" / "nb201_zc12_725archs.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        coding = tuple(int(c) for c in row["arch"].strip("()").split(","))
        arch = space.from_naslib(coding)
        assert space.to_string(arch) == row["arch_str"]
        assert space.index(arch) == int(row["nb201_index"])


def test_static_config_costs_equal_the_network() -> None:
    """MACs/params of the static config equal the benchmark network's (FLOP counter, parameter count)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from nas.core.space import create_space
    from predictors.flops import count_cost
    from search_spaces.nb201.network import NB201Network

    space = create_space("nb201")
    rng = np.random.default_rng(4)
    empty = space.from_string("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    for arch in [empty, *(space.sample(rng) for _ in range(4))]:
        cost = count_cost(space.static_config(arch))
        net = NB201Network(arch)
        with FlopCounterMode(display=False) as counter:
            net(torch.randn(1, 3, 32, 32))
        assert cost.macs == counter.get_total_flops() // 2
        assert cost.params == sum(p.numel() for p in net.parameters())
