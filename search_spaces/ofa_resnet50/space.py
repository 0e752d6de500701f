"""The ``ofa_resnet50`` search space: pure Python, no torch.

Arch JSON is once-for-all's own for its ResNets: ``{"d": [stem, stage 1..4], "e": [ratio per
block], "w": [width index: stem's first two convs, stem's last conv, stage 1..4], "r":
resolution}``. ``d[0]`` is 0 (the stem's residual middle conv skipped) or the largest depth
choice (kept), as once-for-all samples it; ``d[1:]`` are the extra blocks of each stage; ``w``
holds indices into the width multipliers, as the reference prints them. ``r`` may be given as a
one-element list; without it (as the reference's ``sample_active_subnet`` prints a config) the
arch is at the largest resolution. With the ``precisions`` option every bottleneck block also has
a precision, ``"q": [p per block]``, as in ``ofa_mbv3`` (:mod:`nas.core.precision`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.core.arch import Arch
from nas.core.precision import PRECISION_KEY, arch_keys, label_layers, precision_genes, precision_indices
from nas.core.space import Gene
from search_spaces.elastic.space import ElasticSpace, number_list
from search_spaces.ofa_resnet50.config import PRESETS, OFAResNetConfig

if TYPE_CHECKING:  # pragma: no cover
    from search_spaces.ofa_resnet50.supernet import OFAResNetSupernet

ARCH_KEYS = ("d", "e", "r", "w")


def conv_out_size(size: int, kernel: int, stride: int) -> int:
    """Output size of a conv (or max pooling) with ``padding = kernel // 2``."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


class OFAResNetSpace(ElasticSpace):
    """Elastic depth / expand ratio / width / resolution over an OFA ResNet-50.

    Args:
        config: Preset name (``imagenet``, ``cifar``), a config, or a dict.
        **overrides: Config fields to override (for example ``num_classes=100``).
    """

    name = "ofa_resnet50"
    config: OFAResNetConfig
    config_type = OFAResNetConfig
    preset_table = PRESETS

    def _build_genes(self) -> list[Gene]:
        cfg = self.config
        depth = cfg.depth_choices
        genes = [Gene("d_0", (depth[0], depth[-1]) if len(depth) > 1 else depth)]
        genes += [Gene(f"d_{s + 1}", depth) for s in range(cfg.num_stages)]
        genes += [Gene(f"e_{i}", cfg.expand_choices) for i in range(cfg.num_blocks)]
        genes += [Gene(f"w_{j}", tuple(range(len(cfg.width_choices)))) for j in range(cfg.num_widths)]
        genes.append(Gene("r", cfg.resolutions))
        self._r = len(genes) - 1  # index of the resolution gene; precision genes follow it
        return genes + precision_genes(cfg.precisions, cfg.num_blocks)

    # ------------------------------------------------------------- encoding
    def _slices(self) -> tuple[slice, slice, slice]:
        cfg = self.config
        nd, nb = cfg.num_stages + 1, cfg.num_blocks
        return slice(0, nd), slice(nd, nd + nb), slice(nd + nb, nd + nb + cfg.num_widths)

    def _to_dict(self, vector: Sequence[int]) -> dict[str, Any]:
        d, e, w = self._slices()
        out: dict[str, Any] = {
            "d": [g.choices[i] for g, i in zip(self._genes[d], vector[d])],
            "e": [g.choices[i] for g, i in zip(self._genes[e], vector[e])],
            "w": list(vector[w]),
            "r": self.config.resolutions[vector[self._r]],
        }
        if self.config.precisions:
            out[PRECISION_KEY] = [self.config.precisions[i] for i in vector[self._r + 1 :]]
        return out

    def _from_dict(self, data: Mapping[str, Any]) -> list[int]:
        cfg = self.config
        arch_keys(ARCH_KEYS, cfg.precisions, data, "ofa_resnet50")
        missing = [k for k in ARCH_KEYS if k not in data and k != "r"]  # no r: the largest resolution
        if missing:
            raise ValueError(f"arch lacks keys {missing}; an ofa_resnet50 arch has keys {list(ARCH_KEYS)}")
        ds = number_list(data["d"], "d", cfg.num_stages + 1, "the stem, then one per stage", integer=True)
        es = number_list(data["e"], "e", cfg.num_blocks, f"one per block: {' + '.join(map(str, cfg.stage_blocks))}")
        ws = number_list(data["w"], "w", cfg.num_widths, "width indices: stem x2, then one per stage", integer=True)
        r = self._resolution_of(data)
        d, e, w = self._slices()
        what = ["d[0] (stem depth: 0 skips the middle conv)"] + [
            f"d[{s + 1}] (extra blocks)" for s in range(len(ds) - 1)
        ]
        vector = [g.index(v, name) for g, v, name in zip(self._genes[d], ds, what)]
        vector += [g.index(float(v), f"e[{i}] (expand ratio)") for i, (g, v) in enumerate(zip(self._genes[e], es))]
        vector += [g.index(v, f"w[{j}] (width index)") for j, (g, v) in enumerate(zip(self._genes[w], ws))]
        vector.append(cfg.resolutions.index(r))
        vector += precision_indices(data, self._genes[self._r + 1 :], "one per block")
        return vector

    def _inactive_blocks(self, vector: Sequence[int]) -> list[int]:
        cfg = self.config
        d, _, _ = self._slices()
        extra = [g.choices[i] for g, i in zip(self._genes[d], vector[d])][1:]
        return [
            offset + i
            for offset, base, built, x in zip(cfg.stage_offsets, cfg.base_depths, cfg.stage_blocks, extra)
            for i in range(base + x, built)
        ]

    def _canonical_vector(self, vector: list[int]) -> list[int]:
        out = list(vector)
        start = self._slices()[1].start
        for b in self._inactive_blocks(out):
            out[start + b] = 0
            if self.config.precisions:
                out[self._r + 1 + b] = 0
        return out

    def _randomise_inactive(self, vector: list[int], rng: np.random.Generator) -> list[int]:
        out = list(vector)
        start = self._slices()[1].start
        for b in self._inactive_blocks(out):
            out[start + b] = int(rng.integers(len(self.config.expand_choices)))
            if self.config.precisions:
                out[self._r + 1 + b] = int(rng.integers(len(self.config.precisions)))
        return out

    # ------------------------------------------------------------- features
    def _features(self, arch: Arch, encoding: str) -> np.ndarray:
        """One-hot: stem and stage depths, expand ratio per block (zeros when skipped), widths, resolution."""
        cfg = self.config
        vector = self.encode(arch)
        inactive = set(self._inactive_blocks(vector))
        d, e, w = self._slices()
        parts: list[np.ndarray] = []
        for g, i in zip(self._genes[d], vector[d]):
            parts.append(np.eye(len(g.choices), dtype=np.float32)[i])
        ne, nq = len(cfg.expand_choices), len(cfg.precisions)
        for b, i in enumerate(vector[e]):
            parts.append(np.zeros(ne, dtype=np.float32) if b in inactive else np.eye(ne, dtype=np.float32)[i])
        for i in vector[w]:
            parts.append(np.eye(len(cfg.width_choices), dtype=np.float32)[i])
        parts.append(np.eye(len(cfg.resolutions), dtype=np.float32)[vector[self._r]])
        for b, i in enumerate(vector[self._r + 1 :]):  # precision per block, zeros when skipped
            parts.append(np.zeros(nq, dtype=np.float32) if b in inactive else np.eye(nq, dtype=np.float32)[i])
        return np.concatenate(parts)

    def size(self) -> int:
        cfg = self.config
        ne = len(cfg.expand_choices)
        total = len(self._genes[0].choices) * len(cfg.width_choices) ** cfg.num_widths * len(cfg.resolutions)
        ne *= max(1, len(cfg.precisions))
        for base in cfg.base_depths:
            total *= sum(ne ** (base + x) for x in cfg.depth_choices)
        return total

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        cfg = self.config
        info.update(
            {
                "blocks": cfg.num_blocks,
                "stages": cfg.num_stages,
                "depths": list(cfg.depth_choices),
                "expand_ratios": list(cfg.expand_choices),
                "width_multipliers": list(cfg.width_choices),
                "resolutions": list(cfg.resolutions),
            }
        )
        return info

    # --------------------------------------------------------- static config
    def static_config(self, arch: Arch | Mapping[str, Any]) -> list[dict[str, Any]]:
        """Layer list of a subnet (ops ``conv``, ``conv_residual``, ``maxpool``, ``bottleneck``,
        ``pool``, ``linear``), in the order the static network runs them."""
        arch = self.make(arch)
        cfg = self.config
        d, es, w, hw = arch["d"], arch["e"], arch["w"], arch["r"]
        precision: dict[str, str] = {}
        mid, stem = cfg.stem_mid_channels()[w[0]], cfg.stem_out_channels()[w[1]]
        layers: list[dict[str, Any]] = []
        out_hw = conv_out_size(hw, 3, cfg.stem_stride)
        layers.append(_conv("stem.0", cfg.in_channels, mid, cfg.stem_stride, hw, out_hw))
        hw = out_hw
        if d[0] == max(cfg.depth_choices):
            layers.append({**_conv("stem.1", mid, mid, 1, hw, hw), "op": "conv_residual"})
        layers.append(_conv("stem.2", mid, stem, 1, hw, hw))
        if cfg.max_pool:
            out_hw = conv_out_size(hw, 3, 2)
            layers.append({"op": "maxpool", "name": "maxpool", "in_ch": stem, "in_hw": hw, "out_hw": out_hw})
            hw = out_hw
        in_ch = stem
        for s in range(cfg.num_stages):
            out_ch = cfg.stage_channels(s)[w[2 + s]]
            for i in range(cfg.base_depths[s] + d[1 + s]):
                b = cfg.stage_offsets[s] + i
                stride = cfg.stage_strides[s] if i == 0 else 1
                out_hw = conv_out_size(hw, 3, stride)
                layers.append(
                    {
                        "op": "bottleneck",
                        "name": f"blocks.{b}",
                        "in_ch": in_ch,
                        "out_ch": out_ch,
                        "mid_ch": cfg.mid_channels(out_ch, es[b]),
                        "expand": es[b],
                        "stride": stride,
                        "in_hw": hw,
                        "out_hw": out_hw,
                        # a projection shortcut (average pooling by the stride, then a 1x1 conv) unless
                        # the block keeps its shape for every width choice (the reference's rule)
                        "downsample": cfg.has_projection(s, i),
                        "downsample_hw": math.ceil(hw / stride),
                    }
                )
                if cfg.precisions:
                    precision[f"blocks.{b}"] = arch[PRECISION_KEY][b]
                in_ch, hw = out_ch, out_hw
        layers.append({"op": "pool", "name": "pool", "in_ch": in_ch, "in_hw": hw, "out_hw": 1})
        layers.append(
            {
                "op": "linear",
                "name": "classifier",
                "in_features": in_ch,
                "out_features": cfg.num_classes,
                "bias": True,
                "dropout": cfg.dropout,
            }
        )
        if cfg.precisions:
            label_layers(layers, precision)
        return layers

    def build_static(self, arch: Arch | Mapping[str, Any]) -> Any:
        """A freshly initialised static network of ``arch`` (to load exported weights into)."""
        from search_spaces.ofa_resnet50.static import StaticOFAResNet

        cfg = self.config
        return StaticOFAResNet(self.static_config(arch), bn_momentum=cfg.bn_momentum, bn_eps=cfg.bn_eps)

    def build_supernet(self, seed: int | None = 0) -> OFAResNetSupernet:
        """The weight-sharing supernet of this space (imports torch)."""
        from search_spaces.ofa_resnet50.supernet import OFAResNetSupernet

        return OFAResNetSupernet(self, seed=seed)

    # --------------------------------------------------------- capabilities (nas.core.capabilities)
    def elastic_choices(self) -> dict[str, tuple[Any, ...]]:
        """Elastic dimensions, smallest choice first: depth, expand ratio, width index, resolution."""
        cfg = self.config
        return {
            "d": cfg.depth_choices,
            "e": cfg.expand_choices,
            "w": tuple(range(len(cfg.width_choices))),
            "r": cfg.resolutions,
        }

    def published_supernets(self) -> dict[str, tuple[str, Mapping[str, Any]]]:
        """Once-for-all's published ResNet-50 supernet: name -> (URL, space options)."""
        from search_spaces.ofa_resnet50.published import PUBLISHED

        return {name: (url, {"config": config}) for name, (url, config) in PUBLISHED.items()}

    def parameter_from_reference(self, name: str) -> str:
        from search_spaces.ofa_resnet50.published import ours_from_reference

        return ours_from_reference(name)

    def parameter_to_reference(self, name: str) -> str:
        from search_spaces.ofa_resnet50.published import reference_from_ours

        return reference_from_ours(name)

    def latency_cover_archs(self) -> list[Arch]:
        """Archs whose static configs together hold every op signature of the space.

        A block's signature depends on its position, its input and output widths, its expand
        ratio and the resolution. Width indices ``w_j = (a + b j) mod n`` over all ``a, b`` give
        every (previous width, this width) pair at every position; uniform expand ratios and the
        largest depths do the rest.
        """
        cfg = self.config
        n, top = len(cfg.width_choices), max(cfg.depth_choices)
        depth = [top] * (cfg.num_stages + 1)
        archs = []
        for r in cfg.resolutions:
            for e in cfg.expand_choices:
                for a in range(n):
                    for b in range(n):
                        w = [(a + b * j) % n for j in range(cfg.num_widths)]
                        for q in [{PRECISION_KEY: [p] * cfg.num_blocks} for p in cfg.precisions] or [{}]:
                            archs.append(self.make({"d": depth, "e": [e] * cfg.num_blocks, "w": w, "r": r, **q}))
        return archs


def _conv(name: str, in_ch: int, out_ch: int, stride: int, in_hw: int, out_hw: int) -> dict[str, Any]:
    return {
        "op": "conv",
        "name": name,
        "in_ch": in_ch,
        "out_ch": out_ch,
        "kernel": 3,
        "stride": stride,
        "groups": 1,
        "in_hw": in_hw,
        "out_hw": out_hw,
        "bias": False,
        "bn": True,
        "act": "relu",
    }
