"""The space side of an elastic family: identity (name, preset, fingerprint), genes built once
from the config, the arch checks every family makes, and the capabilities that only read the
config (:mod:`nas.core.capabilities`). Pure Python, no torch."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from nas.core.arch import Arch
from nas.core.precision import PrecisionGenes
from nas.core.space import Gene, SearchSpace
from search_spaces.elastic.config import resolve_config


class ElasticSpace(PrecisionGenes, SearchSpace):
    """Base of a supernet family's space.

    A family defines ``name``, ``config_type`` (its config dataclass), ``preset_table`` (its
    ``PRESETS``), :meth:`_build_genes`, the encoding (:meth:`_to_dict`, :meth:`_from_dict`),
    :meth:`static_config`, :meth:`build_static`, :meth:`build_supernet` and
    :meth:`elastic_choices`; the space id is ``name/preset`` for a preset as it ships, else
    ``name/label+fingerprint``.
    """

    config_type: ClassVar[type[Any]]  # the family's config dataclass (an ElasticConfig)
    preset_table: ClassVar[Mapping[str, Any]]  # the family's presets by name

    def __init__(self, config: Any = "imagenet", **overrides: Any) -> None:
        """``config``: a preset name, a config or a dict; ``overrides``: config fields to change."""
        self.config = cfg = self.resolve_config(config, **overrides)
        suffix = "" if self.preset_configs().get(cfg.name) == cfg else f"+{cfg.fingerprint()}"
        self._space_id = f"{self.name}/{cfg.name}{suffix}"
        self._genes = tuple(self._build_genes())

    # ------------------------------------------------------------- family hooks
    @classmethod
    def resolve_config(cls, config: Any, **overrides: Any) -> Any:
        """The family's config from a preset name, a config or a dict, with overrides."""
        return resolve_config(cls.config_type, cls.preset_table, config, **overrides)

    @classmethod
    def preset_configs(cls) -> Mapping[str, Any]:
        """The family's presets by name."""
        return cls.preset_table

    def _build_genes(self) -> list[Gene]:
        raise NotImplementedError

    # ------------------------------------------------------------- identity
    @property
    def space_id(self) -> str:
        return self._space_id

    @property
    def genes(self) -> tuple[Gene, ...]:
        return self._genes

    # ------------------------------------------------------------- arch checks
    def _resolution_of(self, data: Mapping[str, Any]) -> int:
        """The ``r`` of an arch dict: an integer, a one-element list, or absent (the largest)."""
        resolutions = self.config.resolutions
        r = data.get("r", resolutions[-1])
        if isinstance(r, (list, tuple)):
            if len(r) != 1:
                raise ValueError(f"r: expected one resolution, got {list(r)}")
            r = r[0]
        if not isinstance(r, int) or isinstance(r, bool):
            raise ValueError(f"r: resolution must be an integer, got {r!r}")
        if r not in resolutions:
            lo, hi = resolutions[0], resolutions[-1]
            listed = ", ".join(map(str, resolutions[:6])) + (", ..." if len(resolutions) > 6 else "")
            raise ValueError(f"r: resolution {r} is not supported; allowed: {lo}..{hi} ({listed})")
        return r

    # ------------------------------------------------------------- capabilities that read the config
    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["config"] = self.config.to_dict()
        if self.config.precisions:
            info["precisions"] = list(self.config.precisions)
        return info

    def gene_dimension(self, gene: str) -> str:
        return gene.split("_")[0]

    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one input at the largest resolution."""
        r = self.config.resolutions[-1]
        return (self.config.in_channels, r, r)

    def resolution(self, arch: Arch | Mapping[str, Any]) -> int:
        return int(self.make(arch)["r"])

    def num_classes(self) -> int:
        return int(self.config.num_classes)

    def config_dict(self) -> dict[str, Any]:
        return dict(self.config.to_dict())

    def presets(self) -> list[str]:
        return sorted(self.preset_configs())

    def build_supernet(self, seed: int | None = 0) -> Any:
        raise NotImplementedError

    def init_networks(self, num_classes: int) -> Callable[[Arch], Any]:
        """Subnets of one supernet initialisation (built on first use), extracted per arch.

        The classifier keeps the space's own class count (``num_classes`` only labels the data).
        """
        supernet: list[Any] = []

        def network(arch: Arch) -> Any:
            if not supernet:
                supernet.append(self.build_supernet(seed=0))
            return supernet[0].extract(arch)

        return network


def number_list(value: Any, name: str, length: int, what: str, *, integer: bool = False) -> list[Any]:
    """``value`` as a list of ``length`` numbers (integers with ``integer``), or a ``ValueError``
    naming the field and what its entries are (``what``)."""
    kind = "integers" if integer else "numbers"
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name}: expected a list of {length} {kind} ({what}), got {value!r}")
    if len(value) != length:
        raise ValueError(f"{name}: expected {length} entries ({what}), got {len(value)}")
    for i, v in enumerate(value):
        ok = isinstance(v, int) if integer else isinstance(v, (int, float))
        if not ok or isinstance(v, bool):
            raise ValueError(f"{name}[{i}]: expected {'an integer' if integer else 'a number'}, got {v!r}")
    return list(value)
