"""Supernet training: learning, phases, exact resume, configs, distributed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from nas.core.config import ConfigError
from nas.testing.tiny_train import TINY, tiny
from search_spaces.training import checkpoint as ckpt
from search_spaces.training.config import default_phases, load_train_config, resolve_open
from search_spaces.training.losses import lr_at
from search_spaces.training.sampler import PhaseSampler
from search_spaces.training.trainer import SupernetTrainer

ROOT = Path(__file__).resolve().parents[2]


def run_trainer(cfg: dict, out: Path, resume: bool = False) -> tuple[SupernetTrainer, dict]:
    trainer = SupernetTrainer(load_train_config(cfg), out, resume=resume)
    return trainer, trainer.run()


def test_loss_goes_down_and_outputs_are_written(tmp_path: Path) -> None:
    cfg = tiny(data={"synthetic_samples": 768}, phases=[{"name": "full", "epochs": 4, "lr": 0.2, "open": {"r": "all"}}])
    trainer, result = run_trainer(cfg, tmp_path)
    losses = [h["loss"] for h in trainer.history if "loss" in h]
    assert len(losses) == 4
    assert losses[-1] < 0.6 * losses[0], losses
    assert result["test_accuracy"]["max"] > 0.5  # 10 classes: chance is 0.1
    meta = json.loads((tmp_path / "supernet.json").read_text())
    assert meta["space_id"].startswith("ofa_mbv3/mnist+")
    assert (tmp_path / "training_curves.png").stat().st_size > 1000
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if "epoch" in r] == [0, 1, 2, 3]
    assert any("eval_holdout" in r for r in records)
    supernet, _ = ckpt.load_supernet(tmp_path)
    for name, tensor in load_file(str(tmp_path / "supernet.safetensors")).items():
        assert torch.equal(supernet.state_dict()[name], tensor)


def test_each_phase_opens_exactly_its_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, list] = {}
    original = SupernetTrainer._step_archs

    def spy(self, phase, sampler, rng):
        archs = original(self, phase, sampler, rng)
        seen.setdefault(phase.name, []).extend(archs)
        return archs

    monkeypatch.setattr(SupernetTrainer, "_step_archs", spy)
    trainer, _ = run_trainer(tiny(), tmp_path)
    space = trainer.space
    for phase in trainer.phases:
        allowed = resolve_open(phase.open, space)
        archs = seen[phase.name]
        values = {
            "ks": {k for a in archs for s, d in enumerate(a["d"]) for k in a["ks"][s * 2 : s * 2 + d]},
            "e": {e for a in archs for s, d in enumerate(a["d"]) for e in a["e"][s * 2 : s * 2 + d]},
            "d": {d for a in archs for d in a["d"]},
            "r": {a["r"] for a in archs},
        }
        for dim, used in values.items():
            assert used == set(allowed[dim]), (phase.name, dim, used, allowed[dim])
    steps = len(trainer._loader())
    assert len(seen["expand"]) == 3 * steps  # sandwich: largest + smallest + 1 random per step
    assert len(seen["depth"]) == 2 * steps and len(seen["full"]) == 2 * steps


def test_default_schedule_is_once_for_all_order() -> None:
    space = load_train_config({"space": TINY["space"]}).space.build()
    phases = default_phases()
    assert [p.name for p in phases] == ["full", "kernel", "depth_1", "depth_2", "expand_1", "expand_2"]
    opened = [resolve_open(p.open, space) for p in phases]
    assert [len(o["ks"]) for o in opened] == [1, 2, 2, 2, 2, 2]
    assert [o["d"] for o in opened] == [(2,), (2,), (1, 2), (1, 2), (1, 2), (1, 2)]
    assert [o["e"] for o in opened] == [(3,), (3,), (3,), (3,), (2, 3), (2, 3)]
    assert all(o["r"] == (12, 16) for o in opened)


def test_phase_sampler_corners() -> None:
    space = load_train_config({"space": TINY["space"]}).space.build()
    sampler = PhaseSampler(space, resolve_open({"ks": "all", "d": [1], "r": "all"}, space))
    assert sampler.largest()["ks"][0] == 5 and sampler.largest()["d"] == [1, 1]
    assert sampler.smallest()["r"] == 12 and sampler.smallest()["e"][0] == 3
    rng = np.random.default_rng(0)
    assert all(a["d"] == [1, 1] for a in (sampler.sample(rng) for _ in range(20)))


def test_phase_sampler_keeps_a_fixed_depth_stage() -> None:
    """ProxylessNAS's last stage has exactly one block: phases that fix or open depth keep it at 1."""
    from nas.core.space import create_space

    space = create_space("ofa_mbv3", config="proxyless_w1.3")
    rng = np.random.default_rng(0)
    for open_dims in ({"ks": "all", "r": "all"}, {"ks": "all", "d": "top2", "r": "all"}, {"d": "all"}):
        sampler = PhaseSampler(space, resolve_open(open_dims, space))
        assert sampler.largest()["d"][-1] == sampler.smallest()["d"][-1] == 1
        assert all(sampler.sample(rng)["d"][-1] == 1 for _ in range(10))
    assert PhaseSampler(space, resolve_open({"ks": "all"}, space)).largest()["d"] == [4, 4, 4, 4, 4, 1]


def test_lr_schedule_warmup_and_cosine() -> None:
    phase = load_train_config(
        {"space": TINY["space"], "phases": [{"name": "p", "epochs": 2, "lr": 0.1, "warmup_epochs": 0.5}]}
    ).phases[0]
    assert lr_at(phase, 0, 10) == pytest.approx(0.1 / 5)
    assert lr_at(phase, 4, 10) == pytest.approx(0.1)
    assert lr_at(phase, 5, 10) == pytest.approx(0.1)
    assert lr_at(phase, 19, 10) < 0.01
    assert lr_at(phase, 12, 10) < lr_at(phase, 8, 10)


def _checkpoint_tensors(folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, state = ckpt.load_checkpoint(folder / "checkpoint")
    return tensors, state


@pytest.mark.parametrize("stop_at", [5, 27])  # mid-epoch of phase 1; mid-phase 3 (after teacher + eval)
def test_kill_and_resume_equals_uninterrupted(tmp_path: Path, stop_at: int) -> None:
    end = 33
    run_trainer(tiny(training={"max_steps": end}), tmp_path / "ref")
    _, first = run_trainer(tiny(training={"max_steps": stop_at}), tmp_path / "resumed")
    assert first == {"stopped": True, "reason": "max_steps", "global_step": stop_at}
    _, second = run_trainer(tiny(training={"max_steps": end}), tmp_path / "resumed", resume=True)
    assert second["global_step"] == end
    ref_t, ref_s = _checkpoint_tensors(tmp_path / "ref")
    res_t, res_s = _checkpoint_tensors(tmp_path / "resumed")
    assert set(ref_t) == set(res_t)
    assert any(k.startswith("optim.") for k in ref_t)
    for name in ref_t:
        assert torch.equal(ref_t[name], res_t[name]), name
    for field in ("phase", "epoch", "step", "global_step", "optimizer", "has_teacher"):
        assert ref_s[field] == res_s[field], field
    ref_metrics = (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()
    res_metrics = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()

    def strip(lines: list[str]) -> list[dict]:
        return [{k: v for k, v in json.loads(x).items() if k not in ("images_per_s", "seconds")} for x in lines]

    assert strip(ref_metrics) == strip(res_metrics)


def test_resume_refuses_changed_config_and_existing_run(tmp_path: Path) -> None:
    run_trainer(tiny(training={"max_steps": 3}), tmp_path)
    changed = tiny(training={"max_steps": 6})
    changed["phases"][0]["lr"] = 0.5
    with pytest.raises(ckpt.CheckpointError, match=r"config changed since the checkpoint \(sections \['phases'\]\)"):
        run_trainer(changed, tmp_path, resume=True)
    with pytest.raises(ckpt.CheckpointError, match="already holds a checkpoint; pass --resume"):
        run_trainer(tiny(), tmp_path)
    with pytest.raises(ckpt.CheckpointError, match="nothing to resume"):
        run_trainer(tiny(), tmp_path / "empty", resume=True)
    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    weights = tmp_path / "checkpoint" / state["weights_file"]
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ckpt.CheckpointError, match="checksum mismatch"):
        run_trainer(tiny(training={"max_steps": 6}), tmp_path, resume=True)


def _nas(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "nas.cli", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


def test_cli_killed_with_sigkill_resumes_to_the_same_supernet(tmp_path: Path) -> None:
    cfg = tiny(training={"checkpoint_every_steps": 4, "threads": 1})
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    ref = _nas("train", str(config), "--out", str(tmp_path / "ref"), "--json")
    out, err = ref.communicate(timeout=600)
    assert ref.returncode == 0, err
    run = _nas("train", str(config), "--out", str(tmp_path / "run"))
    state = tmp_path / "run" / "checkpoint" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline and not (state.exists() and json.loads(state.read_text())["global_step"] >= 8):
        time.sleep(0.2)
    run.send_signal(signal.SIGKILL)
    run.communicate()
    assert not (tmp_path / "run" / "supernet.safetensors").exists()
    resumed = _nas("train", str(config), "--out", str(tmp_path / "run"), "--resume", "--json")
    out2, err2 = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err2
    a = load_file(str(tmp_path / "ref" / "supernet.safetensors"))
    b = load_file(str(tmp_path / "run" / "supernet.safetensors"))
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert json.loads(out2)["test_accuracy"] == json.loads(out)["test_accuracy"]
    evaluation = _nas("eval", str(tmp_path / "run"), "--min", "--json")
    payload, err3 = evaluation.communicate(timeout=300)
    assert evaluation.returncode == 0, err3
    payload = json.loads(payload)
    assert payload["split"] == "test" and payload["accuracy"] == pytest.approx(json.loads(out)["test_accuracy"]["min"])
    bad = _nas("eval", str(tmp_path / "nowhere"))
    _, err4 = bad.communicate(timeout=300)
    assert bad.returncode == 2 and "no supernet.json found" in err4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"trainng": {}}, r"unknown key trainng; allowed keys: data, phases, space, training"),
        ({"training": {"kd_ratoi": 1}}, r"unknown key training\.kd_ratoi"),
        ({"data": {"batch_size": "64"}}, r"data\.batch_size: expected an integer, got '64'"),
        ({"data": {"batch_size": 0}}, r"data\.batch_size: must be positive"),
        ({"phases": [{"name": "a", "epochs": -1, "lr": 0.1}]}, r"phases\[0\]\.epochs: must be >= 0, got -1"),
        ({"phases": [{"name": "a", "lr": 0.1}]}, r"phases\[0\]\.epochs: required key is missing"),
        (
            {"phases": [{"name": "a", "epochs": 1, "lr": 0.1, "open": {"ks": [3, 9]}}]},
            r"phases\[0\]\.open\.ks: \[9\] is not choices of the space .* \(choices \[3, 5\]\)",
        ),
        (
            {"phases": [{"name": "a", "epochs": 1, "lr": 0.1, "open": {"width": "all"}}]},
            r"phases\[0\]\.open\.width: unknown elastic dimension",
        ),
        ({"training": {"distillation": "soft"}}, r"training\.distillation: 'soft' is not one of"),
        ({"training": {"teacher_phase": "nope"}}, r"training\.teacher_phase: 'nope' is not one of"),
        ({"space": {"config": "huge"}}, r"space: config: unknown ofa_mbv3 preset 'huge'"),
    ],
)
def test_bad_configs_name_the_key(change: dict, message: str) -> None:
    cfg = tiny()
    for section, value in change.items():
        if isinstance(value, dict) and isinstance(cfg.get(section), dict):
            cfg[section] = {**cfg[section], **value}
        else:
            cfg[section] = value
    with pytest.raises(ConfigError, match=message):
        load_train_config(cfg)


def test_bad_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_train_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("space: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_train_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_train_config(bad)


def test_dataset_that_does_not_fit_the_space(tmp_path: Path) -> None:
    cfg = tiny(data={"name": "digits"})  # 1-channel images
    cfg["space"] = {**cfg["space"], "options": {**cfg["space"]["options"], "in_channels": 3}}
    with pytest.raises(ConfigError, match=r"takes 3 input channel.*has 1; set space.options.in_channels: 1"):
        SupernetTrainer(load_train_config(cfg), tmp_path)


def test_delayed_shrinking_moves_epochs_and_forces_sandwich(tmp_path: Path) -> None:
    cfg = tiny(training={"delayed_shrinking": True, "shrink_start": 0.5})
    cfg["phases"][0]["epochs"] = 4
    trainer = SupernetTrainer(load_train_config(cfg), tmp_path)
    assert [p.epochs for p in trainer.phases] == [2, 3, 1, 1]
    assert all(p.sandwich for p in trainer.phases[1:])
    assert trainer._distillation() == "inplace"


def test_torchrun_two_processes_keep_replicas_identical(tmp_path: Path) -> None:
    cfg = tiny(training={"threads": 1, "max_steps": 10})
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    script = tmp_path / "ddp.py"
    script.write_text(
        "import sys, torch, torch.distributed as dist\n"
        "from search_spaces.training.config import load_train_config\n"
        "from search_spaces.training.trainer import SupernetTrainer\n"
        f"t = SupernetTrainer(load_train_config({str(config)!r}), {str(tmp_path / 'out')!r})\n"
        "r = t.run()\n"
        "flat = torch.cat([p.detach().reshape(-1) for p in t.supernet.parameters()])\n"
        "gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]\n"
        "dist.all_gather(gathered, flat)\n"
        "assert all(torch.equal(gathered[0], g) for g in gathered), 'replicas diverged'\n"
        "init = torch.cat([p.detach().reshape(-1) for p in t.space.build_supernet(seed=0).parameters()])\n"
        "assert not torch.equal(flat, init), 'no training happened'\n"
        "print('OK', dist.get_rank(), t.dist.world_size, r)\n"
        "dist.destroy_process_group()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("OK") == 2 and "'stopped': True" in proc.stdout
    assert (tmp_path / "out" / "checkpoint" / "state.json").exists()
