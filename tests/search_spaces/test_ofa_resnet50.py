"""Once-for-all ResNet-50: the space, the supernet against its extracted subnets, BN recalibration,
costs, training, latency cover, and equivalence with the reference implementation (``ofa``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nas.core.space import create_space
from nas.published import export_reference, import_supernet
from predictors.flops import count_cost
from search_spaces.bn import recalibrate_bn
from search_spaces.ofa_resnet50.published import ours_from_reference, reference_from_ours
from search_spaces.training.checkpoint import load_supernet
from search_spaces.training.config import load_train_config
from search_spaces.training.trainer import SupernetTrainer

torch.set_num_threads(2)


def _randomise_bn(net: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.2, 0.2, generator=gen)


def test_arch_json_is_the_references_and_bad_archs_name_the_key() -> None:
    space = create_space("ofa_resnet50")
    assert space.space_id == "ofa_resnet50/imagenet" and len(space.genes) == 5 + 18 + 6 + 1
    arch = space.make({"d": [2, 0, 1, 2, 0], "e": [0.25] * 18, "w": [0, 1, 2, 2, 1, 0], "r": [224]})
    assert arch["d"] == [2, 0, 1, 2, 0] and arch["r"] == 224
    # as the reference's sample_active_subnet prints it (no resolution: the largest)
    printed = {"d": [0, 2, 1, 0, 1], "e": [0.2, 0.35] * 9, "w": [2, 1, 0, 0, 1, 2]}
    made = space.make(printed)
    assert made["r"] == 224 and made["d"] == printed["d"] and made["w"] == printed["w"]
    assert made["e"][:4] == printed["e"][:4]  # stage 1 runs all four blocks (base 2 + 2 extra)
    # blocks beyond a stage's depth do not make a different arch
    other = space.make({**arch.to_dict(), "e": [0.25] * 2 + [0.35] * 2 + [0.25] * 14})
    assert other == arch
    for change, message in (
        ({"d": [1, 0, 0, 0, 0]}, r"d\[0\] \(stem depth"),
        ({"e": [0.3] * 18}, r"e\[0\] \(expand ratio\): 0.3 is not an allowed value"),
        ({"w": [0, 1, 2]}, r"w: expected 6 entries"),
        ({"w": [0, 1, 2, 3, 0, 0]}, r"w\[3\] \(width index\)"),
        ({"r": 100}, "r: resolution 100 is not supported"),
        ({"ks": [3]}, "unknown arch keys"),
    ):
        with pytest.raises(ValueError, match=message):
            space.make({**arch.to_dict(), **change})


def test_size_counts_distinct_archs() -> None:
    space = create_space(
        "ofa_resnet50", config="cifar", resolutions=[32], width_choices=[1.0], base_depths=[1, 1, 1, 1]
    )
    # per stage: sum over extra depth x of 3^(1 + x) expand choices = 3 + 9 + 27; stem: 2
    assert space.size() == 2 * (3 + 9 + 27) ** 4


@pytest.mark.parametrize("config", ["cifar", "imagenet"])
def test_extracted_subnet_equals_supernet_and_costs_match_the_module(config: str) -> None:
    space = create_space("ofa_resnet50", config=config)
    net = space.build_supernet(seed=1)
    _randomise_bn(net, 2)
    net.eval()
    rng = np.random.default_rng(3)
    archs = [space.max_arch(), space.min_arch(), *[space.sample(rng) for _ in range(4 if config == "cifar" else 1)]]
    for arch in archs:
        r = arch["r"] if config == "cifar" else 128
        arch = space.make({**arch.to_dict(), "r": r})
        x = torch.randn(2, 3, r, r, generator=torch.Generator().manual_seed(0))
        with torch.no_grad(), net.active(arch):
            expected = net(x)
            static = net.extract(arch).eval()
            assert torch.allclose(static(x), expected, atol=1e-5)
        cost = count_cost(space.static_config(arch))
        assert cost.params == sum(p.numel() for p in static.parameters())
        # the static network built afresh from the static config has the same shapes (export/load)
        fresh = space.build_static(arch)
        assert {k: v.shape for k, v in fresh.state_dict().items()} == {
            k: v.shape for k, v in static.state_dict().items()
        }


def test_bn_recalibration_touches_only_the_active_subnet() -> None:
    space = create_space("ofa_resnet50", config="cifar")
    net = space.build_supernet(seed=0)
    arch = space.min_arch()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randn(8, 3, 32, 32, generator=gen) * 2 + 1 for _ in range(3)]
    with net.active(arch):
        recalibrate_bn(net, batches)
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("running" in k or "num_batches" in k for k in changed)
    # the stem's first conv keeps 8 of its 16 output channels at width index 0: the rest is untouched
    mid = space.config.stem_mid_channels()[0]
    assert torch.equal(after["stem.0.bn.running_mean"][mid:], before["stem.0.bn.running_mean"][mid:])
    assert not torch.equal(after["stem.0.bn.running_mean"][:mid], before["stem.0.bn.running_mean"][:mid])


def test_latency_cover_holds_every_signature_of_random_archs() -> None:
    space = create_space("ofa_resnet50", config="cifar")

    def signatures(arch) -> set[str]:
        return {repr(sorted((k, v) for k, v in layer.items() if k != "name")) for layer in space.static_config(arch)}

    covered: set[str] = set()
    for arch in space.latency_cover_archs():
        covered |= signatures(arch)
    rng = np.random.default_rng(0)
    for _ in range(30):
        assert signatures(space.sample(rng)) <= covered


def test_training_runs_the_space_own_schedule(tmp_path: Path) -> None:
    cfg = load_train_config(
        {
            "space": {"name": "ofa_resnet50", "config": "cifar", "options": {"resolutions": [16, 20]}},
            "data": {"name": "synthetic", "batch_size": 16, "synthetic_samples": 64, "eval_batch_size": 64},
            "training": {"seed": 0, "bn_recal_batches": 1, "eval_random_subnets": 1, "progress": False, "threads": 2},
        }
    )
    assert [p.name for p in cfg.phases] == ["full", "d_1", "d_2", "e_1", "e_2", "w_1", "w_2"]
    for phase in cfg.phases:
        phase.epochs = 1 if phase.name in ("full", "w_2") else 0
    result = SupernetTrainer(cfg, tmp_path / "run").run()
    assert set(result["test_accuracy"]) == {"max", "min"}
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [line for line in lines if "loss" in line]
    assert {line["phase"] for line in steps} == {"full", "w_2"} and all(np.isfinite(s["loss"]) for s in steps)
    # the last phase opened every width, depth and expand ratio: its smallest subnet is the space's
    final = [line for line in lines if "eval_holdout" in line][-1]["eval_holdout"]
    space = create_space("ofa_resnet50", config="cifar", resolutions=[16, 20])
    assert space.make(final["min"]["arch"]) == space.min_arch()
    supernet, _ = load_supernet(tmp_path / "run")
    assert supernet.space.space_id == space.space_id


# ------------------------------------------------------------------ the reference implementation
ofa_networks = pytest.importorskip("ofa.imagenet_classification.elastic_nn.networks")


def _reference(seed: int) -> nn.Module:
    """The reference supernet as its model zoo builds ``ofa_resnet50``, random weights and BN statistics."""
    torch.manual_seed(seed)
    net = ofa_networks.OFAResNets(
        dropout_rate=0, depth_list=[0, 1, 2], expand_ratio_list=[0.2, 0.25, 0.35], width_mult_list=[0.65, 0.8, 1.0]
    )
    _randomise_bn(net, seed + 1)
    return net.eval()


def test_parameter_names_map_both_ways() -> None:
    reference = _reference(0)
    ours = create_space("ofa_resnet50").build_supernet(seed=None).state_dict()
    names = list(reference.state_dict())
    assert sorted(ours_from_reference(k) for k in names) == sorted(ours)
    assert all(reference_from_ours(ours_from_reference(k)) == k for k in names)
    # the short names older checkpoints use (the reference's loader accepts them too)
    assert ours_from_reference("input_stem.1.conv.conv.weight") == "stem.1.conv.conv.weight"
    assert ours_from_reference("blocks.3.conv2.bn.running_var") == "blocks.3.conv2.bn.running_var"
    assert ours_from_reference("classifier.linear.bias") == "classifier.linear.bias"
    for bad in ("input_stem.3.conv.conv.weight", "blocks.0.conv4.conv.conv.weight", "head.weight"):
        with pytest.raises(KeyError):
            ours_from_reference(bad)


def test_equivalence_with_the_reference_on_20_subnets(tmp_path: Path) -> None:
    """Logits in eval and train mode, the extracted static subnet, MACs and params, export round trip."""
    from ofa.utils.pytorch_utils import count_net_flops, count_parameters

    reference = _reference(3)
    path = tmp_path / "ofa_resnet50"
    torch.save({"state_dict": reference.state_dict()}, str(path))
    import_supernet(str(path), tmp_path / "run")  # named as the published file: its space and preset
    supernet, _ = load_supernet(tmp_path / "run")
    assert supernet.space.space_id == "ofa_resnet50/imagenet"
    export_reference(tmp_path / "run", tmp_path / "back.pth")
    back = torch.load(str(tmp_path / "back.pth"), weights_only=True)["state_dict"]
    original = reference.state_dict()
    assert set(back) == set(original) and all(torch.equal(back[k], original[k]) for k in original)

    space = supernet.space
    rng = np.random.default_rng(7)
    resolutions = set()
    for i in range(20):
        d = space.sample(rng).to_dict()
        d["r"] = 128 + 32 * (i % 4) if i % 2 else d["r"]  # several resolutions, the corners included
        arch = space.make(d)
        resolutions.add(d["r"])
        reference.set_active_subnet(d=d["d"], e=d["e"], w=d["w"])
        x = torch.randn(2, 3, d["r"], d["r"], generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            for train in (False, True):  # train mode: BN normalises with the batch's statistics
                reference.train(train)
                supernet.train(train)
                with supernet.active(arch):
                    assert torch.allclose(supernet(x), reference(x), atol=1e-5)
            reference.eval()
            supernet.eval()
            theirs = reference.get_active_subnet(preserve_weight=True).eval()
            ours = supernet.extract(arch).eval()
            assert torch.allclose(ours(x), theirs(x), atol=1e-5)
        cost = count_cost(space.static_config(arch))
        # the reference sums per-layer counts in float32 tensors: equal up to float32 rounding
        assert cost.macs == pytest.approx(count_net_flops(theirs, (1, 3, d["r"], d["r"])), rel=2e-7)
        assert cost.params == count_parameters(theirs)
    assert len(resolutions) >= 4
