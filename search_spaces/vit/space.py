"""The ``vit`` search space: pure Python, no torch.

Arch JSON (AutoFormer's dimensions): ``{"embed": E, "depth": D, "heads": [h per layer],
"mlp": [ratio per layer]}``. ``heads`` and ``mlp`` hold one entry per layer the supernet
builds (``max(depth_choices)``); entries past ``depth`` belong to layers the subnet skips, and
may be left out (a list of ``depth`` entries is accepted and padded). Example, cifar preset:
``{"embed": 96, "depth": 4, "heads": [2, 3, 4, 4], "mlp": [2.0, 3.0, 4.0, 2.0]}``.

With the ``precisions`` option (for example ``[int8, fp32]``) every layer also has a precision,
``"q": [p per layer]`` (:mod:`nas.core.precision`; short lists padded like ``heads``), that sets
both halves of the layer, attention and MLP. Per layer rather than per half: a layer is the
unit the other dimensions are elastic in, and it keeps the space as many times larger as in the
convolutional families (per block); the latency table still times each half in each precision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.core.arch import Arch
from nas.core.precision import PRECISION_KEY, arch_keys, label_layers, precision_genes, precision_indices
from nas.core.space import Gene
from search_spaces.elastic.space import ElasticSpace, number_list
from search_spaces.vit.config import PRESETS, ViTConfig

if TYPE_CHECKING:  # pragma: no cover
    from search_spaces.vit.supernet import ViTSupernet

ARCH_KEYS = ("depth", "embed", "heads", "mlp")


class ViTSpace(ElasticSpace):
    """Elastic embedding dimension / depth / heads / MLP ratio over a ViT.

    Args:
        config: Preset name (``imagenet``, ``imagenet_small``, ``cifar``), a config, or a dict.
        **overrides: Config fields to override (for example ``num_classes=100``).
    """

    name = "vit"
    config: ViTConfig
    config_type = ViTConfig
    preset_table = PRESETS

    def _build_genes(self) -> list[Gene]:
        cfg = self.config
        genes = [Gene("embed", cfg.embed_choices), Gene("depth", cfg.depth_choices)]
        genes += [Gene(f"heads_{i}", cfg.head_choices) for i in range(cfg.max_depth)]
        genes += [Gene(f"mlp_{i}", cfg.mlp_choices) for i in range(cfg.max_depth)]
        return genes + precision_genes(cfg.precisions, cfg.max_depth)

    # ------------------------------------------------------------- encoding
    def _to_dict(self, vector: Sequence[int]) -> dict[str, Any]:
        cfg = self.config
        n = cfg.max_depth
        out: dict[str, Any] = {
            "embed": cfg.embed_choices[vector[0]],
            "depth": cfg.depth_choices[vector[1]],
            "heads": [cfg.head_choices[i] for i in vector[2 : 2 + n]],
            "mlp": [cfg.mlp_choices[i] for i in vector[2 + n : 2 + 2 * n]],
        }
        if cfg.precisions:
            out[PRECISION_KEY] = [cfg.precisions[i] for i in vector[2 + 2 * n :]]
        return out

    def _from_dict(self, data: Mapping[str, Any]) -> list[int]:
        cfg = self.config
        arch_keys(ARCH_KEYS, cfg.precisions, data, "vit")
        if "wid" in data:
            raise ValueError("wid: elastic width is not part of this space; remove 'wid'")
        missing = [k for k in ARCH_KEYS if k not in data]
        if missing:
            raise ValueError(f"arch lacks keys {missing}; a vit arch has keys {list(ARCH_KEYS)}")
        embed, depth = data["embed"], data["depth"]
        for key, value in (("embed", embed), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{key}: expected an integer, got {value!r}")
        vector = [self._genes[0].index(embed, "embed (embedding dimension)")]
        vector.append(self._genes[1].index(depth, "depth (blocks)"))
        n = cfg.max_depth
        what = f"one per layer: {n} (the layers built), or {depth} (the layers this arch runs)"
        for key, offset, numbers in (("heads", 2, True), ("mlp", 2 + n, False)):
            entries = number_list(self._padded(data[key], depth, offset), key, n, what, integer=numbers)
            label = "attention heads" if numbers else "MLP ratio"
            vector += [self._genes[offset + i].index(v if numbers else float(v), f"{key}[{i}] ({label})")
                       for i, v in enumerate(entries)]  # fmt: skip
        if PRECISION_KEY in data:  # a list of `depth` precisions is padded like heads and mlp
            data = {PRECISION_KEY: self._padded(data[PRECISION_KEY], depth, 2 + 2 * n)}
        return vector + precision_indices(data, self._genes[2 + 2 * n :], what)

    def _padded(self, value: Any, depth: int, offset: int) -> Any:
        """A per-layer list of ``depth`` entries (the layers an arch runs) padded with the first
        choice of the gene at ``offset`` for the layers it skips; anything else as given."""
        n = self.config.max_depth
        if isinstance(value, (list, tuple)) and len(value) == depth < n:
            return [*value, *[self._genes[offset].choices[0]] * (n - depth)]
        return value

    def _inactive_layers(self, vector: Sequence[int]) -> range:
        return range(self.config.depth_choices[vector[1]], self.config.max_depth)

    def _canonical_vector(self, vector: list[int]) -> list[int]:
        out = list(vector)
        n = self.config.max_depth
        for i in self._inactive_layers(out):
            out[2 + i] = out[2 + n + i] = 0
            if self.config.precisions:
                out[2 + 2 * n + i] = 0
        return out

    def _randomise_inactive(self, vector: list[int], rng: np.random.Generator) -> list[int]:
        out = list(vector)
        cfg = self.config
        for i in self._inactive_layers(out):
            out[2 + i] = int(rng.integers(len(cfg.head_choices)))
            out[2 + cfg.max_depth + i] = int(rng.integers(len(cfg.mlp_choices)))
            if cfg.precisions:
                out[2 + 2 * cfg.max_depth + i] = int(rng.integers(len(cfg.precisions)))
        return out

    # ------------------------------------------------------------- features
    def _features(self, arch: Arch, encoding: str) -> np.ndarray:
        """One-hot: embedding dimension, depth, heads and MLP ratio (and precision) per layer
        (zeros when skipped)."""
        cfg = self.config
        vector = self.encode(arch)
        n, nh, nm, nq = cfg.max_depth, len(cfg.head_choices), len(cfg.mlp_choices), len(cfg.precisions)
        parts = [np.eye(len(cfg.embed_choices), dtype=np.float32)[vector[0]],
                 np.eye(len(cfg.depth_choices), dtype=np.float32)[vector[1]]]  # fmt: skip
        active = cfg.depth_choices[vector[1]]
        for i in range(n):
            parts.append(np.eye(nh, dtype=np.float32)[vector[2 + i]] if i < active else np.zeros(nh, np.float32))
            parts.append(np.eye(nm, dtype=np.float32)[vector[2 + n + i]] if i < active else np.zeros(nm, np.float32))
            if nq:
                q = vector[2 + 2 * n + i]
                parts.append(np.eye(nq, dtype=np.float32)[q] if i < active else np.zeros(nq, np.float32))
        return np.concatenate(parts)

    def size(self) -> int:
        cfg = self.config
        per_layer = len(cfg.head_choices) * len(cfg.mlp_choices) * max(1, len(cfg.precisions))
        return len(cfg.embed_choices) * sum(per_layer**d for d in cfg.depth_choices)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        cfg = self.config
        info.update(
            {
                "layers": cfg.max_depth,
                "tokens": cfg.tokens,
                "embed_dims": list(cfg.embed_choices),
                "depths": list(cfg.depth_choices),
                "heads": list(cfg.head_choices),
                "mlp_ratios": list(cfg.mlp_choices),
                "head_dim": cfg.head_dim,
            }
        )
        return info

    def to_string(self, arch: Arch | Mapping[str, Any]) -> str:
        """A short readable form of the layers it runs: ``E96 D4 | h 2 3 4 4 | m 2 3 4 2``, with
        precision genes ``... | q int8 int8 fp32 int8`` (:meth:`from_string` reads it back)."""
        a = self.make(arch)
        depth = a["depth"]
        heads = " ".join(str(h) for h in a["heads"][:depth])
        mlp = " ".join(f"{m:g}" for m in a["mlp"][:depth])
        text = f"E{a['embed']} D{depth} | h {heads} | m {mlp}"
        if self.config.precisions:
            text += " | q " + " ".join(a[PRECISION_KEY][:depth])
        return text

    def from_string(self, text: str) -> Arch:
        """Parses :meth:`to_string`'s form, ``E96 D4 | h 2 3 4 4 | m 2 3 4 2`` (``| q ...`` with
        precision genes)."""
        parts = [p.split() for p in text.split("|")] if isinstance(text, str) else []
        form = "'E<embed> D<depth> | h <heads...> | m <ratios...>" + (
            " | q <precisions...>'" if self.precision_choices else "'"
        )
        tags = [p[:1] for p in parts[1:]]
        ok = len(parts) in (3, 4) and len(parts[0]) == 2 and tags[:2] == [["h"], ["m"]] and tags[2:] in ([], [["q"]])
        if not ok or not parts[0][0].startswith("E") or not parts[0][1].startswith("D"):
            raise ValueError(f"arch string: expected {form}, got {text!r}")
        try:
            embed, depth = int(parts[0][0][1:]), int(parts[0][1][1:])
            heads, mlp = [int(h) for h in parts[1][1:]], [float(m) for m in parts[2][1:]]
        except ValueError:
            raise ValueError(f"arch string: numbers expected in {text!r}") from None
        data: dict[str, Any] = {"embed": embed, "depth": depth, "heads": heads, "mlp": mlp}
        if len(parts) == 4:
            data[PRECISION_KEY] = parts[3][1:]
        return self.make(data)

    # --------------------------------------------------------- static config
    def static_config(self, arch: Arch | Mapping[str, Any]) -> list[dict[str, Any]]:
        """Layer list of a subnet (ops ``vit_patch_embed``, ``vit_attention``, ``vit_mlp``,
        ``vit_norm_pool``, ``linear``), named as the modules of its timm ``VisionTransformer``;
        with precision genes every layer carries its ``precision`` (attention and MLP of layer
        ``i`` at ``q[i]``, the others in float)."""
        arch = self.make(arch)
        cfg = self.config
        embed, tokens = arch["embed"], cfg.tokens
        layers: list[dict[str, Any]] = [
            {
                "op": "vit_patch_embed",
                "name": "patch_embed",
                "in_ch": cfg.in_channels,
                "embed": embed,
                "patch": cfg.patch_size,
                "in_hw": cfg.img_size,
                "tokens": tokens,
            }
        ]
        for i in range(arch["depth"]):
            layers.append(
                {
                    "op": "vit_attention",
                    "name": f"blocks.{i}.attn",
                    "embed": embed,
                    "heads": arch["heads"][i],
                    "head_dim": cfg.head_dim,
                    "tokens": tokens,
                    "qkv_bias": cfg.qkv_bias,
                    "eps": cfg.norm_eps,
                }
            )
            layers.append(
                {
                    "op": "vit_mlp",
                    "name": f"blocks.{i}.mlp",
                    "embed": embed,
                    "hidden": cfg.mlp_hidden(embed, arch["mlp"][i]),
                    "tokens": tokens,
                    "eps": cfg.norm_eps,
                }
            )
        layers.append({"op": "vit_norm_pool", "name": "norm", "embed": embed, "tokens": tokens, "eps": cfg.norm_eps})
        layers.append(
            {
                "op": "linear",
                "name": "head",
                "in_features": embed,
                "out_features": cfg.num_classes,
                "bias": True,
                "dropout": cfg.dropout,
            }
        )
        if cfg.precisions:
            qs = arch[PRECISION_KEY]
            label_layers(
                layers, {f"blocks.{i}.{half}": qs[i] for i in range(arch["depth"]) for half in ("attn", "mlp")}
            )
        return layers

    def build_static(self, arch: Arch | Mapping[str, Any]) -> Any:
        """A freshly initialised timm ``VisionTransformer`` of ``arch`` (to load weights into)."""
        from search_spaces.vit.static import timm_vit

        return timm_vit(self.config, self.make(arch))

    def timm_folder_config(
        self, arch: Arch | Mapping[str, Any], mean: tuple[float, ...], std: tuple[float, ...]
    ) -> dict[str, Any]:
        """timm's ``config.json`` of ``arch`` (``nas export --format timm``; see :mod:`search_spaces.vit.static`)."""
        from search_spaces.vit.static import timm_folder_config

        return timm_folder_config(self.config, self.make(arch), mean, std)

    def build_supernet(self, seed: int | None = 0) -> ViTSupernet:
        """The weight-sharing supernet of this space (imports torch)."""
        from search_spaces.vit.supernet import ViTSupernet

        return ViTSupernet(self, seed=seed)

    # --------------------------------------------------------- capabilities (nas.core.capabilities)
    def resolution(self, arch: Arch | Mapping[str, Any]) -> int:
        """The preset's image size (fixed: a ViT's position embeddings are per patch)."""
        self.make(arch)  # checks the arch
        return self.config.img_size

    def elastic_choices(self) -> dict[str, tuple[Any, ...]]:
        """Elastic dimensions, smallest choice first: embedding dimension, depth, heads, MLP ratio."""
        cfg = self.config
        return {"embed": cfg.embed_choices, "depth": cfg.depth_choices, "heads": cfg.head_choices,
                "mlp": cfg.mlp_choices}  # fmt: skip

    def latency_cover_archs(self) -> list[Arch]:
        """Archs whose static configs together hold every op signature of the space.

        An attention op's signature is its embedding dimension and heads (the sequence length is
        fixed per preset), an MLP's its embedding dimension and hidden width (and each its
        precision): uniform heads, MLP ratios (and precisions) at every embedding dimension cover
        them all (one layer each is enough).
        """
        cfg = self.config
        depth = cfg.depth_choices[0]
        precisions = [{PRECISION_KEY: [q] * depth} for q in cfg.precisions] or [{}]
        return [
            self.make({"embed": e, "depth": depth, "heads": [h] * depth, "mlp": [m] * depth, **q})
            for e in cfg.embed_choices
            for h in cfg.head_choices
            for m in cfg.mlp_choices
            for q in precisions
        ]
