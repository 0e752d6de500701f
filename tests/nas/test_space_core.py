"""SearchSpace contract on the ofa_mbv3 space (pure Python part)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

from nas.core.arch import Arch
from nas.core.space import create_space, list_spaces, space_from_id
from search_spaces.ofa_mbv3.config import make_divisible


@pytest.fixture(params=["imagenet", "proxyless_w1.3", "cifar", "mnist"])
def space(request):
    return create_space("ofa_mbv3", config=request.param)


def test_registry_lists_and_creates() -> None:
    assert "ofa_mbv3" in list_spaces()
    assert create_space("ofa_mbv3").space_id == "ofa_mbv3/imagenet"
    assert space_from_id("ofa_mbv3/cifar").config.name == "cifar"
    custom = create_space("ofa_mbv3", config="cifar", num_classes=100).space_id
    with pytest.raises(ValueError, match="customised config"):
        space_from_id(custom)
    with pytest.raises(ValueError, match=r"unknown space 'nope'.*ofa_mbv3"):
        create_space("nope")
    with pytest.raises(ValueError, match="config: unknown ofa_mbv3 preset 'tiny'"):
        create_space("ofa_mbv3", config="tiny")


def test_overrides_change_space_id() -> None:
    a = create_space("ofa_mbv3", config="cifar")
    b = create_space("ofa_mbv3", config="cifar", num_classes=100)
    assert a.space_id == "ofa_mbv3/cifar"
    assert b.space_id.startswith("ofa_mbv3/cifar+") and b.space_id != a.space_id
    with pytest.raises(ValueError, match="unknown ofa_mbv3 config keys \\['num_clases'\\]"):
        create_space("ofa_mbv3", config="cifar", num_clases=100)


def test_encode_decode_round_trip(space) -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        arch = space.sample(rng)
        vector = space.encode(arch)
        assert len(vector) == len(space.genes)
        assert space.decode(vector) == arch
        assert space.decode(np.array(vector)) == arch


def test_json_round_trip_and_id_stability(space) -> None:
    rng = np.random.default_rng(2)
    for _ in range(50):
        arch = space.sample(rng)
        restored = space.make(json.loads(json.dumps(arch.to_dict())))
        assert restored == arch
        assert hash(restored) == hash(arch)
        assert restored.arch_id == arch.arch_id
        assert len(arch.arch_id) == 16


def test_canonical_id_ignores_skipped_blocks() -> None:
    space = create_space("ofa_mbv3")
    base = space.max_arch().to_dict()
    base["d"] = [2, 3, 4, 2, 2]
    other = json.loads(json.dumps(base))
    # Blocks 2-3 of stage 0 and block 3 of stage 1 are skipped: change them only.
    for b in (2, 3, 7, 14, 15, 18, 19):
        other["ks"][b] = 3
        other["e"][b] = 4
    assert space.make(base).arch_id == space.make(other).arch_id
    canonical = space.make(other).to_dict()
    assert canonical["ks"][2] == 3 and canonical["e"][2] == 3  # reset to the smallest choice
    # A change to an active block changes the id.
    other["ks"][0] = 3
    assert space.make(base).arch_id != space.make(other).arch_id


def test_ofa_native_formats_are_accepted() -> None:
    space = create_space("ofa_mbv3")
    arch = space.max_arch().to_dict()
    as_ofa = {**arch, "r": [224], "wid": None}
    assert space.make(as_ofa) == space.max_arch()
    # as the reference's sample_active_subnet prints it: no resolution, so the largest
    printed = {"ks": [3] * 20, "e": [4] * 20, "d": [2, 3, 4, 2, 3]}
    made = space.make(printed)
    assert made["r"] == 224 and made["d"] == printed["d"] and made["e"][:2] == [4, 4]
    with pytest.raises(ValueError, match="wid: elastic width"):
        space.make({**arch, "wid": [1] * 20})


def test_sampling_reproducible(space) -> None:
    a = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    b = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a[0] == b[0]
    rng1, rng2 = np.random.default_rng(11), np.random.default_rng(11)
    assert [space.sample(rng1) for _ in range(20)] == [space.sample(rng2) for _ in range(20)]
    rng3 = np.random.default_rng(12)
    assert [space.sample(rng3) for _ in range(20)] != [space.sample(np.random.default_rng(11)) for _ in range(20)]


def test_mutate_and_crossover_stay_in_space(space) -> None:
    rng = np.random.default_rng(3)
    changed = 0
    for _ in range(100):
        a, b = space.sample(rng), space.sample(rng)
        child = space.crossover(a, b, rng)
        mutant = space.mutate(a, rng, prob=0.3)
        for arch in (child, mutant):
            assert arch.space_id == space.space_id
            assert space.make(arch.to_dict()) == arch  # valid and canonical
            vector = space.encode(arch)
            lower, upper = space.bounds
            assert np.all(np.array(vector) >= lower) and np.all(np.array(vector) <= upper)
        changed += mutant != a
        # every gene of the child comes from one of the parents (active genes)
        for key in ("d",):
            assert all(c in (x, y) for c, x, y in zip(child[key], a[key], b[key]))
    assert changed > 80
    assert space.mutate(space.max_arch(), rng, prob=0.0) == space.max_arch()
    with pytest.raises(ValueError, match="prob"):
        space.mutate(space.max_arch(), rng, prob=1.5)


def test_bounds_min_max(space) -> None:
    lower, upper = space.bounds
    assert space.decode(upper) == space.max_arch()
    assert space.decode(lower) == space.min_arch()
    cfg = space.config
    assert space.max_arch()["ks"] == [max(cfg.ks_choices)] * cfg.num_blocks
    assert space.min_arch()["d"] == [min(cfg.stage_depth_choices(s)) for s in range(cfg.num_stages)]
    assert space.max_arch()["d"] == list(cfg.stage_blocks)
    with pytest.raises(ValueError, match="out of range"):
        space.decode(upper + 1)
    with pytest.raises(ValueError, match="entries"):
        space.decode(list(upper)[:-1])


def test_optuna_distributions_round_trip(space) -> None:
    dists = space.to_optuna()
    assert list(dists) == [g.name for g in space.genes]
    rng = np.random.default_rng(4)
    for _ in range(20):
        arch = space.sample(rng)
        params = space.to_params(arch)
        for name, value in params.items():
            assert value in dists[name].choices
        assert space.from_params(params) == arch
    with pytest.raises(ValueError, match="params lack genes"):
        space.from_params({})


def test_features_one_hot(space) -> None:
    cfg = space.config
    rng = np.random.default_rng(5)
    arch = space.sample(rng)
    f = space.features(arch)
    assert f.shape == (space.num_features,)
    active_blocks = sum(arch["d"])
    assert f.sum() == 2 * active_blocks + 1
    per_block = len(cfg.ks_choices) + len(cfg.expand_choices)
    d0 = arch["d"][0]
    assert f[d0 * per_block : cfg.stage_blocks[0] * per_block].sum() == 0  # skipped blocks are zero
    assert (
        space.features(space.max_arch())[: cfg.num_blocks * per_block]
        .reshape(cfg.num_blocks, per_block)[:, len(cfg.ks_choices) - 1]
        .all()
    )


def test_size_matches_enumeration() -> None:
    space = create_space(
        "ofa_mbv3",
        config="mnist",
        stage_widths=[16, 24],
        stage_strides=[2, 2],
        stage_acts=["relu", "relu"],
        stage_se=[False, True],
        ks_choices=[3, 5],
        expand_choices=[3, 4],
        depth_choices=[1, 2],
        resolutions=[24, 28],
    )
    ids = set()
    uppers = [len(g.choices) for g in space.genes]
    for vector in itertools.product(*[range(u) for u in uppers]):
        ids.add(space.decode(vector).arch_id)
    assert space.size() == len(ids) == (4 + 16) ** 2 * 2


def test_imagenet_space_size_matches_once_for_all() -> None:
    space = create_space("ofa_mbv3")
    # ((3*3)^2 + (3*3)^3 + (3*3)^4)^5 ~ 2.2e19 subnets (OFA paper: "> 10^19"), times 25 resolutions.
    assert space.size() == (81 + 729 + 6561) ** 5 * 25
    assert space.config.resolutions == tuple(range(128, 225, 4))


@pytest.mark.parametrize(
    ("mutation", "pattern"),
    [
        (
            lambda d: d.update(ks=d["ks"][:-1]),
            r"ks: expected 20 entries \(one per block: 5 stages x 4\), got 19",
        ),
        (lambda d: d.update(e=d["e"] + [3]), r"e: expected 20 entries"),
        (
            lambda d: d["ks"].__setitem__(4, 9),
            r"ks\[4\] \(kernel size\): 9 is not an allowed value; choose one of \[3, 5, 7\]",
        ),
        (lambda d: d["e"].__setitem__(0, 5), r"e\[0\] \(expand ratio\): 5 is not an allowed value"),
        (lambda d: d["d"].__setitem__(2, 5), r"d\[2\] \(depth\): 5 is not an allowed value"),
        (lambda d: d.update(d=[4, 4, 4, 4]), r"d: expected 5 entries \(one per stage\), got 4"),
        (lambda d: d.update(r=300), r"r: resolution 300 is not supported; allowed: 128..224"),
        (lambda d: d.update(r=130), r"r: resolution 130 is not supported"),
        (lambda d: d.update(r="224"), r"r: resolution must be an integer"),
        (lambda d: d.pop("ks"), r"arch lacks keys \['ks'\]"),
        (lambda d: d.update(depth=[2]), r"unknown arch keys \['depth'\]"),
        (lambda d: d["ks"].__setitem__(0, 3.0), r"ks\[0\]: expected an integer"),
        (lambda d: d.update(ks=7), r"ks: expected a list of 20 integers"),
    ],
)
def test_bad_arch_gives_clear_value_error(mutation, pattern) -> None:
    space = create_space("ofa_mbv3")
    data = space.max_arch().to_dict()
    mutation(data)
    with pytest.raises(ValueError, match=pattern):
        space.make(data)


def test_arch_of_other_space_is_refused() -> None:
    imagenet, cifar = create_space("ofa_mbv3"), create_space("ofa_mbv3", config="cifar")
    with pytest.raises(ValueError, match="belongs to space 'ofa_mbv3/cifar'"):
        imagenet.encode(cifar.max_arch())
    with pytest.raises(ValueError, match="JSON object"):
        imagenet.make([1, 2, 3])  # type: ignore[arg-type]


def test_arch_is_immutable_and_hashable() -> None:
    arch = create_space("ofa_mbv3").max_arch()
    copy = arch.to_dict()
    copy["r"] = 128
    assert arch["r"] == 224
    arch["ks"].append(3)
    assert len(arch["ks"]) == 20
    with pytest.raises(AttributeError):
        arch.json_str = "{}"  # type: ignore[misc]
    assert {arch: 1}[Arch.from_canonical(arch.space_id, arch.to_dict())] == 1


def test_make_divisible_matches_timm() -> None:
    from timm.layers import make_divisible as timm_make_divisible

    for value in [*range(1, 2000, 7), 16 * 1.2, 960 * 0.75, 1280 * 1.2, 3.5]:
        assert make_divisible(value, 8) == timm_make_divisible(value, 8)


def test_core_modules_do_not_import_torch() -> None:
    code = (
        "import sys, nas.core.arch, nas.core.space, nas.cli, search_spaces.ofa_mbv3.space, predictors.flops;"
        "from nas.core.space import create_space; s = create_space('ofa_mbv3'); s.static_config(s.max_arch());"
        "assert 'torch' not in sys.modules, 'torch imported'; assert 'ray' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
