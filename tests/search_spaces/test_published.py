"""Published once-for-all supernets: reference checkpoints (built here with the reference package
``ofa``) import into run folders that compute what the reference network computes, and export back."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.cli import main
from nas.core.space import create_space
from nas.published import PublishedError, export_reference, import_supernet
from search_spaces.ofa_mbv3 import published
from search_spaces.ofa_mbv3.published import ours_from_reference, reference_from_ours
from search_spaces.training.checkpoint import load_supernet

ofa_networks = pytest.importorskip("ofa.imagenet_classification.elastic_nn.networks")


# published name -> (reference class, width, our preset)
NETWORKS = {
    "ofa_mbv3_d234_e346_k357_w1.0": ("OFAMobileNetV3", 1.0, "imagenet"),
    "ofa_mbv3_d234_e346_k357_w1.2": ("OFAMobileNetV3", 1.2, "imagenet_w1.2"),
    "ofa_proxyless_d234_e346_k357_w1.3": ("OFAProxylessNASNets", 1.3, "proxyless_w1.3"),
}


def _reference(width: float = 1.0, seed: int = 0, family: str = "OFAMobileNetV3") -> torch.nn.Module:
    """A reference OFA MobileNetV3 / ProxylessNAS supernet with random weights and BN statistics
    (so a wrong mapping shows), built as the reference model zoo builds the published ones."""
    torch.manual_seed(seed)
    net = getattr(ofa_networks, family)(
        dropout_rate=0, width_mult=width, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4]
    )
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    net = _reference()
    path = tmp_path_factory.mktemp("zoo") / "ofa_mbv3_d234_e346_k357_w1.0"
    torch.save({"state_dict": net.state_dict()}, str(path))
    return net, path


def _same_outputs(reference: torch.nn.Module, run: Path, archs: int = 3) -> None:
    supernet, _ = load_supernet(run)
    supernet.eval()
    space = supernet.space
    rng = np.random.default_rng(0)
    for _ in range(archs):
        arch = space.sample(rng)
        d = arch.to_dict()
        reference.set_active_subnet(ks=d["ks"], e=d["e"], d=d["d"])
        x = torch.randn(2, 3, d["r"], d["r"], generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            expected = reference(x)
            with supernet.active(arch):
                got = supernet(x)
            extracted = supernet.extract(arch).eval()(x)
        assert torch.allclose(got, expected, atol=1e-5), float((got - expected).abs().max())
        assert torch.allclose(extracted, expected, atol=1e-5)


def test_parameter_names_map_both_ways(reference_file) -> None:
    net, _ = reference_file
    ours = create_space("ofa_mbv3", config="imagenet").build_supernet(seed=None).state_dict()
    reference_names = list(net.state_dict())
    assert sorted(ours_from_reference(k) for k in reference_names) == sorted(ours)
    assert all(reference_from_ours(ours_from_reference(k)) == k for k in reference_names)
    with pytest.raises(KeyError):
        ours_from_reference("blocks.3.conv.something_else.weight")


def test_imported_checkpoint_computes_what_the_reference_computes(reference_file, tmp_path: Path) -> None:
    net, path = reference_file
    assert main(["supernet", "import", str(path), "--out", str(tmp_path / "run")]) == 0
    _same_outputs(net, tmp_path / "run")
    # the run folder is one `nas eval` takes as it takes a trained one (synthetic data unless given)
    assert main(["eval", str(tmp_path / "run"), "--min", "--recal-batches", "1", "--json"]) == 0
    # and back to the reference format: the reference network loads it and the tensors are the same
    assert main(["supernet", "export-ofa", str(tmp_path / "run"), str(tmp_path / "back.pth")]) == 0
    back = torch.load(str(tmp_path / "back.pth"), weights_only=True)["state_dict"]
    original = net.state_dict()
    assert set(back) == set(original) and all(torch.equal(back[k], original[k]) for k in original)
    fresh = _reference(seed=5)
    fresh.load_state_dict(back)


def test_width_1_2_and_a_mismatched_checkpoint(tmp_path: Path) -> None:
    net = _reference(width=1.2)
    path = tmp_path / "w12.pth"
    torch.save({"state_dict": net.state_dict()}, str(path))
    import_supernet(str(path), tmp_path / "run12", space_options={"config": "imagenet_w1.2"})
    assert load_supernet(tmp_path / "run12")[0].space.space_id == "ofa_mbv3/imagenet_w1.2"  # a preset, not an override
    _same_outputs(net, tmp_path / "run12", archs=1)
    with pytest.raises(PublishedError, match=r"does not fit the supernet of space ofa_mbv3/imagenet: .* another shape"):
        import_supernet(str(path), tmp_path / "wrong")
    assert not (tmp_path / "wrong" / "supernet.json").exists()


def test_a_checkpoint_with_pickled_code_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"state_dict": Evil()}))
    with pytest.raises(PublishedError, match=r"not a checkpoint torch.load\(weights_only=True\) can read"):
        import_supernet(str(path), tmp_path / "run")


def test_download_by_name_caches_and_verifies(reference_file, tmp_path: Path, monkeypatch) -> None:
    net, path = reference_file
    name = "ofa_mbv3_d234_e346_k357_w1.0"
    local = {n: dataclasses.replace(p, url=path.as_uri()) for n, p in published.PUBLISHED.items()}
    monkeypatch.setattr(published, "PUBLISHED", local)
    monkeypatch.setenv("HWNAS_CACHE", str(tmp_path / "cache"))
    import_supernet(name, tmp_path / "run")
    cached = tmp_path / "cache" / "ofa_nets" / name
    assert cached.is_file() and (cached.parent / f"{name}.sha256").read_text().strip()
    _same_outputs(net, tmp_path / "run", archs=1)
    # a second import uses the cache (the source is gone) and checks its checksum
    local[name] = dataclasses.replace(local[name], url=(tmp_path / "gone").as_uri())
    import_supernet(name, tmp_path / "run2")
    with cached.open("r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(PublishedError, match="checksum differs from the one recorded at download"):
        import_supernet(name, tmp_path / "run3")
    # offline: a clear error naming the URL and what to do instead
    monkeypatch.setenv("HWNAS_CACHE", str(tmp_path / "empty"))
    local[name] = dataclasses.replace(local[name], url="http://127.0.0.1:9/ofa_nets/" + name)
    with pytest.raises(PublishedError, match=r"cannot download http://127.0.0.1:9/.*pass the file instead"):
        import_supernet(name, tmp_path / "run4")
    with pytest.raises(PublishedError, match="neither a file nor a published supernet; published: ofa_mbv3_"):
        import_supernet("ofa_resnet99", tmp_path / "run5")


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_equivalence_with_the_reference_on_20_subnets(name: str, tmp_path: Path) -> None:
    """Logits in eval and train mode, the extracted static subnet, MACs and params, for 20 random subnets."""
    from ofa.utils.pytorch_utils import count_net_flops, count_parameters

    from predictors.flops import count_cost

    family, width, config = NETWORKS[name]
    reference = _reference(width=width, seed=3, family=family)
    path = tmp_path / name
    torch.save({"state_dict": reference.state_dict()}, str(path))
    import_supernet(str(path), tmp_path / "run")  # a file named as the published one: that one's preset
    supernet, _ = load_supernet(tmp_path / "run")
    assert supernet.space.space_id == f"ofa_mbv3/{config}"  # the preset itself, not an override
    export_reference(tmp_path / "run", tmp_path / "back.pth")  # the round trip gives identical tensors
    back = torch.load(str(tmp_path / "back.pth"), weights_only=True)["state_dict"]
    original = reference.state_dict()
    assert set(back) == set(original) and all(torch.equal(back[k], original[k]) for k in original)
    for module in supernet.modules():  # the reference is built without dropout: compare train mode like for like
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    space = supernet.space
    rng = np.random.default_rng(7)
    resolutions = set()
    for i in range(20):
        arch = space.sample(rng)
        d = arch.to_dict()
        r = d["r"] if i % 4 else 128 + 32 * (i // 4 % 4)  # several resolutions, the corners included
        arch = space.make({**d, "r": r})
        resolutions.add(r)
        reference.set_active_subnet(ks=d["ks"], e=d["e"], d=d["d"])
        x = torch.randn(4, 3, r, r, generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            reference.eval()
            supernet.eval()
            with supernet.active(arch):
                assert torch.allclose(supernet(x), reference(x), atol=1e-5)
            reference.train()
            supernet.train()
            with supernet.active(arch):  # train mode: BN normalises with the batch's statistics
                assert torch.allclose(supernet(x), reference(x), atol=1e-5)
            reference.eval()
            supernet.eval()
            theirs = reference.get_active_subnet(preserve_weight=True).eval()
            ours = supernet.extract(arch).eval()
            assert torch.allclose(ours(x), theirs(x), atol=1e-5)
        cost = count_cost(space.static_config(arch))
        # the reference sums per-layer counts in float32 tensors: equal up to float32 rounding
        assert cost.macs == pytest.approx(count_net_flops(theirs, (1, 3, r, r)), rel=2e-7)
        assert cost.params == count_parameters(theirs)
    assert len(resolutions) >= 4
