"""Every Triton kernel against its pure-torch reference over shapes, strides, kernel sizes and dtypes."""

from __future__ import annotations

import pytest
import torch

from kernels import KernelInputError, available
from kernels.depthwise.op import depthwise_conv
from kernels.depthwise.reference import depthwise_reference
from kernels.pointwise.op import pointwise_conv
from kernels.pointwise.reference import pointwise_reference
from kernels.se.op import squeeze_excite
from kernels.se.reference import se_reference

TOL = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 5e-2}


def rand(*shape, dtype=torch.float32, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(device=device, dtype=dtype)


def close(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> None:
    tol = TOL[dtype]
    torch.testing.assert_close(a.float(), b.float(), rtol=tol, atol=tol)


def test_available_and_no_work_at_import() -> None:
    assert available()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("act", [None, "relu", "relu6", "h_swish"])
def test_pointwise_matches_reference(device, dtype, act) -> None:
    x = rand(2, 24, 5, 7, dtype=dtype, device=device)  # odd spatial size, M = 70 not a block multiple
    w = rand(40, 24, 1, 1, dtype=dtype, device=device, seed=1) * 0.2
    scale, shift = rand(40, seed=2).abs() + 0.5, rand(40, seed=3)
    y = pointwise_conv(x, w, scale.to(device), shift.to(device), act)
    assert y.shape == (2, 40, 5, 7) and y.dtype == dtype and y.is_contiguous(memory_format=torch.channels_last)
    close(y, pointwise_reference(x, w, scale.to(device), shift.to(device), act), dtype)


@pytest.mark.parametrize("channels_last", [False, True])
def test_pointwise_residual_and_memory_formats(device, channels_last) -> None:
    x = rand(3, 17, 4, 4, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = rand(17, 17, device=device, seed=1) * 0.3
    scale, shift = torch.ones(17, device=device), rand(17, seed=2).to(device)
    res = rand(3, 17, 4, 4, device=device, seed=4)
    y = pointwise_conv(x, w, scale, shift, "relu", residual=res)
    close(y, pointwise_reference(x, w, scale, shift, "relu", residual=res), torch.float32)


@pytest.mark.parametrize(("k", "stride"), [(3, 1), (3, 2), (5, 1), (5, 2), (7, 1), (7, 2)])
def test_depthwise_matches_reference(device, k, stride) -> None:
    x = rand(2, 20, 9, 7, device=device)
    w = rand(20, 1, k, k, device=device, seed=1) * 0.2
    scale, shift = (rand(20, seed=2).abs() + 0.5).to(device), rand(20, seed=3).to(device)
    y = depthwise_conv(x, w, scale, shift, stride, "h_swish")
    ref = depthwise_reference(x, w, scale, shift, stride, "h_swish")
    assert y.shape == ref.shape
    close(y, ref, torch.float32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_depthwise_half_precision(device, dtype) -> None:
    x = rand(1, 33, 6, 6, dtype=dtype, device=device).contiguous(memory_format=torch.channels_last)
    w = rand(33, 1, 5, 5, dtype=dtype, device=device, seed=1) * 0.2
    scale, shift = torch.ones(33, device=device), torch.zeros(33, device=device)
    close(depthwise_conv(x, w, scale, shift, 2, "relu"), depthwise_reference(x, w, scale, shift, 2, "relu"), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_squeeze_excite_matches_reference(device, dtype) -> None:
    x = rand(2, 36, 5, 6, dtype=dtype, device=device)
    w1, b1 = rand(12, 36, 1, 1, seed=1).to(device) * 0.3, rand(12, seed=2).to(device)
    w2, b2 = rand(36, 12, 1, 1, seed=3).to(device) * 0.3, rand(36, seed=4).to(device)
    close(squeeze_excite(x, w1, b1, w2, b2), se_reference(x, w1, b1, w2, b2), dtype)


def test_wrappers_reject_bad_input(device) -> None:
    x = rand(1, 8, 4, 4, device=device)
    ones = torch.ones(8, device=device)
    with pytest.raises(KernelInputError, match=r"weight: expected \[Cout, 8\]"):
        pointwise_conv(x, rand(4, 5, device=device), ones[:4], ones[:4])
    with pytest.raises(KernelInputError, match="scale: expected \\[4\\]"):
        pointwise_conv(x, rand(4, 8, device=device), ones, ones[:4])
    with pytest.raises(KernelInputError, match="unknown activation 'gelu'"):
        pointwise_conv(x, rand(4, 8, device=device), ones[:4], ones[:4], "gelu")
    with pytest.raises(KernelInputError, match="k in 3, 5, 7"):
        depthwise_conv(x, rand(8, 1, 4, 4, device=device), ones, ones)
    with pytest.raises(KernelInputError, match="stride: use 1 or 2"):
        depthwise_conv(x, rand(8, 1, 3, 3, device=device), ones, ones, stride=3)
    with pytest.raises(KernelInputError, match=r"dtype torch\.float64 not supported"):
        depthwise_conv(x.double(), rand(8, 1, 3, 3, device=device), ones, ones)
    with pytest.raises(KernelInputError, match="expected 4 dimensions"):
        pointwise_conv(x[0], rand(4, 8, device=device), ones[:4], ones[:4])


@pytest.mark.parametrize(
    "layer",
    [
        {"expand": 4, "kernel": 3, "stride": 1, "se": True, "residual": True, "act": "h_swish"},
        {"expand": 1, "kernel": 5, "stride": 2, "se": False, "residual": False, "act": "relu"},
        {"expand": 6, "kernel": 7, "stride": 2, "se": True, "residual": False, "act": "relu"},
    ],
)
def test_mbconv_runner_matches_the_static_block(device, layer) -> None:
    from kernels.mbconv import MBConvRunner
    from search_spaces.ofa_mbv3.static import block_from_config

    in_ch, out_ch = 16, 16 if layer["residual"] else 24
    mid = in_ch * layer["expand"]
    config = {
        "op": "mbconv", "in_ch": in_ch, "out_ch": out_ch, "mid_ch": mid, "in_hw": 9,
        "se_mid": mid // 4, **layer,
    }  # fmt: skip
    torch.manual_seed(0)
    block = block_from_config(config)
    for m in block.modules():  # non-trivial BN statistics to fold
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    block.eval()
    x = rand(2, in_ch, 9, 9)
    with torch.no_grad():
        ref = block(x)
    y = MBConvRunner(block, torch.float32, device)(x.to(device))
    close(y.cpu(), ref, torch.float32)


def test_latency_layer_on_triton_backend_runs_and_matches_torch(device) -> None:
    """The latency-table path that times our kernels computes what the torch layer computes."""
    from nas.core.space import create_space
    from predictors.latency import layer_module, op_signatures, triton_module

    space = create_space("ofa_mbv3", config="mnist")
    layers = [ly for ly in op_signatures(space).values() if ly["op"] in ("mbconv", "conv") and ly["in_hw"] <= 8]
    block = next(ly for ly in layers if ly["op"] == "mbconv")
    pointwise = next(ly for ly in layers if ly["op"] == "conv" and ly["kernel"] == 1)
    for layer in (block, pointwise):
        module, shape = layer_module(layer)
        module.eval()
        fast = triton_module(layer, device, "float32", module=module)
        x = rand(2, *shape)
        with torch.no_grad():
            close(fast(x.to(device)).cpu(), module(x), torch.float32)


# a ProxylessNAS-style head (ReLU6, no final expand, feature mix with BN before pooling) on the mnist preset
PROXYLESS_HEAD = {
    "stem_act": "relu6",
    "first_block_width": 16,
    "first_block_act": "relu6",
    "stage_acts": ["relu6"] * 3,
    "stage_se": [False] * 3,
    "final_expand_width": 0,
    "head_act": "relu6",
    "feature_mix_bn": True,
    "feature_mix_before_pool": True,
}


@pytest.mark.parametrize("overrides", [{}, PROXYLESS_HEAD], ids=["mbv3", "proxyless"])
def test_network_runner_matches_static_network(device, overrides) -> None:
    """A whole subnet on the kernels (what CUDA tables are validated against) equals the torch network."""
    import numpy as np

    from kernels.network import NetworkRunner
    from nas.core.space import create_space
    from search_spaces.ofa_mbv3.static import StaticOFAMobileNetV3

    space = create_space("ofa_mbv3", config="mnist", **overrides)
    arch = space.sample(np.random.default_rng(3))
    net = StaticOFAMobileNetV3(space.static_config(arch)).eval()
    assert (net.final_expand is None) == bool(overrides)
    g = torch.Generator().manual_seed(4)
    for module in net.modules():  # non-trivial BN statistics, so folding is exercised
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1, generator=g)
            module.running_var.uniform_(0.5, 1.5, generator=g)
    x = rand(2, 1, arch["r"], arch["r"], seed=5)
    with torch.no_grad():
        ref = net(x)
    y = NetworkRunner(net, torch.float32, device)(x.to(device))
    assert y.shape == ref.shape == (2, 10)
    close(y.cpu(), ref, torch.float32)


def test_triton_backend_times_the_network_on_the_kernels(device, monkeypatch) -> None:
    """measure_arch(backend='triton') times a NetworkRunner, the torch backend the static network."""
    import numpy as np

    import predictors.latency as latency
    from kernels.network import NetworkRunner
    from nas.core.space import create_space

    seen = []
    fake = lambda module, *a, **k: seen.append(module) or {"mean_ms": 1.0}  # noqa: E731
    monkeypatch.setattr(latency.backends, "measure_module", fake)
    space = create_space("ofa_mbv3", config="mnist")
    arch = space.sample(np.random.default_rng(0))
    latency.measure_arch(space, arch, 1, device, "float32", "triton")
    latency.measure_arch(space, arch, 1, device, "float32", "torch")
    assert isinstance(seen[0], NetworkRunner) and isinstance(seen[1], torch.nn.Module)
    with pytest.raises(ValueError, match="backend"):
        latency.measure_arch(space, arch, 1, device, "float32", "onnx")
