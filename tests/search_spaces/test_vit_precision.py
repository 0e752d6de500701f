"""Precision genes of the vit space: a precision per transformer layer (attention and MLP), its
notation, static configs and op signatures, and ONNX Runtime quantizing exactly those layers of a
timm model (whose node scopes are nested: ``/blocks/blocks.0/attn/qkv/MatMul``)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from nas.core.precision import int8_layers
from nas.testing.tiny_train import TINY_VIT_SPACE
from predictors.latency.ops import op_signatures, signature
from predictors.onnx_backend import export_onnx
from predictors.quantization import QuantSettings, _module_paths, onnx_logits, quantize_static_qdq
from search_spaces.vit.space import ViTSpace

ARCH = {"embed": 96, "depth": 4, "heads": [2, 3, 4, 4], "mlp": [2, 3, 4, 2]}


@pytest.fixture(scope="module")
def space() -> ViTSpace:
    return ViTSpace("cifar", precisions=["fp32", "int8"])


def test_default_space_is_unchanged() -> None:
    plain = ViTSpace("cifar")
    assert plain.space_id == "vit/cifar" and plain.precision_choices == ()
    assert "q" not in plain.sample(np.random.default_rng(0)).to_dict()
    assert all("precision" not in layer for layer in plain.static_config(plain.max_arch()))
    with pytest.raises(ValueError, match=r"q: this space has no precision genes; give the space the option"):
        plain.make({**ARCH, "q": ["int8"] * 4})


def test_arch_carries_a_precision_per_layer(space: ViTSpace) -> None:
    n = space.config.max_depth
    assert space.space_id.startswith("vit/cifar+")
    assert [g.name for g in space.genes if g.name.startswith("q_")] == [f"q_{i}" for i in range(n)]
    assert space.max_arch()["q"] == ["fp32"] * n and space.min_arch()["q"] == ["int8"] * n
    # without q: the largest precision (the skipped layers reset to the first choice, as heads are)
    assert space.make(ARCH)["q"] == ["fp32"] * 4 + ["int8"] * (n - 4)
    # a list of `depth` entries is padded like heads and mlp; skipped layers are reset
    short = space.make({**ARCH, "q": ["int8", "fp32", "int8", "int8"]})
    assert short["q"] == ["int8", "fp32", "int8", "int8", "int8", "int8"]
    assert space.make({**ARCH, "q": ["int8", "fp32", "int8", "int8", "fp32", "int8"]}) == short
    assert space.size() == ViTSpace("cifar").size() // sum(9**d for d in (4, 5, 6)) * sum(18**d for d in (4, 5, 6))
    with pytest.raises(ValueError, match=r"q\[1\] \(precision\): 'int4' is not an allowed value"):
        space.make({**ARCH, "q": ["int8", "int4", "fp32", "fp32"]})
    with pytest.raises(ValueError, match=r"q: expected 6 precisions"):
        space.make({**ARCH, "q": "int8"})
    with pytest.raises(ValueError, match=r"wid: elastic width is not part of this space"):
        space.make({**ARCH, "wid": None})


def test_notation_shows_and_reads_the_precisions(space: ViTSpace) -> None:
    arch = space.make({**ARCH, "q": ["int8", "fp32", "int8", "int8"]})
    text = space.to_string(arch)
    assert text == "E96 D4 | h 2 3 4 4 | m 2 3 4 2 | q int8 fp32 int8 int8"
    assert space.from_string(text) == arch
    assert space.from_string("E96 D4 | h 2 3 4 4 | m 2 3 4 2")["q"][:4] == ["fp32"] * 4  # q left out: fp32
    with pytest.raises(ValueError, match=r"arch string: expected .*\| q <precisions...>"):
        space.from_string("E96 D4 | h 2 3 4 4 | m 2 3 4 2 | x int8")
    with pytest.raises(ValueError, match=r"q: this space has no precision genes"):
        ViTSpace("cifar").from_string(text)
    for _ in range(20):  # every sampled arch reads back
        sampled = space.sample(np.random.default_rng(_))
        assert space.from_string(space.to_string(sampled)) == sampled


def test_static_config_and_op_signatures(space: ViTSpace) -> None:
    arch = space.make({**ARCH, "q": ["int8", "fp32", "int8", "int8"]})
    layers = space.static_config(arch)
    assert {layer["name"]: layer["precision"] for layer in layers if layer["precision"] == "int8"} == {
        f"blocks.{i}.{half}": "int8" for i in (0, 2, 3) for half in ("attn", "mlp")
    }
    assert [
        layer["precision"] for layer in layers if layer["op"] in ("vit_patch_embed", "vit_norm_pool", "linear")
    ] == ["fp32"] * 3
    assert int8_layers(space, arch) == [f"blocks.{i}.{half}" for i in (0, 2, 3) for half in ("attn", "mlp")]
    # the same layer in the two precisions is two ops; the cover holds every op of sampled archs
    int8_attn = signature(layers[1])
    fp32_attn = signature(space.static_config(space.make(ARCH))[1])
    assert int8_attn != fp32_attn
    covered = op_signatures(space)
    halves = [layer for layer in covered.values() if layer["op"] in ("vit_attention", "vit_mlp")]
    assert sum(layer["precision"] == "int8" for layer in halves) == sum(
        layer["precision"] == "fp32" for layer in halves
    )
    rng = np.random.default_rng(0)
    for _ in range(30):
        assert all(signature(layer) in covered for layer in space.static_config(space.sample(rng)))
    # the float space's supernet serves it, and the float arch drops q
    assert space.float_space().space_id == "vit/cifar"
    assert "q" not in space.float_arch(arch).to_dict()


def _int8_matmul_layers(model: bytes, layers: list[str]) -> set[str]:
    """The layers whose MatMul/Gemm weights reach them through a DequantizeLinear of an int8 initializer."""
    graph = onnx.load_from_string(model).graph
    int8 = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.INT8}
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in int8}
    found = set()
    for node in graph.node:
        if node.op_type in ("MatMul", "Gemm") and any(x in dequantized for x in node.input):
            found.update(path for path in _module_paths(node.name) if path in layers)
    return found


def test_only_the_int8_layers_of_a_timm_subnet_are_quantized() -> None:
    space = ViTSpace("cifar", **TINY_VIT_SPACE["options"], precisions=["int8", "fp32"])
    arch = space.make({"embed": 24, "depth": 2, "heads": [1, 2], "mlp": [1, 2], "q": ["fp32", "int8"]})
    names = [layer["name"] for layer in space.static_config(arch)]
    int8 = int8_layers(space, arch)
    assert int8 == ["blocks.1.attn", "blocks.1.mlp"]
    torch.manual_seed(0)
    net = space.build_static(arch).eval()
    x = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    model = export_onnx(net, x, dynamic_batch=True)
    mixed = quantize_static_qdq(model, [x.numpy()], QuantSettings(images=8), int8)
    assert _int8_matmul_layers(mixed, names) == set(int8)
    whole = quantize_static_qdq(model, [x.numpy()], QuantSettings(images=8))
    assert _int8_matmul_layers(whole, names) == {"blocks.0.attn", "blocks.0.mlp", *int8, "head"}
    with torch.no_grad():
        reference = net(x).numpy()
    error = np.abs(onnx_logits(mixed, [x.numpy()]) - reference).max()
    assert 0 < error < 0.25 * np.abs(reference).max()


def _integer_kernel_layers(model: bytes, layers: list[str]) -> set[str]:
    """The layers whose nodes became ONNX Runtime's dynamic integer kernels (MatMulInteger, ConvInteger)."""
    graph = onnx.load_from_string(model).graph
    found = set()
    for node in graph.node:
        if node.op_type in ("MatMulInteger", "ConvInteger"):
            found.update(path for path in _module_paths(node.name) if path in layers)
    return found


def test_dynamic_int8_layers_quantize_only_their_linear_layers() -> None:
    """``int8_dynamic``: ONNX Runtime's dynamic quantizer (no calibration) on exactly the layers
    the arch names; the latency table times those ops apart from static int8 and float ones."""
    from nas.core.precision import layers_dynamic
    from predictors.quantization import count_quantized, int8_model

    space = ViTSpace("cifar", **TINY_VIT_SPACE["options"], precisions=["int8_dynamic", "fp32"])
    arch = space.make({"embed": 24, "depth": 2, "heads": [1, 2], "mlp": [1, 2], "q": ["int8_dynamic", "fp32"]})
    layers = space.static_config(arch)
    names = [layer["name"] for layer in layers]
    assert layers_dynamic(layers) and int8_layers(space, arch) == ["blocks.0.attn", "blocks.0.mlp"]
    torch.manual_seed(0)
    net = space.build_static(arch).eval()
    x = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    model = int8_model(net, x, int8_layers(space, arch), dynamic=True)
    counts = count_quantized(model)
    assert (
        counts["quantize"] == 0 and counts["dynamic_quantize"] > 0
    )  # no QDQ pairs: activations quantized as they come
    assert _integer_kernel_layers(model, names) == {"blocks.0.attn", "blocks.0.mlp"}
    with torch.no_grad():
        reference = net(x).numpy()
    error = np.abs(onnx_logits(model, [x.numpy()]) - reference).max()
    assert 0 < error < 0.25 * np.abs(reference).max()
    static = ViTSpace("cifar", **TINY_VIT_SPACE["options"], precisions=["int8", "fp32"])
    signatures = {signature(layer) for layer in layers}
    same = static.static_config(static.make({**arch.to_dict(), "q": ["int8", "fp32"]}))
    assert not signatures & {signature(layer) for layer in same if layer["precision"] != "fp32"}


def test_module_paths_of_exported_node_names() -> None:
    assert _module_paths("/blocks/blocks.0/attn/qkv/MatMul") == [
        "blocks",
        "blocks.0",
        "blocks.0.attn",
        "blocks.0.attn.qkv",
    ]
    assert _module_paths("/features/features.0/features.0.0/Conv") == ["features", "features.0", "features.0.0"]
    assert _module_paths("/Add") == [] and _module_paths("hwnas_node_3") == []


def test_vit_layers_switch_fake_int8_on_and_off() -> None:
    space = ViTSpace("cifar", **TINY_VIT_SPACE["options"])
    supernet = space.build_supernet(seed=0).eval()
    supernet.set_active(space.max_arch())
    x = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for block in supernet.blocks:  # a classifier that is not all zeros (timm's init zeroes it)
            block.fc2.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(3))
        supernet.head.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(4))
        float_out = supernet(x)
        supernet.set_fake_quant([True, False])
        first = supernet(x)
        supernet.set_fake_quant([True, True])
        both = supernet(x)
        supernet.set_fake_quant([False, False])
        again = supernet(x)
    assert not torch.allclose(float_out, first) and not torch.allclose(first, both)
    assert torch.equal(float_out, again)
    assert (both - float_out).abs().max() < 0.2 * float_out.abs().max()  # int8 error, not another network
    supernet.set_fake_quant([True, True])
    supernet(x).sum().backward()  # straight-through gradients reach the shared weights
    assert all(block.qkv.weight.grad is not None and block.qkv.weight.grad.abs().sum() > 0 for block in supernet.blocks)
    with pytest.raises(ValueError, match="set_fake_quant: 1 flags for 2 layers"):
        supernet.set_fake_quant([True])


def test_a_quantization_aware_phase_trains_the_vit_supernet(tmp_path) -> None:
    from nas.testing.tiny_train import tiny_vit
    from search_spaces.training.checkpoint import load_supernet
    from search_spaces.training.config import load_train_config
    from search_spaces.training.trainer import SupernetTrainer

    states = {}
    every = {"embed": "all", "depth": "all", "heads": "all", "mlp": "all"}
    for p in (0.0, 1.0):
        cfg = tiny_vit()
        cfg["phases"] = [cfg["phases"][0], {"name": "quant", "epochs": 1, "lr": 0.001, "open": every, "fake_quant": p}]
        SupernetTrainer(load_train_config(cfg), tmp_path / f"p{p}").run()
        supernet, _ = load_supernet(tmp_path / f"p{p}")
        assert not any(block.fake_quant for block in supernet.blocks)  # the checkpoint is a float supernet
        states[p] = supernet.state_dict()
    # the same seeds and data: only the fake quantization makes the trained weights differ
    assert any(not torch.equal(states[0.0][k], states[1.0][k]) for k in states[0.0])
