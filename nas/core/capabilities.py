"""What a search space can do, as small protocols that code asks for instead of a space's name.

Training, evaluators, latency tables, checkpoints and the CLI check ``isinstance(space,
Capability)`` (the protocols are runtime-checkable) and use the methods; a new supernet
family is one folder under ``search_spaces/`` that implements the capabilities it has,
plus its line in the registry (:mod:`nas.core.registry`). See ``docs/ARCHITECTURE.md``.

No torch import: network types are ``Any`` here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from nas.core.arch import Arch


class Supernet(Protocol):
    """A weight-sharing network (a torch module) whose active subnet is chosen per arch."""

    space: Any  # the SupernetSpace it was built for

    def set_active(self, arch: Arch | Mapping[str, Any]) -> None: ...

    def active(self, arch: Arch | Mapping[str, Any]) -> AbstractContextManager[Any]: ...

    def extract(self, arch: Arch | Mapping[str, Any]) -> Any: ...

    def __call__(self, x: Any) -> Any: ...

    def eval(self) -> Any: ...

    def state_dict(self) -> Any: ...

    def parameters(self) -> Any: ...

    def to(self, *args: Any, **kwargs: Any) -> Any: ...

    def load_state_dict(self, state: Any) -> Any: ...


@runtime_checkable
class SupernetSpace(Protocol):
    """Builds a weight-sharing supernet and static subnets; trained by progressive shrinking.

    ``elastic_choices`` maps each elastic dimension (for once-for-all MobileNetV3: ``ks``,
    ``e``, ``d``, ``r``) to its choices, smallest first; ``gene_dimension`` says which
    dimension a gene belongs to, so a progressive-shrinking phase can open dimensions one
    at a time. ``resolution(arch)`` is the input side length the subnet runs at.
    ``config_dict`` rebuilds the space as ``create_space(name, config=...)``.
    """

    name: str

    @property
    def space_id(self) -> str: ...

    @property
    def genes(self) -> tuple[Any, ...]: ...

    def build_supernet(self, seed: int | None = 0) -> Supernet: ...

    def build_static(self, arch: Arch | Mapping[str, Any]) -> Any: ...

    def static_config(self, arch: Arch | Mapping[str, Any]) -> list[dict[str, Any]]: ...

    def elastic_choices(self) -> Mapping[str, tuple[int, ...]]: ...

    def gene_dimension(self, gene: str) -> str: ...

    def input_shape(self) -> tuple[int, int, int]: ...

    def resolution(self, arch: Arch | Mapping[str, Any]) -> int: ...

    def num_classes(self) -> int: ...

    def config_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class LatencyCoverSpace(Protocol):
    """Enumerates archs whose static layers together hold every op the space can build."""

    def latency_cover_archs(self) -> list[Arch]: ...


@runtime_checkable
class PresetSpace(Protocol):
    """Has named configurations (``config: NAME`` in a spec)."""

    def presets(self) -> Sequence[str]: ...


@runtime_checkable
class TabularSpace(Protocol):
    """Every arch's metrics are looked up in benchmark tables (no training, no network)."""

    def tabular_evaluator(
        self, accuracy_csv: str, dataset: str, latency_csv: str | None, devices: Sequence[str] | None
    ) -> Any: ...


@runtime_checkable
class InitNetworkSpace(Protocol):
    """Builds an arch's network at initialisation (zero-cost proxies score it).

    ``init_networks(num_classes)`` returns a function from arch to a fresh network; the caller
    seeds torch before each call. ``input_shape`` is the (C, H, W) of one input.
    """

    def init_networks(self, num_classes: int) -> Callable[[Arch], Any]: ...

    def input_shape(self) -> tuple[int, int, int]: ...


@runtime_checkable
class PublishedSpace(Protocol):
    """Has published supernet checkpoints (the reference implementation's) that map onto its supernet.

    ``published_supernets()`` maps each name to ``(url, space options)``; the two name
    functions translate parameter names between the reference's state dict and ours.
    """

    def published_supernets(self) -> Mapping[str, tuple[str, Mapping[str, Any]]]: ...

    def parameter_from_reference(self, name: str) -> str: ...

    def parameter_to_reference(self, name: str) -> str: ...


@runtime_checkable
class PrecisionSpace(Protocol):
    """Can give its blocks a numeric precision (:mod:`nas.core.precision`).

    ``precision_choices`` is empty for the float space (the default); otherwise archs carry a
    precision per block and static-config layers their ``precision``. ``float_space`` is the space
    without precision genes (its supernet's and checkpoints'); ``float_arch`` maps an arch there.
    """

    @property
    def precision_choices(self) -> tuple[str, ...]: ...

    def float_space(self) -> Any: ...

    def float_arch(self, arch: Arch | Mapping[str, Any]) -> Arch: ...


def require(space: Any, capability: type, what: str) -> None:
    """Raises ValueError naming ``what`` needs which capability, when ``space`` lacks it."""
    if not isinstance(space, capability):
        raise ValueError(
            f"{what} needs a space with the {capability.__name__} capability; {space.space_id} does not have it"
        )


__all__ = [
    "InitNetworkSpace",
    "LatencyCoverSpace",
    "PrecisionSpace",
    "PresetSpace",
    "PublishedSpace",
    "Supernet",
    "SupernetSpace",
    "TabularSpace",
    "require",
]
