"""Supernet vs extracted subnet, BN recalibration, dynamic ops, costs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas.core.space import create_space
from predictors.flops import count_cost
from search_spaces.bn import recalibrate_bn
from search_spaces.dynamic_ops import DynamicBatchNorm2d, DynamicDepthwiseConv2d
from search_spaces.ofa_mbv3.supernet import OFAMobileNetV3Supernet

torch.set_num_threads(2)


def perturb(net: nn.Module, seed: int = 0) -> None:
    """Random weights, BN statistics and kernel-transform matrices, so that equality tests bite."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "transforms" in name:
                p.add_(0.3 * torch.randn(p.shape, generator=gen))
            elif p.dim() == 1:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.mul_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))


def arch_list(space, n: int, seed: int):
    rng = np.random.default_rng(seed)
    return [space.max_arch(), space.min_arch(), *[space.sample(rng) for _ in range(n)]]


@pytest.fixture(scope="module")
def mnist_net():
    net = create_space("ofa_mbv3", config="mnist").build_supernet(seed=0)
    perturb(net, 1)
    return net.eval()


@pytest.mark.parametrize("config", ["mnist", "cifar"])
def test_extracted_subnet_equals_supernet(config: str) -> None:
    space = create_space("ofa_mbv3", config=config)
    net = space.build_supernet(seed=3)
    perturb(net, 4)
    net.eval()
    gen = torch.Generator().manual_seed(0)
    for arch in arch_list(space, 12, seed=5):
        x = torch.randn(3, space.config.in_channels, arch["r"], arch["r"], generator=gen)
        with torch.no_grad():
            with net.active(arch):
                expected = net(x)
            sub = net.extract(arch).eval()
            got = sub(x)
        assert isinstance(sub, nn.Module) and not any(
            isinstance(m, (DynamicBatchNorm2d, DynamicDepthwiseConv2d)) for m in sub.modules()
        )
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_extracted_subnet_equals_supernet_imagenet() -> None:
    space = create_space("ofa_mbv3")
    net = space.build_supernet(seed=0)
    perturb(net, 2)
    net.eval()
    rng = np.random.default_rng(9)
    archs = [space.max_arch(), space.min_arch(), space.sample(rng), space.sample(rng)]
    for arch in archs:
        arch = space.make({**arch.to_dict(), "r": 128})
        x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            with net.active(arch):
                expected = net(x)
            got = net.extract(arch).eval()(x)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_outputs_differ_between_subnets(mnist_net) -> None:
    space = mnist_net.space
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    a = space.make({**space.max_arch().to_dict()})
    b_dict = a.to_dict()
    b_dict["ks"][0] = 3
    with torch.no_grad():
        with mnist_net.active(a):
            ya = mnist_net(x)
        with mnist_net.active(b_dict):
            yb = mnist_net(x)
    assert not torch.allclose(ya, yb)


def test_bn_recalibration_then_extraction(mnist_net) -> None:
    space = mnist_net.space
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(16, 1, 28, 28, generator=gen) * 2 + 0.5 for _ in range(3)]
    for arch in arch_list(space, 4, seed=8):
        r = arch["r"]
        x = torch.randn(4, 1, r, r, generator=gen)
        with torch.no_grad(), mnist_net.active(arch):
            used = recalibrate_bn(mnist_net, batches, resolution=r)
            expected = mnist_net(x)
            sub = mnist_net.extract(arch).eval()
        assert used == 3
        torch.testing.assert_close(sub(x), expected, rtol=1e-5, atol=1e-5)
        # Recalibrating the extracted copy on the same batches gives the same statistics.
        twin = mnist_net.extract(arch)
        perturb(twin, 11)
        twin.load_state_dict({k: v for k, v in sub.state_dict().items() if "running" not in k}, strict=False)
        recalibrate_bn(twin, batches, resolution=r)
        for (name, a), (_, b) in zip(sub.named_buffers(), twin.named_buffers()):
            if "running" in name:
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def test_bn_recalibration_estimates_batch_statistics() -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.BatchNorm2d(4))
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(8, 1, 10, 10, generator=gen) + i for i in range(4)]
    net.eval()
    recalibrate_bn(net, batches)
    with torch.no_grad():
        feats = [net[0](b) for b in batches]
    mean = torch.stack([f.mean((0, 2, 3)) for f in feats]).mean(0)
    var = torch.stack([f.var((0, 2, 3), unbiased=True) for f in feats]).mean(0)
    torch.testing.assert_close(net[1].running_mean, mean)
    torch.testing.assert_close(net[1].running_var, var)
    assert not net.training and net[1].momentum == 0.1
    assert int(net[1].num_batches_tracked) == 4


def test_bn_recalibration_leaves_other_state_untouched(mnist_net) -> None:
    space = mnist_net.space
    arch = space.min_arch()  # skips blocks and uses a leading slice of the channels
    before = {k: v.clone() for k, v in mnist_net.state_dict().items()}
    mnist_net.eval()
    batches = [torch.randn(8, 1, 20, 20, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    with mnist_net.active(arch):
        recalibrate_bn(mnist_net, batches)
    after = mnist_net.state_dict()
    assert not mnist_net.training
    assert all(m.momentum == 0.1 for m in mnist_net.modules() if isinstance(m, nn.BatchNorm2d))
    active = {id(b) for b in mnist_net.blocks if b in set(mnist_net.active_blocks())}
    changed_active = False
    for name, value in before.items():
        if "running" not in name and "num_batches" not in name:
            assert torch.equal(value, after[name]), f"{name} changed"
            continue
        block_index = int(name.split(".")[1]) if name.startswith("blocks.") else None
        if block_index is not None and id(mnist_net.blocks[block_index]) not in active:
            assert torch.equal(value, after[name]), f"skipped block's {name} changed"
        if name.startswith("blocks.") and name.endswith("expand_bn.running_mean") and block_index is not None:
            mid = mnist_net.blocks[block_index].active_mid
            assert torch.equal(value[mid:], after[name][mid:]), f"inactive channels of {name} changed"
            changed_active |= not torch.equal(value[:mid], after[name][:mid])
    assert changed_active
    assert mnist_net.active_arch == space.max_arch()


def test_bn_recalibration_bad_input(mnist_net) -> None:
    state = {k: v.clone() for k, v in mnist_net.state_dict().items()}
    with pytest.raises(ValueError, match="no batch"):
        recalibrate_bn(mnist_net, [])
    with pytest.raises(ValueError, match="num_batches"):
        recalibrate_bn(mnist_net, [torch.zeros(2, 1, 28, 28)], num_batches=0)
    with pytest.raises(ValueError, match="batches: each batch"):
        recalibrate_bn(mnist_net, ["not a tensor"])
    for k, v in mnist_net.state_dict().items():
        assert torch.equal(v, state[k]), f"{k} changed by a failed recalibration"


def test_set_active_validates_and_context_restores(mnist_net) -> None:
    space = mnist_net.space
    with pytest.raises(ValueError, match="ks"):
        mnist_net.set_active({"ks": [3], "e": [3], "d": [2], "r": 28})
    small = space.min_arch()
    with pytest.raises(RuntimeError), mnist_net.active(small):
        assert mnist_net.active_arch == small
        assert len(mnist_net.active_blocks()) == sum(small["d"])
        raise RuntimeError("boom")
    assert mnist_net.active_arch == space.max_arch()


def test_kernel_transformation() -> None:
    conv = DynamicDepthwiseConv2d(4, (3, 5, 7))
    w = conv.conv.weight
    torch.testing.assert_close(conv.active_filter(4, 5), w[:, :, 1:6, 1:6])  # identity init: centre crop
    torch.testing.assert_close(conv.active_filter(2, 3), w[:2, :, 2:5, 2:5])
    with torch.no_grad():
        conv.transforms["7to5"].copy_(torch.randn(25, 25, generator=torch.Generator().manual_seed(0)))
    expected5 = (w[:, 0, 1:6, 1:6].reshape(4, 25) @ conv.transforms["7to5"].T).reshape(4, 1, 5, 5)
    torch.testing.assert_close(conv.active_filter(4, 5), expected5)
    expected3 = (expected5[:, 0, 1:4, 1:4].reshape(4, 9) @ conv.transforms["5to3"].T).reshape(4, 1, 3, 3)
    torch.testing.assert_close(conv.active_filter(4, 3), expected3)
    conv.active_kernel_size = 3
    conv(torch.randn(1, 4, 8, 8)).sum().backward()
    assert conv.transforms["7to5"].grad is not None and conv.transforms["5to3"].grad is not None
    with pytest.raises(ValueError, match="kernel size 4"):
        conv.active_filter(4, 4)


def test_dynamic_bn_updates_only_active_slice() -> None:
    bn = DynamicBatchNorm2d(8)
    bn.train()
    x = torch.randn(16, 5, 4, 4) + 3.0
    y = bn(x)
    torch.testing.assert_close(y, nn.functional.batch_norm(x, None, None, training=True))
    assert torch.all(bn.running_mean[:5] > 0.1) and torch.all(bn.running_mean[5:] == 0)
    assert int(bn.num_batches_tracked) == 1
    ref = nn.BatchNorm2d(5)
    ref.train()
    ref(x)
    torch.testing.assert_close(bn.running_var[:5], ref.running_var)


def test_gradients_reach_only_the_active_subnet() -> None:
    net = create_space("ofa_mbv3", config="mnist").build_supernet(seed=0).train()
    arch = net.space.min_arch()
    with net.active(arch):
        net(torch.randn(4, 1, 20, 20)).sum().backward()
        used = set(map(id, net.active_blocks()))
    for index, block in enumerate(net.blocks):
        grads = [p.grad for p in block.parameters()]
        if id(block) in used:
            g = block.expand_conv.conv.weight.grad
            assert g is not None and g[: block.active_mid].abs().sum() > 0
            assert torch.all(g[block.active_mid :] == 0)
        else:
            assert all(g is None for g in grads), f"skipped block {index} got gradients"


def test_init_is_seeded_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = OFAMobileNetV3Supernet("mnist", seed=5)
    after = torch.rand(1)
    assert torch.equal(after, expected_next)
    b = OFAMobileNetV3Supernet("mnist", seed=5)
    c = OFAMobileNetV3Supernet("mnist", seed=6)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def _hook_macs(module: nn.Module, x: torch.Tensor) -> int:
    """MACs by forward hooks (once-for-all's ``count_net_flops`` convention: a bias adds no MAC),
    independent of the static config."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp, out) -> None:
        nonlocal total
        kernel = m.kernel_size[0] * m.kernel_size[1]
        total += out.numel() // out.shape[0] * (m.in_channels // m.groups * kernel)

    def linear_hook(m: nn.Linear, _inp, out) -> None:
        nonlocal total
        total += m.in_features * m.out_features

    hooks = [
        m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else linear_hook)
        for m in module.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    with torch.no_grad():
        module(x)
    for h in hooks:
        h.remove()
    return total


@pytest.mark.parametrize("config", ["imagenet", "cifar", "mnist"])
def test_static_costs_equal_counts_on_extracted_module(config: str) -> None:
    space = create_space("ofa_mbv3", config=config)
    net = space.build_supernet(seed=0).eval()
    for arch in arch_list(space, 3, seed=13):
        if config == "imagenet" and arch != space.max_arch():
            arch = space.make({**arch.to_dict(), "r": 160})
        cost = count_cost(space.static_config(arch))
        sub = net.extract(arch).eval()
        x = torch.randn(1, space.config.in_channels, arch["r"], arch["r"])
        assert cost.params == sum(p.numel() for p in sub.parameters())
        assert cost.macs == _hook_macs(sub, x)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            sub(x)
        assert counter.get_total_flops() == 2 * cost.macs  # torch counts a MAC as two flops, biases as none


def test_imagenet_config_matches_published_once_for_all_sizes() -> None:
    """Parameter counts of once-for-all's ofa_mbv3_d234_e346_k357_w1.0 subnets.

    Published (MMRazor's converted OFA model zoo): largest subnet 7.6M params;
    note8_lat@22ms subnet 4.3M params.
    """
    space = create_space("ofa_mbv3")
    largest = count_cost(space.static_config(space.max_arch()))
    assert 7.6e6 <= largest.params < 7.7e6
    note8_22ms = {
        "ks": [3, 3, 3, 3, 5, 5, 3, 3, 7, 3, 3, 3, 5, 3, 3, 3, 3, 7, 3, 3],
        "e": [3, 3, 3, 3, 3, 3, 3, 3, 4, 3, 3, 3, 3, 4, 3, 3, 6, 6, 3, 6],
        "d": [2, 2, 2, 2, 2],
        "r": 140,
    }
    cost = count_cost(space.static_config(note8_22ms))
    assert round(cost.params / 1e6, 1) == 4.3
