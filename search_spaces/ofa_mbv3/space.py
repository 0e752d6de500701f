"""The ``ofa_mbv3`` search space: pure Python, no torch.

Arch JSON is once-for-all's own: ``{"ks": [k per block], "e": [e per block],
"d": [d per stage], "r": resolution}``. ``r`` may also be given as a one-element
list (``[224]``, as once-for-all's ``ArchManager`` writes it); it is stored as an int. Without
``r`` (as the reference's ``sample_active_subnet`` prints a config) the arch is at the largest
resolution.
A ``"wid": null`` entry (once-for-all's placeholder for elastic width) is accepted
and dropped.

With the ``precisions`` option (for example ``[int8, fp32]``) every elastic block also has a
precision, ``"q": [p per block]`` (:mod:`nas.core.precision`); without ``q`` an arch is at the
largest choice. Precision changes no shape: every static-config layer then carries its
``precision`` (so latency entries are per precision), and the weights are the float space's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.core.arch import Arch
from nas.core.precision import PRECISION_KEY, arch_keys, label_layers, precision_genes, precision_indices
from nas.core.space import Gene
from search_spaces.elastic.space import ElasticSpace, number_list
from search_spaces.ofa_mbv3.config import PRESETS, OFAMobileNetV3Config, make_divisible

if TYPE_CHECKING:  # pragma: no cover
    from search_spaces.ofa_mbv3.supernet import OFAMobileNetV3Supernet

ARCH_KEYS = ("d", "e", "ks", "r")


def conv_out_size(size: int, kernel: int, stride: int) -> int:
    """Output size of a conv with ``padding = kernel // 2`` (odd kernels)."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


class OFAMobileNetV3Space(ElasticSpace):
    """Elastic kernel / expand ratio / depth / resolution over an OFA MobileNetV3.

    Args:
        config: Preset name (``imagenet``, ``cifar``, ``mnist``), a config, or a dict.
        **overrides: Config fields to override (for example ``num_classes=100``).
    """

    name = "ofa_mbv3"
    config: OFAMobileNetV3Config
    config_type = OFAMobileNetV3Config
    preset_table = PRESETS

    def _build_genes(self) -> list[Gene]:
        cfg = self.config
        nb, ns = cfg.num_blocks, cfg.num_stages
        genes = [Gene(f"ks_{i}", cfg.ks_choices) for i in range(nb)]
        genes += [Gene(f"e_{i}", cfg.expand_choices) for i in range(nb)]
        genes += [Gene(f"d_{j}", cfg.stage_depth_choices(j)) for j in range(ns)]
        genes.append(Gene("r", cfg.resolutions))
        self._r = 2 * nb + ns  # index of the resolution gene; precision genes follow it
        return genes + precision_genes(cfg.precisions, nb)

    # ------------------------------------------------------------- encoding
    def _to_dict(self, vector: Sequence[int]) -> dict[str, Any]:
        cfg = self.config
        nb = cfg.num_blocks
        out: dict[str, Any] = {
            "ks": [cfg.ks_choices[i] for i in vector[:nb]],
            "e": [cfg.expand_choices[i] for i in vector[nb : 2 * nb]],
            "d": self._depths(vector),
            "r": cfg.resolutions[vector[self._r]],
        }
        if cfg.precisions:
            out[PRECISION_KEY] = [cfg.precisions[i] for i in vector[self._r + 1 :]]
        return out

    def _from_dict(self, data: Mapping[str, Any]) -> list[int]:
        cfg = self.config
        arch_keys(ARCH_KEYS, cfg.precisions, data, "ofa_mbv3")
        if data.get("wid") is not None:
            raise ValueError("wid: elastic width is not part of this space; remove 'wid' or set it to null")
        missing = [k for k in ARCH_KEYS if k not in data and k != "r"]  # no r: the largest resolution
        if missing:
            raise ValueError(f"arch lacks keys {missing}; an ofa_mbv3 arch has keys {list(ARCH_KEYS)}")
        built = cfg.stage_blocks
        per_block = (
            f"one per block: {cfg.num_stages} stages x {built[0]}"
            if len(set(built)) == 1
            else f"one per block: {' + '.join(map(str, built))} over {cfg.num_stages} stages"
        )
        ks = number_list(data["ks"], "ks", cfg.num_blocks, per_block, integer=True)
        es = number_list(data["e"], "e", cfg.num_blocks, per_block, integer=True)
        ds = number_list(data["d"], "d", cfg.num_stages, "one per stage", integer=True)
        r = self._resolution_of(data)
        vector = [self._genes[i].index(k, f"ks[{i}] (kernel size)") for i, k in enumerate(ks)]
        vector += [self._genes[cfg.num_blocks + i].index(e, f"e[{i}] (expand ratio)") for i, e in enumerate(es)]
        vector += [self._genes[2 * cfg.num_blocks + j].index(d, f"d[{j}] (depth)") for j, d in enumerate(ds)]
        vector.append(cfg.resolutions.index(r))
        vector += precision_indices(data, self._genes[self._r + 1 :], per_block)
        return vector

    def _inactive_blocks(self, depths: Sequence[int]) -> list[int]:
        cfg = self.config
        return [
            offset + i for offset, built, d in zip(cfg.stage_offsets, cfg.stage_blocks, depths) for i in range(d, built)
        ]

    def _depths(self, vector: Sequence[int]) -> list[int]:
        nb, ns = self.config.num_blocks, self.config.num_stages
        return [self._genes[2 * nb + j].choices[i] for j, i in enumerate(vector[2 * nb : 2 * nb + ns])]

    def _canonical_vector(self, vector: list[int]) -> list[int]:
        out = list(vector)
        nb = self.config.num_blocks
        for b in self._inactive_blocks(self._depths(out)):
            out[b] = 0
            out[nb + b] = 0
            if self.config.precisions:
                out[self._r + 1 + b] = 0
        return out

    def _randomise_inactive(self, vector: list[int], rng: np.random.Generator) -> list[int]:
        out = list(vector)
        cfg = self.config
        for b in self._inactive_blocks(self._depths(out)):
            out[b] = int(rng.integers(len(cfg.ks_choices)))
            out[cfg.num_blocks + b] = int(rng.integers(len(cfg.expand_choices)))
            if cfg.precisions:
                out[self._r + 1 + b] = int(rng.integers(len(cfg.precisions)))
        return out

    # ------------------------------------------------------------- features
    def _features(self, arch: Arch, encoding: str) -> np.ndarray:
        """OFA-style one-hot: kernel and expand (and precision) per block (zeros when skipped), resolution."""
        cfg = self.config
        vector = self.encode(arch)
        nk, ne, nq = len(cfg.ks_choices), len(cfg.expand_choices), len(cfg.precisions)
        per_block = nk + ne + nq
        out = np.zeros(cfg.num_blocks * per_block + len(cfg.resolutions), dtype=np.float32)
        inactive = set(self._inactive_blocks(self._depths(vector)))
        for b in range(cfg.num_blocks):
            if b in inactive:
                continue
            base = b * per_block
            out[base + vector[b]] = 1.0
            out[base + nk + vector[cfg.num_blocks + b]] = 1.0
            if nq:
                out[base + nk + ne + vector[self._r + 1 + b]] = 1.0
        out[cfg.num_blocks * per_block + vector[self._r]] = 1.0
        return out

    def build_static(self, arch: Arch | Mapping[str, Any]) -> Any:
        """A freshly initialised static network of ``arch`` (to load exported weights into)."""
        from search_spaces.ofa_mbv3.static import StaticOFAMobileNetV3

        cfg = self.config
        return StaticOFAMobileNetV3(self.static_config(arch), bn_momentum=cfg.bn_momentum, bn_eps=cfg.bn_eps)

    def size(self) -> int:
        cfg = self.config
        per_block = len(cfg.ks_choices) * len(cfg.expand_choices)
        total = len(cfg.resolutions)
        per_block *= max(1, len(cfg.precisions))
        for stage in range(cfg.num_stages):
            total *= sum(per_block**d for d in cfg.stage_depth_choices(stage))
        return total

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        cfg = self.config
        info.update(
            {
                "blocks": cfg.num_blocks,
                "stages": cfg.num_stages,
                "kernel_sizes": list(cfg.ks_choices),
                "expand_ratios": list(cfg.expand_choices),
                "depths": list(cfg.depth_choices),
                "resolutions": list(cfg.resolutions),
            }
        )
        return info

    # --------------------------------------------------------- static config
    def static_config(self, arch: Arch | Mapping[str, Any]) -> list[dict[str, Any]]:
        """Layer list of a subnet, without building modules.

        Each entry is a plain dict with an ``op`` (``conv``, ``mbconv``, ``pool``,
        ``linear``), a ``name`` matching the static network's module, and the
        shapes needed by FLOPs counting and latency tables.
        """
        arch = self.make(arch)
        cfg = self.config
        hw = arch["r"]
        layers: list[dict[str, Any]] = []
        stem, first = cfg.stem_channels, cfg.first_block_channels
        out_hw = conv_out_size(hw, 3, cfg.stem_stride)
        layers.append(_conv("stem", cfg.in_channels, stem, 3, cfg.stem_stride, hw, out_hw, bn=True, act=cfg.stem_act))
        hw = out_hw
        layers.append(_mbconv("blocks.0", stem, first, stem, 1, 3, 1, hw, False, 0, cfg.first_block_act))
        in_ch = first
        ks, es, ds = arch["ks"], arch["e"], arch["d"]
        precision: dict[str, str] = {}  # block layers not in float (spaces with precision genes)
        index = 1
        for s, (width, stride, act, se) in enumerate(
            zip(cfg.stage_channels, cfg.stage_strides, cfg.stage_acts, cfg.stage_se)
        ):
            for i in range(ds[s]):
                b = cfg.stage_offsets[s] + i
                block_stride = stride if i == 0 else 1
                mid = make_divisible(round(in_ch * es[b]), 8)
                se_mid = make_divisible(mid // cfg.se_reduction, 8) if se else 0
                layers.append(
                    _mbconv(f"blocks.{index}", in_ch, width, mid, es[b], ks[b], block_stride, hw, se, se_mid, act)
                )
                hw = layers[-1]["out_hw"]
                if cfg.precisions:
                    precision[f"blocks.{index}"] = arch[PRECISION_KEY][b]
                in_ch = width
                index += 1
        if cfg.final_expand_channels:
            layers.append(
                _conv("final_expand", in_ch, cfg.final_expand_channels, 1, 1, hw, hw, bn=True, act=cfg.head_act)
            )
            in_ch = cfg.final_expand_channels
        mix_hw = hw if cfg.feature_mix_before_pool else 1
        feature_mix = _conv(
            "feature_mix",
            in_ch,
            cfg.feature_mix_channels,
            1,
            1,
            mix_hw,
            mix_hw,
            bn=cfg.feature_mix_bn,
            act=cfg.head_act,
        )
        if cfg.feature_mix_before_pool:
            layers.append(feature_mix)
            in_ch = cfg.feature_mix_channels
        layers.append({"op": "pool", "name": "pool", "in_ch": in_ch, "in_hw": hw, "out_hw": 1})
        if not cfg.feature_mix_before_pool:
            layers.append(feature_mix)
        layers.append(
            {
                "op": "linear",
                "name": "classifier",
                "in_features": cfg.feature_mix_channels,
                "out_features": cfg.num_classes,
                "bias": True,
                "dropout": cfg.dropout,
            }
        )
        if cfg.precisions:
            label_layers(layers, precision)
        return layers

    def build_supernet(self, seed: int | None = 0) -> OFAMobileNetV3Supernet:
        """The weight-sharing supernet of this space (imports torch)."""
        from search_spaces.ofa_mbv3.supernet import OFAMobileNetV3Supernet

        return OFAMobileNetV3Supernet(self, seed=seed)

    # --------------------------------------------------------- capabilities (nas.core.capabilities)
    def elastic_choices(self) -> dict[str, tuple[int, ...]]:
        """Elastic dimensions, smallest choice first: kernel, expand ratio, depth, resolution.

        Precision is not one: it changes no weight, so training samples it at random."""
        cfg = self.config
        return {"ks": cfg.ks_choices, "e": cfg.expand_choices, "d": cfg.depth_choices, "r": cfg.resolutions}

    def published_supernets(self) -> dict[str, tuple[str, Mapping[str, Any]]]:
        """Once-for-all's published MobileNetV3 and ProxylessNAS supernets: name -> (URL, space options)."""
        from search_spaces.ofa_mbv3.published import PUBLISHED

        return {name: (p.url, {"config": p.config, **p.options}) for name, p in PUBLISHED.items()}

    def parameter_from_reference(self, name: str) -> str:
        from search_spaces.ofa_mbv3.published import ours_from_reference

        return ours_from_reference(name)

    def parameter_to_reference(self, name: str) -> str:
        from search_spaces.ofa_mbv3.published import reference_from_ours

        return reference_from_ours(name)

    def latency_cover_archs(self) -> list[Arch]:
        """Archs whose static configs together hold every op signature of the space.

        A block's signature depends on its position, kernel, expand and the resolution, never
        on the depth of its stage: uniform (kernel, expand) choices at every resolution with
        maximal depth cover them all.
        """
        cfg = self.config
        blocks = cfg.num_blocks
        depth = list(cfg.stage_blocks)
        precisions = [{PRECISION_KEY: [q] * blocks} for q in cfg.precisions] or [{}]
        return [
            self.make({"ks": [k] * blocks, "e": [e] * blocks, "d": depth, "r": r, **q})
            for r in cfg.resolutions
            for k in cfg.ks_choices
            for e in cfg.expand_choices
            for q in precisions
        ]


def _conv(
    name: str,
    in_ch: int,
    out_ch: int,
    kernel: int,
    stride: int,
    in_hw: int,
    out_hw: int,
    *,
    bn: bool,
    act: str,
) -> dict[str, Any]:
    return {
        "op": "conv",
        "name": name,
        "in_ch": in_ch,
        "out_ch": out_ch,
        "kernel": kernel,
        "stride": stride,
        "groups": 1,
        "in_hw": in_hw,
        "out_hw": out_hw,
        "bias": False,
        "bn": bn,
        "act": act,
    }


def _mbconv(
    name: str,
    in_ch: int,
    out_ch: int,
    mid: int,
    expand: int,
    kernel: int,
    stride: int,
    in_hw: int,
    se: bool,
    se_mid: int,
    act: str,
) -> dict[str, Any]:
    return {
        "op": "mbconv",
        "name": name,
        "in_ch": in_ch,
        "out_ch": out_ch,
        "mid_ch": mid,
        "expand": expand,
        "kernel": kernel,
        "stride": stride,
        "in_hw": in_hw,
        "out_hw": conv_out_size(in_hw, kernel, stride),
        "se": se,
        "se_mid": se_mid,
        "act": act,
        "residual": stride == 1 and in_ch == out_ch,
    }
