"""The elastic ViT family: arch checks, extraction as timm models, weight entanglement, MACs
against torch's flop counter, latency op cover, training and resume."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from timm.models.vision_transformer import VisionTransformer
from torch.utils.flop_counter import FlopCounterMode

from nas.core.space import create_space
from nas.testing.tiny_train import TINY_VIT_SPACE, tiny_vit
from predictors.flops import arch_cost
from predictors.latency.ops import layer_module, op_signatures, signature
from search_spaces.training import checkpoint as ckpt
from search_spaces.training.config import load_train_config
from search_spaces.training.trainer import SupernetTrainer
from search_spaces.vit.space import ViTSpace


@pytest.fixture(scope="module")
def space() -> ViTSpace:
    return create_space("vit", config="cifar")


@pytest.fixture(scope="module")
def supernet(space: ViTSpace) -> torch.nn.Module:
    net = space.build_supernet(seed=0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # trained-looking weights: no slice may hide behind zeros or ones
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return net.eval()


def test_presets_and_arch_json(space: ViTSpace) -> None:
    assert set(space.presets()) == {"cifar", "imagenet", "imagenet_small"}
    assert space.space_id == "vit/cifar"
    arch = space.make({"embed": 96, "depth": 4, "heads": [2, 3, 4, 4], "mlp": [2, 3.0, 4, 2]})
    assert arch["heads"] == [2, 3, 4, 4, 2, 2] and arch["mlp"] == [2.0, 3.0, 4.0, 2.0, 2.0, 2.0]
    assert space.to_string(arch) == "E96 D4 | h 2 3 4 4 | m 2 3 4 2"
    assert space.from_string(space.to_string(arch)) == arch
    with pytest.raises(ValueError, match="expected 'E<embed> D<depth>"):
        space.from_string("E96 | h 2 | m 2")
    # the skipped layers' genes do not make another arch
    same = space.make({"embed": 96, "depth": 4, "heads": [2, 3, 4, 4, 4, 3], "mlp": [2, 3, 4, 2, 4, 4]})
    assert same == arch and space.encode(same) == space.encode(arch)
    assert space.resolution(arch) == 32 and space.input_shape() == (3, 32, 32)
    imagenet = create_space("vit", config="imagenet")
    assert imagenet.config.tokens == 197 and imagenet.max_arch()["embed"] == 240


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"embed": 100}, r"embed \(embedding dimension\): 100 is not an allowed value; choose one of \[64, 96, 128\]"),
        ({"depth": "4"}, r"depth: expected an integer"),
        ({"heads": [2, 3]}, r"heads: expected 6 entries \(one per layer: 6 \(the layers built\), or 4"),
        ({"mlp": [2, 3, 5, 2]}, r"mlp\[2\] \(MLP ratio\): 5.0 is not an allowed value"),
        ({"head": [2, 2, 2, 2]}, r"unknown arch keys \['head'\]; a vit arch has keys"),
    ],
)
def test_bad_archs_say_what_is_wrong(space: ViTSpace, change: dict, message: str) -> None:
    data = {"embed": 96, "depth": 4, "heads": [2, 3, 4, 4], "mlp": [2, 3, 4, 2], **change}
    with pytest.raises(ValueError, match=message):
        space.make(data)


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="img_size: 30 is not a multiple of patch_size 4"):
        create_space("vit", config="cifar", img_size=30)
    with pytest.raises(ValueError, match="head_choices: entries must be strictly ascending"):
        create_space("vit", config="cifar", head_choices=[4, 2])
    with pytest.raises(ValueError, match="unknown vit config keys"):
        create_space("vit", config="cifar", num_head=3)


def test_size_counts_every_distinct_subnet() -> None:
    space = create_space("vit", config=TINY_VIT_SPACE["config"], **TINY_VIT_SPACE["options"])
    distinct = {space.decode(list(v)) for v in itertools.product(*(range(len(g.choices)) for g in space.genes))}
    assert space.size() == len(distinct) == 2 * (4 + 4**2)


def test_extracted_timm_model_equals_the_supernet(space: ViTSpace, supernet: torch.nn.Module) -> None:
    rng = np.random.default_rng(0)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    archs = [space.max_arch(), space.min_arch(), *(space.sample(rng) for _ in range(4))]
    for arch in archs:
        with torch.no_grad(), supernet.active(arch):
            expected = supernet(x)
        net = supernet.extract(arch)
        assert isinstance(net, VisionTransformer) and len(net.blocks) == arch["depth"]
        with torch.no_grad():
            got = net.eval()(x)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert supernet.active_arch == space.max_arch()  # active() restored it


def test_subnet_weights_are_slices_of_the_largest(space: ViTSpace, supernet: torch.nn.Module) -> None:
    arch = space.make({"embed": 64, "depth": 4, "heads": [2, 3, 4, 2], "mlp": [2, 3, 4, 2]})
    net = supernet.extract(arch)
    block, big = net.blocks[1], supernet.blocks[1]
    width = 3 * 32  # three heads of 32
    q, k, v = big.qkv.weight.view(3, 128, 128)
    torch.testing.assert_close(block.attn.qkv.weight, torch.cat([q[:width, :64], k[:width, :64], v[:width, :64]]))
    torch.testing.assert_close(block.attn.proj.weight, big.proj.weight[:64, :width])
    torch.testing.assert_close(block.mlp.fc1.weight, big.fc1.weight[: 64 * 3, :64])
    torch.testing.assert_close(net.pos_embed, supernet.pos_embed[:, :, :64])


def test_uniform_subnet_is_what_timm_create_model_builds(space: ViTSpace, supernet: torch.nn.Module) -> None:
    """Where every layer has the same heads and ratio and the attention width equals the embedding
    dimension, the exported state dict loads strictly into timm's own registered ViT."""
    arch = space.make({"embed": 128, "depth": 5, "heads": [4] * 5, "mlp": [3.0] * 5})
    net = supernet.extract(arch).eval()
    model = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=4, embed_dim=128, depth=5,
        num_heads=4, mlp_ratio=3.0, num_classes=10,
    ).eval()  # fmt: skip
    model.load_state_dict(net.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x))


def test_macs_and_params_match_torch_counters(space: ViTSpace, supernet: torch.nn.Module) -> None:
    rng = np.random.default_rng(3)
    for arch in [space.max_arch(), *(space.sample(rng) for _ in range(3))]:
        net = supernet.extract(arch).eval()
        for block in net.blocks:
            block.attn.fused_attn = False  # the counter sees the attention's matrix products as matmuls
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            net(torch.randn(1, 3, 32, 32))
        cost = arch_cost(space, arch)
        assert cost is not None
        assert cost.macs == counter.get_total_flops() // 2
        assert cost.params == sum(p.numel() for p in net.parameters())


def test_latency_ops_cover_every_subnet_and_run(space: ViTSpace) -> None:
    ops = op_signatures(space)
    assert {layer["op"] for layer in ops.values()} == {
        "vit_patch_embed", "vit_attention", "vit_mlp", "vit_norm_pool", "linear"
    }  # fmt: skip
    assert sum(layer["op"] == "vit_attention" for layer in ops.values()) == 3 * 3  # embed x heads
    rng = np.random.default_rng(4)
    for arch in (space.sample(rng) for _ in range(20)):
        for layer in space.static_config(arch):
            assert signature(layer) in ops
    for layer in ops.values():
        module, shape = layer_module(layer)
        with torch.no_grad():
            out = module.eval()(torch.randn(2, *shape))
        assert out.shape[0] == 2 and torch.isfinite(out).all()


def test_training_resumes_to_the_same_supernet(tmp_path: Path) -> None:
    end = 30  # 12 steps an epoch: the full network, then 18 steps of the "all" phase
    SupernetTrainer(load_train_config(tiny_vit(training={"max_steps": end})), tmp_path / "ref").run()
    first = SupernetTrainer(load_train_config(tiny_vit(training={"max_steps": 17})), tmp_path / "resumed").run()
    assert first["stopped"] and first["global_step"] == 17  # mid "all" phase (sandwich, two subnets)
    SupernetTrainer(load_train_config(tiny_vit(training={"max_steps": end})), tmp_path / "resumed", resume=True).run()
    ref, _ = ckpt.load_checkpoint(tmp_path / "ref" / "checkpoint")
    resumed, _ = ckpt.load_checkpoint(tmp_path / "resumed" / "checkpoint")
    assert set(ref) == set(resumed)
    for name in ref:
        assert torch.equal(ref[name], resumed[name]), name


def test_the_service_refuses_a_vit_too_large_to_build(tmp_path: Path) -> None:
    """Patch size 1 on 1024 px is a million tokens: the position embeddings alone are billions of
    parameters. Admission counts them from the static config (no network is built) and refuses."""
    from nas.admission import admit_job, service_policy
    from nas.core.config import ConfigError

    spec = {
        "name": "big", "space": {"name": "vit", "config": "cifar",
                                 "options": {"img_size": 1024, "patch_size": 1, "embed_choices": [4096]}},
        "evaluator": {"kind": "zero_cost", "proxy": "synflow"},
        "objectives": [{"metric": "synflow", "direction": "max"}],
        "searcher": {"kind": "random"}, "budget": {"evaluations": 2},
    }  # fmt: skip
    with pytest.raises(ConfigError, match=r"largest subnet of vit/cifar\+\w+ has 5.11e\+09 parameters"):
        admit_job(spec, service_policy([str(tmp_path)]))
