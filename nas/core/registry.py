"""One registry for everything pluggable: spaces, searchers, evaluators, proxies, learned
predictors, latency backends and the layer kinds of static configs.

A name resolves, in order, to

1. a built-in (the table :data:`BUILTINS`: ``"module:attribute"`` strings, imported on
   first use so that heavy libraries load only for the kinds a job uses);
2. an object registered in this process with :func:`register` (a notebook, a test);
3. an installed plug-in: a Python entry point in the kind's group (:data:`GROUPS`), e.g.
   in a plug-in package's ``pyproject.toml``::

       [project.entry-points."hwnas.searchers"]
       mysearch = "mypkg.search:MySearcher"

:func:`create` builds a registered object with settings checked against its signature,
so a typo in a spec is an error naming the setting and the accepted ones.
Built-in names cannot be shadowed. The HTTP service reaches code only through this
registry: a request names a registered object, never a module.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import threading
from collections.abc import Callable, Mapping
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import Any, TypeVar

from nas.core.config import short_repr
from nas.core.errors import ConfigError

KINDS = ("space", "searcher", "evaluator", "proxy", "predictor", "latency_backend", "layer")
GROUPS: Mapping[str, str] = MappingProxyType(
    {
        "space": "hwnas.spaces",
        "searcher": "hwnas.searchers",
        "evaluator": "hwnas.evaluators",
        "proxy": "hwnas.proxies",
        "predictor": "hwnas.predictors",
        "latency_backend": "hwnas.latency_backends",
        "layer": "hwnas.layers",
    }
)

BUILTINS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "space": MappingProxyType(
            {
                "ofa_mbv3": "search_spaces.ofa_mbv3.space:OFAMobileNetV3Space",
                "ofa_resnet50": "search_spaces.ofa_resnet50.space:OFAResNetSpace",
                "vit": "search_spaces.vit.space:ViTSpace",
                "nb201": "search_spaces.nb201.space:NB201Space",
            }
        ),
        "searcher": MappingProxyType(
            {
                "random": "nas.searchers.simple:RandomSearcher",
                "evolution": "nas.searchers.simple:EvolutionSearcher",
                "nsga2": "nas.searchers.pymoo_nsga2:PymooNSGA2Searcher",
                "tpe": "nas.searchers.optuna_searcher:OptunaTPESearcher",
                "gp": "nas.searchers.optuna_searcher:OptunaGPSearcher",
                "optuna-nsga2": "nas.searchers.optuna_searcher:OptunaNSGA2Searcher",
                "predictor": "nas.searchers.predictor_loop:PredictorLoopSearcher",
            }
        ),
        "evaluator": MappingProxyType(
            {
                "tabular": "nas.evaluators:TabularEvaluator",
                "predictor": "nas.evaluators:PredictorEvaluator",
                "supernet": "nas.evaluators:SupernetEvaluator",
                "zero_cost": "nas.evaluators:ZeroCostEvaluator",
                "custom": "nas.evaluators:CustomEvaluator",
            }
        ),
        "proxy": MappingProxyType(
            {
                name: f"predictors.zero_cost:{name}"
                for name in (
                    "grad_norm",
                    "snip",
                    "grasp",
                    "fisher",
                    "jacob_cov",
                    "synflow",
                    "naswot",
                    "zen",
                    "meco",
                    "zico",
                    "swap",
                    "az_expressivity",
                    "params",
                    "flops",
                )
            }
        ),
        "predictor": MappingProxyType(
            {
                "mlp": "predictors.learned:mlp_ensemble",
                "gp": "predictors.learned:gaussian_process",
                "ridge": "predictors.learned:ridge",
                "gbm": "predictors.learned:gradient_boosting",
                "latency": "predictors.learned:latency_linear",
            }
        ),
        "latency_backend": MappingProxyType(
            {
                "torch": "predictors.latency.backends:TorchBackend",
                "triton": "predictors.latency.backends:TritonBackend",
                "onnxruntime": "predictors.latency.backends:OnnxRuntimeBackend",
                "cuda-graph": "predictors.latency.backends:CudaGraphBackend",
                "torch-compile": "predictors.latency.backends:TorchCompileBackend",
            }
        ),
        # Kinds of static-config layers ({"op": KIND, ...}): their MACs/params and their module.
        "layer": MappingProxyType(
            {
                "conv": "search_spaces.ofa_mbv3.layers:ConvLayer",
                "mbconv": "search_spaces.ofa_mbv3.layers:MBConvLayer",
                "pool": "search_spaces.ofa_mbv3.layers:PoolLayer",
                "linear": "search_spaces.ofa_mbv3.layers:LinearLayer",
                "conv_residual": "search_spaces.ofa_resnet50.layers:ResidualConvLayer",
                "maxpool": "search_spaces.ofa_resnet50.layers:MaxPoolLayer",
                "bottleneck": "search_spaces.ofa_resnet50.layers:BottleneckLayer",
                "nb201_cell": "search_spaces.nb201.layers:CellLayer",
                "nb201_reduction": "search_spaces.nb201.layers:ReductionLayer",
                "nb201_lastact": "search_spaces.nb201.layers:LastActLayer",
                "vit_patch_embed": "search_spaces.vit.layers:PatchEmbedLayer",
                "vit_attention": "search_spaces.vit.layers:AttentionLayer",
                "vit_mlp": "search_spaces.vit.layers:MlpLayer",
                "vit_norm_pool": "search_spaces.vit.layers:NormPoolLayer",
            }
        ),
    }
)

T = TypeVar("T")


class RegistryError(ConfigError):
    """An unknown or unloadable name, or settings its object does not take."""


class _Registered:
    """Objects registered at run time with :func:`register` (append-only, one per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], Any] = {}

    def add(self, kind: str, name: str, obj: Any) -> None:
        with self._lock:
            known = self._items.get((kind, name))
            if known is not None and known is not obj:
                raise RegistryError(f"{kind} {name!r} is already registered (as {_label(known)})")
            self._items[(kind, name)] = obj

    def get(self, kind: str, name: str) -> Any | None:
        return self._items.get((kind, name))

    def names(self, kind: str) -> list[str]:
        return [n for k, n in self._items if k == kind]


_REGISTERED = _Registered()


def _label(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def _check_kind(kind: str) -> None:
    if kind not in GROUPS:
        raise RegistryError(f"registry: kind {kind!r} is not one of {', '.join(KINDS)}")


def register(kind: str, name: str) -> Callable[[T], T]:
    """Decorator: makes ``obj`` available as ``name`` of ``kind`` in this process.

    Installed packages should prefer an entry point (group :data:`GROUPS` [kind]): it
    needs no import to be found, and reaches the HTTP service and Ray workers.
    """
    _check_kind(kind)
    if name in BUILTINS[kind]:
        raise RegistryError(f"{kind} {name!r} is a built-in name; choose another")

    def decorate(obj: T) -> T:
        _REGISTERED.add(kind, name, obj)
        return obj

    return decorate


def _entry_points(kind: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUPS[kind])}


def names(kind: str) -> list[str]:
    """Every name of ``kind``: built-ins first, then registered and installed ones (sorted)."""
    _check_kind(kind)
    builtin = list(BUILTINS[kind])
    extra = {*_REGISTERED.names(kind), *_entry_points(kind)} - set(builtin)
    return builtin + sorted(extra)


def plugin_names(kind: str) -> list[str]:
    """Names of ``kind`` that are not built in (registered here or installed as entry points)."""
    return [n for n in names(kind) if n not in BUILTINS[kind]]


def has(kind: str, name: str) -> bool:
    _check_kind(kind)
    return name in BUILTINS[kind] or _REGISTERED.get(kind, name) is not None or name in _entry_points(kind)


def _import(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def locate_code(target: str) -> str:
    """The file that defines ``package.module`` of a ``package.module:attribute`` name, found
    without importing (running) anything: each package is looked up on its parent's path.

    Raises:
        RegistryError: when the name is malformed or the module cannot be found.
    """
    import importlib.machinery
    import importlib.util

    module_name, sep, attr = target.partition(":")
    parts = module_name.split(".")
    if not sep or not attr or not all(p.isidentifier() for p in parts):
        raise RegistryError(f"{short_repr(target)} is not 'package.module:factory'")
    spec = importlib.util.find_spec(parts[0]) if parts[0] not in sys.modules else sys.modules[parts[0]].__spec__
    for part in parts[1:]:
        locations = spec.submodule_search_locations if spec is not None else None
        spec = importlib.machinery.PathFinder.find_spec(part, list(locations)) if locations else None
        if spec is None:
            break
    if spec is None:
        raise RegistryError(f"{short_repr(target)}: module {module_name!r} is not installed or not on the path")
    return spec.origin or module_name


def load(kind: str, name: str) -> Any:
    """The object ``name`` of ``kind`` stands for.

    Raises:
        RegistryError: for an unknown name (listing the known ones) or a plug-in whose import fails.
    """
    _check_kind(kind)
    if name in BUILTINS[kind]:
        return _import(BUILTINS[kind][name])
    registered = _REGISTERED.get(kind, name)
    if registered is not None:
        return registered
    found = _entry_points(kind).get(name)
    if found is None:
        raise RegistryError(f"unknown {kind} {short_repr(name)}; known: {', '.join(names(kind))}")
    try:
        return found.load()
    except Exception as exc:  # an installed plug-in that is broken: say which
        raise RegistryError(f"{kind} plug-in {name!r} ({found.value}) cannot be loaded: {type(exc).__name__}") from exc


def accepted_settings(factory: Any) -> tuple[list[str], list[str], bool]:
    """Keyword names ``factory`` takes, those it requires, and whether it takes ``**kwargs``."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return [], [], True
    params = [p for p in signature.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    var_kw = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    return [p.name for p in params], [p.name for p in params if p.default is p.empty], var_kw


def check_settings(
    factory: Any, settings: Mapping[str, Any], label: str, given: tuple[str, ...] = (), where: str | None = None
) -> None:
    """Refuses settings ``factory`` does not take, and required ones missing.

    ``given`` are the arguments the caller supplies itself (not settings). Errors start with
    ``where`` (a spec's key path) when given, naming ``label`` (what takes the settings).

    Raises:
        RegistryError: naming the settings and what is accepted.
    """
    known, required, var_kw = accepted_settings(factory)
    accepted = [k for k in known if k not in given]
    if not var_kw:
        unknown = sorted(set(settings) - set(accepted))
        if unknown:
            names = ", ".join(u[:80] for u in unknown)
            head = f"{where}: {names} not accepted by {label}" if where else f"{label}: {names} not accepted"
            raise RegistryError(f"{head}; accepted: {', '.join(accepted) or 'none'}")
    missing = [r for r in required if r not in settings and r not in given]
    if missing:
        raise RegistryError(f"{where}: {label} needs {', '.join(missing)}" if where
                            else f"{label}: needs {', '.join(missing)}")  # fmt: skip


def create(kind: str, name: str, /, *args: Any, **settings: Any) -> Any:
    """Builds ``name`` of ``kind`` with positional ``args`` and keyword ``settings`` (checked first)."""
    factory = load(kind, name)
    check_settings(factory, settings, f"{kind} {name!r}", given=_positional_names(factory, len(args)))
    return factory(*args, **settings)


def _positional_names(factory: Any, count: int) -> tuple[str, ...]:
    known, _, _ = accepted_settings(factory)
    if inspect.isclass(factory) and known and known[0] == "self":
        known = known[1:]
    return tuple(known[:count])


__all__ = [
    "BUILTINS",
    "GROUPS",
    "KINDS",
    "RegistryError",
    "accepted_settings",
    "check_settings",
    "create",
    "has",
    "load",
    "locate_code",
    "names",
    "plugin_names",
    "register",
]
