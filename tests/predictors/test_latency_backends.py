"""GPU latency backends and the launch-bound model: queue replay on synthetic timings, kernel
counting, tables that replay the queue, few-shot calibration, and the backends' refusals.
The CUDA-only check (graph capture equals eager) skips without a GPU."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nas.core.space import create_space
from predictors.flops import layer_cost
from predictors.latency import LatencyTable, build_table, latency_backend, measure_layer, validate_table
from predictors.latency.stream import count_kernels, launch_cost_ms, stream_latency


@pytest.fixture(scope="module")
def space():
    return create_space("ofa_mbv3", config="cifar")


def test_stream_replay_on_hand_computed_queues() -> None:
    # no launch cost: the GPU times add up; no GPU time: the launches do
    assert stream_latency([1.0, 2.0, 0.5], [1, 3, 2], 0.0) == pytest.approx(3.5)
    assert stream_latency([0.0, 0.0], [4, 6], 0.01) == pytest.approx(0.10)
    # a long kernel first: the host runs ahead, later short kernels queue behind it
    # issue at .2 .4 .6 .8; kernels [1.0], [.05, .05], [.1] -> 0.2+1.0, +.05, +.05, +.1 = 1.4
    assert stream_latency([1.0, 0.1, 0.1], [1, 2, 1], 0.2) == pytest.approx(1.4)
    # short kernels first: the GPU waits for the host until the long one
    # issue at .2 .4 .6 .8; the last (1.0) starts at .8 -> 1.8
    assert stream_latency([0.1, 1.0], [3, 1], 0.2) == pytest.approx(1.8)
    # launch-bound and GPU-bound limits of a long chain
    many = stream_latency([0.001] * 100, [2] * 100, 0.01)
    assert many == pytest.approx(200 * 0.01 + 0.0005)
    assert stream_latency([1.0] * 100, [2] * 100, 0.01) == pytest.approx(100 + 0.01)
    with pytest.raises(ValueError, match="kernel counts"):
        stream_latency([1.0], [1, 2], 0.1)
    with pytest.raises(ValueError, match="launch_ms"):
        stream_latency([1.0], [1], -0.1)


def test_kernel_count_skips_views_and_counts_each_op() -> None:
    block = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU()).eval()
    x = torch.randn(1, 3, 8, 8)
    assert count_kernels(block, x) == 3
    assert count_kernels(torch.nn.Flatten(), x) == 0
    assert count_kernels(torch.nn.Identity(), x) == 0
    # an MBConv layer of the space launches several kernels, more with SE than without
    from predictors.latency import layer_module

    space = create_space("ofa_mbv3", config="cifar")
    layers = [ly for ly in space.static_config(space.max_arch()) if ly["op"] == "mbconv"]
    counts = {}
    for layer in layers:
        module, shape = layer_module(layer)
        counts[bool(layer.get("se"))] = count_kernels(module.eval(), torch.randn(1, *shape))
    assert counts[False] >= 6 and counts[True] > counts[False]


def test_launch_cost_is_time_per_launch() -> None:
    calls = []

    def timer(fn):
        fn()
        calls.append(1)
        return SimpleNamespace(median_ms=200 * 0.004)

    assert launch_cost_ms("cpu", timer=timer, launches=200) == pytest.approx(0.004)
    assert calls == [1]
    with pytest.raises(ValueError, match="launches"):
        launch_cost_ms("cpu", timer=timer, launches=0)
    assert launch_cost_ms("cpu", launches=50) > 0  # the real CPU timer runs


def _gpu_timer(layer):
    """A fake GPU: time from MACs, kernels from the op kind (MBConv 8, SE 12, others 2)."""
    kernels = 2 if layer["op"] != "mbconv" else (12 if layer.get("se") else 8)
    gpu = layer_cost(layer).macs / 2e9
    return {"mean_ms": gpu, "gpu_ms": gpu, "kernels": float(kernels), "std_ms": 0.0}


def test_launch_bound_table_replays_the_queue_and_calibrates(space, tmp_path) -> None:
    launch = 0.006

    def arch_timer(arch):  # the 'device': the same queue, plus a fixed 0.05 ms of framework overhead
        timings = [_gpu_timer(ly) for ly in space.static_config(arch)]
        total = stream_latency([t["gpu_ms"] for t in timings], [int(t["kernels"]) for t in timings], launch)
        return {"mean_ms": total + 0.05}

    table = build_table(
        space, calibration_archs=12, layer_timer=_gpu_timer, arch_timer=arch_timer, progress=False, launch_ms=launch
    )
    arch = space.sample(np.random.default_rng(3))
    plain_sum = sum(_gpu_timer(ly)["gpu_ms"] for ly in space.static_config(arch))
    assert table.lookup(space, arch) == pytest.approx(arch_timer(arch)["mean_ms"] - 0.05, rel=1e-9)
    assert table.lookup(space, arch) > 1.5 * plain_sum  # launch-bound at this size: the sum would miss it
    assert table.kernels(space, arch) == sum(int(_gpu_timer(ly)["kernels"]) for ly in space.static_config(arch))
    report = validate_table(table, space, 30, arch_timer=arch_timer, progress=False)
    assert report["corrected"]["within_10pct"] == 1.0
    assert set(report["calibration_curve"]["points"]) == {"3", "5", "10", "20"}
    assert report["calibration_curve"]["needed"] <= 10
    again = LatencyTable.load(table.save(tmp_path / "t.json"))
    assert again.launch_ms == launch and again.lookup(space, arch) == table.lookup(space, arch)
    assert again.predict(space, arch) == pytest.approx(table.predict(space, arch))


def test_correction_picks_the_physics_features_when_launches_matter(space) -> None:
    """A device whose latency has a per-kernel cost the sums lack: the physics set (sum, MACs,
    kernels, bias) is chosen by leave-one-out and predicts new subnets exactly."""

    def arch_timer(arch):
        layers = space.static_config(arch)
        return {"mean_ms": sum(_gpu_timer(ly)["gpu_ms"] for ly in layers)
                + 0.003 * sum(_gpu_timer(ly)["kernels"] for ly in layers) + 0.1}  # fmt: skip

    table = build_table(space, calibration_archs=10, layer_timer=_gpu_timer, arch_timer=arch_timer, progress=False)
    assert table.launch_ms is None  # a CPU build of an eager backend sums
    assert table.correction["kind"] == "physics"
    assert table.correction["features"] == ["table_sum_ms", "macs_m", "kernels", "bias"]
    errors = table.correction["loo_median_rel_error"]
    assert errors["physics"] < 1e-4 and errors["scale"] > 1e-3
    arch = space.sample(np.random.default_rng(11))
    assert table.predict(space, arch) == pytest.approx(arch_timer(arch)["mean_ms"], rel=1e-4)


def test_backends_register_and_refuse_what_they_cannot_run() -> None:
    assert latency_backend("cuda-graph").source == "torch-cudagraph"
    assert latency_backend("torch-compile").source == "torch-compile"
    with pytest.raises(ValueError, match="runs on CUDA"):
        latency_backend("cuda-graph").check("cpu", "float32")
    assert latency_backend("torch").launch_bound("cuda:0") and not latency_backend("torch").launch_bound("cpu")
    assert not latency_backend("cuda-graph").launch_bound("cuda")
    layer = {"op": "conv", "in_ch": 3, "out_ch": 8, "kernel": 3, "stride": 1, "in_hw": 8, "groups": 1,
             "bn": True, "act": "relu"}  # fmt: skip
    with pytest.raises(ValueError, match="runs on CUDA"):
        measure_layer(layer, 1, "cpu", "float32", backend="cuda-graph")


def test_torch_compile_backend_times_a_compiled_layer_on_cpu(space) -> None:
    layer = next(ly for ly in space.static_config(space.min_arch()) if ly["op"] == "conv")
    timing = measure_layer(layer, 1, "cpu", "float32", backend="torch-compile")
    assert timing["mean_ms"] > 0 and "kernels" not in timing
    eager = measure_layer(layer, 1, "cpu", "float32", backend="torch")
    assert eager["mean_ms"] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_capture_of_a_subnet_equals_eager(space) -> None:
    arch = space.sample(np.random.default_rng(0))
    net = space.build_static(arch).cuda().eval()
    first = space.static_config(arch)[0]
    x = torch.randn(4, first["in_ch"], first["in_hw"], first["in_hw"], device="cuda")
    with torch.inference_mode():
        eager = net(x)
        static_x = x.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            net(static_x)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_y = net(static_x)
        graph.replay()
        torch.cuda.synchronize()
    torch.testing.assert_close(static_y, eager, rtol=1e-5, atol=1e-5)
    timing = measure_layer(space.static_config(arch)[1], 8, "cuda", "float16", backend="torch")
    assert timing["kernels"] >= 1 and timing["gpu_ms"] > 0
