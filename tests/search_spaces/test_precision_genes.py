"""Precision genes of the ofa_mbv3 space: the arch's ``q`` list, canonical form, static configs and op signatures."""

from __future__ import annotations

import numpy as np
import pytest

from nas.core.precision import check_precisions
from predictors.latency.ops import op_signatures, signature
from search_spaces.ofa_mbv3.space import OFAMobileNetV3Space


@pytest.fixture(scope="module")
def space() -> OFAMobileNetV3Space:
    return OFAMobileNetV3Space("mnist", precisions=["fp32", "int8"])


def test_precision_choices_are_checked_and_put_in_order() -> None:
    assert check_precisions(["fp32", "int8"]) == ("int8", "fp32")
    with pytest.raises(ValueError, match="unknown precision 'int4'"):
        check_precisions(["int4"])
    with pytest.raises(ValueError, match="each precision once"):
        check_precisions(["int8", "int8"])
    assert check_precisions(["fp32", "int8_dynamic"]) == ("int8_dynamic", "fp32")
    with pytest.raises(ValueError, match=r"one int8 form per space, static \(int8\) or dynamic \(int8_dynamic\)"):
        check_precisions(["int8", "int8_dynamic", "fp32"])
    with pytest.raises(ValueError, match="expected a list"):
        OFAMobileNetV3Space("mnist", precisions="int8")


def test_default_space_is_unchanged() -> None:
    plain = OFAMobileNetV3Space("mnist")
    assert plain.space_id == "ofa_mbv3/mnist"
    assert not any(g.name.startswith("q_") for g in plain.genes)
    assert "q" not in plain.sample(np.random.default_rng(0)).to_dict()
    assert all("precision" not in layer for layer in plain.static_config(plain.max_arch()))


def test_arch_carries_a_precision_per_block(space: OFAMobileNetV3Space) -> None:
    nb = space.config.num_blocks
    assert [g.name for g in space.genes if g.name.startswith("q_")] == [f"q_{i}" for i in range(nb)]
    assert space.space_id.startswith("ofa_mbv3/mnist+")
    arch = space.max_arch()
    assert arch["q"] == ["fp32"] * nb
    assert space.min_arch()["q"] == ["int8"] * nb
    # without q an arch is at the largest precision, as it is without r at the largest resolution
    data = {k: v for k, v in arch.to_dict().items() if k != "q"}
    assert space.make(data) == arch


def test_skipped_blocks_have_their_precision_reset(space: OFAMobileNetV3Space) -> None:
    nb = space.config.num_blocks
    data = space.max_arch().to_dict()
    data["d"] = [2] * space.config.num_stages
    data["q"] = ["fp32"] * nb
    other = dict(data, q=["fp32", "fp32", "fp32", "int8"] + ["fp32"] * (nb - 4))  # block 3 is skipped at d=2
    assert space.make(data) == space.make(other)
    # blocks 2 and 3 are skipped: reset to the first choice, as ks/e are
    assert space.make(data)["q"][:4] == ["fp32", "fp32", "int8", "int8"]
    active = dict(data, q=["int8"] + ["fp32"] * (nb - 1))
    assert space.make(active) != space.make(data)


def test_bad_precision_entries_name_the_fix(space: OFAMobileNetV3Space) -> None:
    data = space.max_arch().to_dict()
    with pytest.raises(ValueError, match=r"q\[1\] \(precision\): 'int4' is not an allowed value"):
        space.make(dict(data, q=["fp32", "int4"] + ["fp32"] * (space.config.num_blocks - 2)))
    with pytest.raises(ValueError, match=r"expected 12 precisions \(one per block"):
        space.make(dict(data, q=["fp32"]))
    plain = OFAMobileNetV3Space("mnist")
    with pytest.raises(ValueError, match="no precision genes; give the space the option precisions"):
        plain.make(data)


def test_static_config_layers_say_their_precision(space: OFAMobileNetV3Space) -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        arch = space.sample(rng)
        layers = space.static_config(arch)
        blocks = [layer for layer in layers if layer["op"] == "mbconv"][1:]  # the fixed first block is not elastic
        active = [arch["q"][offset + i] for offset, d in zip(space.config.stage_offsets, arch["d"]) for i in range(d)]
        assert [layer["precision"] for layer in blocks] == active
        fixed = [layer for layer in layers if layer not in blocks]
        assert {layer["precision"] for layer in fixed} == {"fp32"}
        # precision changes no shape: the layers are the float subnet's plus the precision
        float_layers = space.float_space().static_config(space.float_arch(arch))
        assert [{k: v for k, v in layer.items() if k != "precision"} for layer in layers] == float_layers


def test_float_space_is_the_supernets(space: OFAMobileNetV3Space) -> None:
    assert space.float_space().space_id == "ofa_mbv3/mnist"
    arch = space.sample(np.random.default_rng(1))
    floated = space.float_arch(arch)
    assert floated.space_id == "ofa_mbv3/mnist"
    assert {k: v for k, v in arch.to_dict().items() if k != "q"} == floated.to_dict()


def test_op_signatures_tell_precisions_apart_and_the_cover_holds_them(space: OFAMobileNetV3Space) -> None:
    signatures = op_signatures(space)
    blocks = [s for s, layer in signatures.items() if layer["op"] == "mbconv" and layer["name"] != "blocks.0"]
    by_precision = {q: sum(signatures[s]["precision"] == q for s in blocks) for q in ("int8", "fp32")}
    assert by_precision["int8"] == by_precision["fp32"] > 0
    rng = np.random.default_rng(5)
    for _ in range(30):
        for layer in space.static_config(space.sample(rng)):
            assert signature(layer) in signatures


def test_all_int8_space_and_search_operators(space: OFAMobileNetV3Space) -> None:
    only_int8 = OFAMobileNetV3Space("mnist", precisions=["int8"])
    arch = only_int8.sample(np.random.default_rng(0))
    assert set(arch["q"]) == {"int8"}
    assert {layer["precision"] for layer in only_int8.static_config(arch) if layer["name"].startswith("blocks.")} >= {
        "int8"
    }
    rng = np.random.default_rng(2)
    a, b = space.sample(rng), space.sample(rng)
    for child in (space.mutate(a, rng, 0.5), space.crossover(a, b, rng)):
        assert space.make(child.to_dict()) == child
    nk, ne, nq = 3, 3, 2
    assert space.features(a).shape == (space.config.num_blocks * (nk + ne + nq) + len(space.config.resolutions),)
    cfg = space.config
    expected = len(cfg.resolutions)
    for stage in range(cfg.num_stages):
        expected *= sum((nk * ne * nq) ** d for d in cfg.stage_depth_choices(stage))
    assert space.size() == expected


def test_ofa_resnet50_has_the_same_precision_genes() -> None:
    from search_spaces.ofa_resnet50.space import OFAResNetSpace

    assert OFAResNetSpace("cifar").space_id == "ofa_resnet50/cifar"  # the float space's id is unchanged
    space = OFAResNetSpace("cifar", precisions=["fp32", "int8"])
    nb = space.config.num_blocks
    assert space.float_space().space_id == "ofa_resnet50/cifar"
    arch = space.sample(np.random.default_rng(4))
    assert len(arch["q"]) == nb
    without_q = space.make({k: v for k, v in arch.to_dict().items() if k != "q"})
    assert without_q == space.make({**arch.to_dict(), "q": ["fp32"] * nb})  # no q: the largest precision
    blocks = [layer for layer in space.static_config(arch) if layer["op"] == "bottleneck"]
    assert [layer["precision"] for layer in blocks] == [arch["q"][int(layer["name"].split(".")[1])] for layer in blocks]
    assert {layer["precision"] for layer in space.static_config(arch) if layer["op"] != "bottleneck"} == {"fp32"}
    signatures = op_signatures(space)
    rng = np.random.default_rng(6)
    for _ in range(20):
        for layer in space.static_config(space.sample(rng)):
            assert signature(layer) in signatures
    with pytest.raises(ValueError, match="no precision genes"):
        OFAResNetSpace("cifar").make(arch.to_dict())


def test_int8_layers_of_a_resnet_subnet_are_found_in_its_onnx_graph() -> None:
    """The ResNet's static network names its modules by position: the quantizer is given those."""
    onnx = pytest.importorskip("onnx")
    import torch

    from predictors.onnx_backend import export_onnx
    from predictors.quantization import layer_nodes, module_names
    from search_spaces.ofa_resnet50.space import OFAResNetSpace

    space = OFAResNetSpace("cifar", precisions=["int8", "fp32"])
    arch = space.sample(np.random.default_rng(0))
    int8 = [layer["name"] for layer in space.static_config(arch) if layer["precision"] == "int8"]
    net = space.build_static(arch).eval()
    graph = onnx.load_from_string(export_onnx(net, torch.randn(1, 3, arch["r"], arch["r"]))).graph
    scopes = module_names(net, int8)
    nodes = layer_nodes(graph, scopes)
    convs = [n for n in graph.node if n.op_type == "Conv" and n.name in nodes]
    assert len(convs) >= 3 * len(int8)  # three convolutions per bottleneck (and the projections)
    assert {n.name.split("/")[1] for n in convs} == set(scopes)
