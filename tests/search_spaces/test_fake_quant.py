"""Quantization-aware supernet training: fake int8 in the dynamic convolutions and the phase that uses it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nas.core.config import ConfigError
from nas.testing.tiny_train import tiny
from search_spaces.fake_quant import fake_quant_activation, fake_quant_weight
from search_spaces.ofa_mbv3.space import OFAMobileNetV3Space
from search_spaces.training.checkpoint import load_supernet
from search_spaces.training.config import load_train_config
from search_spaces.training.evaluation import recalibrated_subnet
from search_spaces.training.trainer import SupernetTrainer


def test_weights_round_per_output_channel_to_int8_with_straight_through_gradients() -> None:
    w = (
        torch.randn(6, 4, 3, 3, generator=torch.Generator().manual_seed(0))
        * torch.linspace(0.1, 3, 6)[:, None, None, None]
    )
    w.requires_grad_(True)
    q = fake_quant_weight(w)
    scale = w.detach().abs().amax((1, 2, 3)) / 127
    levels = q.detach() / scale[:, None, None, None]
    assert torch.allclose(levels, levels.round(), atol=1e-3) and levels.abs().max() <= 127 + 1e-3
    assert ((q - w).abs() <= scale[:, None, None, None] / 2 + 1e-6).all()  # nearest level, per channel
    q.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))  # inside the range the gradient passes straight through


def test_activations_round_to_uint8_over_their_range() -> None:
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    q = fake_quant_activation(x)
    scale = float(x.max() - x.min()) / 255
    assert float((q - x).abs().max()) <= scale / 2 + 1e-5
    assert len(torch.unique(q)) <= 256
    relu = x.relu()  # all non-negative: zero is exactly representable, as in the deployed uint8 tensor
    assert float(fake_quant_activation(relu).min()) == 0.0


def test_supernet_blocks_switch_fake_int8_on_and_off() -> None:
    space = OFAMobileNetV3Space("mnist", **tiny()["space"]["options"])
    supernet = space.build_supernet(seed=0).eval()
    supernet.set_active(space.max_arch())
    x = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        float_out = supernet(x)
        supernet.set_fake_quant([True] * len(supernet.blocks))
        quant_out = supernet(x)
        supernet.set_fake_quant([False] * len(supernet.blocks))
        again = supernet(x)
    assert not torch.allclose(float_out, quant_out)
    assert torch.equal(float_out, again)
    # int8 rounding is a small perturbation of the float function
    assert float((quant_out - float_out).abs().max()) < 0.2 * float(float_out.abs().max()) + 1e-3
    with pytest.raises(ValueError, match="flags for"):
        supernet.set_fake_quant([True])


def _quant_phase(p: float) -> dict:
    return {"name": "quant", "epochs": 1, "lr": 0.01, "open": {"ks": "all", "d": "all", "e": "all", "r": "all"},
            "fake_quant": p}  # fmt: skip


def test_quantization_aware_phase_trains_and_leaves_a_float_supernet(tmp_path: Path) -> None:
    runs = {}
    for p in (0.0, 0.5):
        cfg = tiny()
        cfg["phases"] = [*cfg["phases"], _quant_phase(p)]
        out = tmp_path / f"p{p}"
        trainer = SupernetTrainer(load_train_config(cfg), out)
        trainer.run()
        assert trainer.history[-1]["phase"] == "quant"
        supernet, _ = load_supernet(out)
        assert not any(block.fake_quant for block in supernet.blocks)
        runs[p] = supernet.state_dict()
    # the same seeds and data: only the fake quantization makes the trained weights differ
    changed = [k for k in runs[0.0] if not torch.equal(runs[0.0][k], runs[0.5][k])]
    assert changed and all(np.isfinite(runs[0.5][k].float().numpy()).all() for k in changed)


def test_fake_quant_is_a_probability() -> None:
    cfg = tiny()
    cfg["phases"] = [*cfg["phases"], _quant_phase(1.5)]
    with pytest.raises(ConfigError, match=r"fake_quant: a probability per block in \[0, 1\]"):
        load_train_config(cfg)


def test_a_quantization_aware_phase_continues_a_trained_supernet(tmp_path: Path) -> None:
    base = tmp_path / "base"
    SupernetTrainer(load_train_config(tiny()), base).run()
    trained, _ = load_supernet(base)
    cfg = tiny(training={"init_from": str(base)})
    cfg["phases"] = [dict(_quant_phase(1.0), epochs=0)]
    SupernetTrainer(load_train_config(cfg), tmp_path / "same").run()
    same, _ = load_supernet(tmp_path / "same")
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), same.state_dict().values()))
    cfg["phases"] = [_quant_phase(1.0)]
    trainer = SupernetTrainer(load_train_config(cfg), tmp_path / "qat")
    trainer.run()
    assert trainer.teacher is not None  # the starting supernet's largest subnet teaches from the first step
    # ... with its BN statistics re-estimated, not the mixture the supernet's last phase left
    # (a CIFAR-10 teacher without it was at chance and its continuation collapsed)
    fresh = SupernetTrainer(load_train_config(cfg), tmp_path / "fresh")
    fresh._init_from(str(base))
    expected = recalibrated_subnet(trained, trained.space.max_arch(), fresh.dataset,
                                   recal_batches=fresh.config.training.bn_recal_batches, seed=0)  # fmt: skip
    means = [(k, v) for k, v in expected.state_dict().items() if k.endswith("running_mean")]
    assert means and all(torch.allclose(fresh.teacher.state_dict()[k], v) for k, v in means)
    stale = trained.extract(trained.space.max_arch()).state_dict()
    assert any(not torch.allclose(stale[k], v) for k, v in means)
    qat, _ = load_supernet(tmp_path / "qat")
    assert any(not torch.equal(a, b) for a, b in zip(trained.state_dict().values(), qat.state_dict().values()))
    other = tiny(training={"init_from": str(base)})
    other["space"]["options"]["num_classes"] = 7
    with pytest.raises(ConfigError, match=r"init_from: .* holds a supernet of ofa_mbv3/mnist\+"):
        SupernetTrainer(load_train_config(other), tmp_path / "other").run()
