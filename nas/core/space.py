"""Search-space abstraction shared by searchers, evaluators and predictors.

A space is described once, as an ordered list of categorical *genes*; the
integer encoding (for pymoo), the Optuna distributions, one-hot features,
mutation and crossover are all derived from that list. Concrete spaces only say
how a gene vector maps to their JSON form, how to validate user dicts, and how
to canonicalise (for example resetting the genes of skipped blocks).

No torch, ray or optuna import happens at module import time.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.core import registry
from nas.core.arch import Arch
from nas.core.config import short_repr
from nas.core.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from optuna.distributions import CategoricalDistribution


@dataclass(frozen=True)
class Gene:
    """One categorical decision of a space.

    Attributes:
        name: Unique name, also the Optuna parameter name (``ks_3``, ``d_0``, ``r``).
        choices: Allowed values, in ascending order of "size" so that index 0 is the
            smallest choice and the last index the largest.
    """

    name: str
    choices: tuple[Any, ...]

    def index(self, value: Any, field_name: str) -> int:
        """Index of ``value`` in the choices, or a ``ValueError`` naming the field."""
        try:
            return self.choices.index(value)
        except ValueError:
            raise ValueError(
                f"{field_name}: {value!r} is not an allowed value; choose one of {list(self.choices)}"
            ) from None


class SearchSpace(ABC):
    """Base class of all search spaces.

    Subclasses define :attr:`genes`, :meth:`_to_dict`, :meth:`_from_dict` and may
    override :meth:`_canonical_vector` and :meth:`size`.
    """

    name: str = "space"

    # ----------------------------------------------------------------- contract
    @property
    @abstractmethod
    def space_id(self) -> str:
        """Identifier of the space and its configuration (stored with every arch)."""

    @property
    @abstractmethod
    def genes(self) -> tuple[Gene, ...]:
        """The ordered categorical decisions of the space."""

    @abstractmethod
    def _to_dict(self, vector: Sequence[int]) -> dict[str, Any]:
        """Maps a (canonical) gene-index vector to the space's JSON form."""

    @abstractmethod
    def _from_dict(self, data: Mapping[str, Any]) -> list[int]:
        """Validates a JSON-form dict and returns its gene-index vector.

        Raises:
            ValueError: naming the offending field and the allowed values.
        """

    def _canonical_vector(self, vector: list[int]) -> list[int]:
        """Resets genes that do not affect the network. Default: identity."""
        return vector

    def _randomise_inactive(self, vector: list[int], rng: np.random.Generator) -> list[int]:
        """Gives genes that do not affect the network random values (before mutation).

        Default: identity. Spaces with inactive genes override this so that a
        mutation that re-activates a gene does not always revive its minimum.
        """
        return vector

    # ------------------------------------------------------------ derived API
    def make(self, data: Mapping[str, Any] | Arch) -> Arch:
        """Validates and canonicalises a dict (or re-checks an ``Arch``)."""
        if isinstance(data, Arch):
            if data.space_id != self.space_id:
                raise ValueError(f"arch belongs to space {data.space_id!r}, not {self.space_id!r}")
            data = data.to_dict()
        if not isinstance(data, Mapping):
            raise ValueError(
                f"an arch must be a JSON object (dict) with keys {self.arch_keys()}, got {type(data).__name__}"
            )
        return self.decode(self._from_dict(data))

    def arch_keys(self) -> list[str]:
        """Keys of the JSON form (for error messages and docs)."""
        return sorted(self._to_dict([0] * len(self.genes)).keys())

    def encode(self, arch: Arch | Mapping[str, Any]) -> list[int]:
        """Integer vector (one index per gene) of an arch, canonicalised."""
        if not isinstance(arch, Arch):
            arch = self.make(arch)
        elif arch.space_id != self.space_id:
            raise ValueError(f"arch belongs to space {arch.space_id!r}, not {self.space_id!r}")
        return self._canonical_vector(self._from_dict(arch.to_dict()))

    def decode(self, vector: Sequence[int] | np.ndarray) -> Arch:
        """The canonical arch of an integer vector (out-of-range entries are errors)."""
        values = [int(v) for v in np.asarray(vector).reshape(-1)]
        if len(values) != len(self.genes):
            raise ValueError(f"vector has {len(values)} entries, the space {self.space_id} has {len(self.genes)} genes")
        for gene, value in zip(self.genes, values):
            if not 0 <= value < len(gene.choices):
                raise ValueError(f"{gene.name}: index {value} out of range [0, {len(gene.choices) - 1}]")
        canonical = self._canonical_vector(values)
        return Arch.from_canonical(self.space_id, self._to_dict(canonical))

    def sample(self, rng: np.random.Generator) -> Arch:
        """A uniformly random gene vector, canonicalised."""
        return self.decode([int(rng.integers(len(g.choices))) for g in self.genes])

    def sample_unique(self, n: int, rng: np.random.Generator, max_draws: int | None = None) -> list[Arch]:
        """Up to ``n`` distinct random archs, with a bounded number of draws."""
        seen: dict[str, Arch] = {}
        limit = max_draws if max_draws is not None else 20 * n + 100
        for _ in range(limit):
            if len(seen) >= n:
                break
            arch = self.sample(rng)
            seen.setdefault(arch.arch_id, arch)
        return list(seen.values())

    def mutate(self, arch: Arch, rng: np.random.Generator, prob: float = 0.1) -> Arch:
        """Resamples each gene independently with probability ``prob``."""
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob: {prob} must be within [0, 1]")
        vector = self._randomise_inactive(self.encode(arch), rng)
        for i, gene in enumerate(self.genes):
            if rng.random() < prob:
                vector[i] = int(rng.integers(len(gene.choices)))
        return self.decode(vector)

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator) -> Arch:
        """Uniform crossover: each gene taken from either parent with probability 1/2."""
        va = self._randomise_inactive(self.encode(a), rng)
        vb = self._randomise_inactive(self.encode(b), rng)
        mask = rng.random(len(va)) < 0.5
        return self.decode([x if m else y for x, y, m in zip(va, vb, mask)])

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Inclusive integer bounds ``(xl, xu)`` of the encoding, for pymoo."""
        lower = np.zeros(len(self.genes), dtype=int)
        upper = np.array([len(g.choices) - 1 for g in self.genes], dtype=int)
        return lower, upper

    @property
    def encodings(self) -> tuple[str, ...]:
        """Names of the predictor feature encodings this space offers; the first is the default."""
        return ("onehot",)

    def resolve_encoding(self, encoding: str | None) -> str:
        """The encoding's name (the default for ``None``); a clear error for one the space lacks."""
        if encoding is None:
            return self.encodings[0]
        if encoding not in self.encodings:
            raise ValueError(
                f"encoding: the {self.name} space has no feature encoding {encoding!r}; "
                f"choose one of {', '.join(self.encodings)}"
            )
        return encoding

    def features(self, arch: Arch, encoding: str | None = None) -> np.ndarray:
        """Feature vector for predictors in the named encoding (:attr:`encodings`; default first)."""
        return self._features(arch, self.resolve_encoding(encoding))

    def _features(self, arch: Arch, encoding: str) -> np.ndarray:
        """Spaces with more encodings than ``onehot`` override this."""
        return self.onehot(arch)

    def onehot(self, arch: Arch) -> np.ndarray:
        """One-hot encoding of the genes (one block of columns per gene)."""
        vector = self.encode(arch)
        out = np.zeros(sum(len(g.choices) for g in self.genes), dtype=np.float32)
        offset = 0
        for gene, value in zip(self.genes, vector):
            out[offset + value] = 1.0
            offset += len(gene.choices)
        return out

    def feature_size(self, encoding: str | None = None) -> int:
        """Length of :meth:`features` in the encoding."""
        return len(self.features(self.min_arch(), encoding))

    @property
    def num_features(self) -> int:
        """Length of :meth:`features` in the default encoding."""
        return self.feature_size()

    def to_optuna(self) -> dict[str, CategoricalDistribution]:
        """Optuna distributions, one categorical per gene (imports optuna lazily)."""
        from optuna.distributions import CategoricalDistribution

        return {g.name: CategoricalDistribution(list(g.choices)) for g in self.genes}

    def from_params(self, params: Mapping[str, Any]) -> Arch:
        """The arch of a flat ``{gene name: value}`` mapping (Optuna params, Ray configs)."""
        missing = [g.name for g in self.genes if g.name not in params]
        if missing:
            raise ValueError(f"params lack genes {missing[:5]}{'...' if len(missing) > 5 else ''}")
        return self.decode([g.index(params[g.name], g.name) for g in self.genes])

    def to_params(self, arch: Arch) -> dict[str, Any]:
        """The flat ``{gene name: value}`` mapping of an arch (inverse of from_params)."""
        return {g.name: g.choices[i] for g, i in zip(self.genes, self.encode(arch))}

    def max_arch(self) -> Arch:
        """The largest arch (last choice of every gene)."""
        return self.decode([len(g.choices) - 1 for g in self.genes])

    def min_arch(self) -> Arch:
        """The smallest arch (first choice of every gene)."""
        return self.decode([0] * len(self.genes))

    def size(self) -> int:
        """Number of distinct canonical archs. Default: product of gene sizes."""
        total = 1
        for gene in self.genes:
            total *= len(gene.choices)
        return total

    def invalid_reason(self, arch: Arch) -> str | None:
        """Why ``arch`` is not a usable network (searchers skip it), or None. Default: None.

        Spaces whose encoding admits degenerate archs override this (NB201: a cell with no
        input-to-output path outputs zeros, ~10% accuracy and near-zero latency, and would
        otherwise sit on every accuracy/latency front)."""
        return None

    def static_config(self, arch: Arch | Mapping[str, Any]) -> list[dict[str, Any]]:
        """Layer list of a subnet (for FLOPs and latency tables); spaces with a network define it."""
        raise NotImplementedError(f"space {self.space_id} has no static layer description")

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (used by ``nas space info``)."""
        return {
            "space": self.name,
            "space_id": self.space_id,
            "genes": len(self.genes),
            "size": self.size(),
            "arch_keys": self.arch_keys(),
        }


def list_spaces() -> list[str]:
    """Names of the built-in spaces, then of those registered or installed as plug-ins."""
    return registry.names("space")


def _import_factory(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def create_space(name: str, *, allow_code: bool = True, **kwargs: Any) -> SearchSpace:
    """Creates a space by registered name (built-in or plug-in, see :mod:`nas.core.registry`) with options.

    With ``allow_code`` (the CLI, a user's own scripts), ``"package.module:factory"`` names
    a factory to import; the HTTP service passes ``allow_code=False`` so that a request can
    only name registered spaces.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if registry.has("space", name):
        factory = registry.load("space", name)
    elif ":" in name and allow_code:
        try:
            factory = _import_factory(name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"space {name!r} cannot be imported: {exc}") from exc
    elif ":" in name:
        raise ValueError(
            f"space {short_repr(name)}: a module:factory name is not accepted here; name a registered space "
            f"({', '.join(list_spaces())}) or install a plug-in (entry point group {registry.GROUPS['space']!r})"
        )
    else:
        raise ValueError(f"unknown space {short_repr(name)}; known spaces: {', '.join(list_spaces())}")
    registry.check_settings(factory, kwargs, f"space {short_repr(name)}")
    space = factory(**kwargs)
    if not isinstance(space, SearchSpace):
        raise ValueError(f"space factory {name!r} did not return a SearchSpace")
    return space


@dataclass
class SpaceRef:
    """A space in a job spec or training config: registered name, preset (``config``) and options."""

    name: str = "ofa_mbv3"
    config: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def build(self, *, allow_code: bool = True) -> SearchSpace:
        """The space; ``allow_code=False`` accepts only registered names (no ``module:factory``)."""
        kwargs = dict(self.options)
        if self.config is not None:
            kwargs["config"] = self.config
        try:
            return create_space(self.name, allow_code=allow_code, **kwargs)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"space: {exc}") from exc


def space_record(space: SearchSpace) -> dict[str, Any] | None:
    """``{"name", "config"}`` that rebuilds ``space`` (:func:`space_from_record`), for a space
    with a full configuration (``config_dict``); None for one without."""
    config = getattr(space, "config_dict", None)
    return {"name": space.name, "config": config()} if callable(config) else None


def space_from_record(record: Mapping[str, Any], *, allow_code: bool = True) -> SearchSpace:
    """The space :func:`space_record` described."""
    return create_space(record["name"], allow_code=allow_code, config=record["config"])


def space_from_id(space_id: str) -> SearchSpace:
    """Re-creates a space from its ``space_id`` (``name/config``)."""
    name, _, config = space_id.partition("/")
    if "+" in config:
        raise ValueError(
            f"space id {space_id!r} names a customised config; rebuild the space from the config stored "
            "with the run (supernet.json) instead"
        )
    return create_space(name, config=config) if config else create_space(name)
