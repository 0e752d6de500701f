"""Evaluators a job spec can name: tabular, predictor, supernet and zero-cost.

``build_evaluator(spec, space)`` validates the ``evaluator`` block of a job spec
(one dataclass per kind, clear key-path errors) and builds the evaluator; heavy
imports (torch, the supernet) happen only for the kinds that need them. Where a
space has a static layer description, every evaluator also reports ``macs`` and
``params`` (cheap metrics, per sample, OFA's counting convention).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nas.core import registry
from nas.core.arch import Arch
from nas.core.capabilities import InitNetworkSpace, TabularSpace
from nas.core.config import ConfigError, from_dict, short_repr
from nas.core.evaluator import CheapMetricsMixin, Evaluator
from nas.core.precision import float_arch, float_space
from nas.core.registry import RegistryError
from nas.core.space import SearchSpace


@dataclass
class TabularSpec:
    paths: ClassVar[tuple[str, ...]] = ("accuracy_csv", "latency_csv", "zero_cost_scores")
    kind: str
    accuracy_csv: str
    latency_csv: str | None = None
    dataset: str = "cifar10"
    devices: list[str] | None = None
    zero_cost_scores: str | None = None
    proxies: list[str] | None = None


@dataclass
class PredictorSpec:
    paths: ClassVar[tuple[str, ...]] = ("path", "latency_table")
    kind: str
    path: str
    metric: str = "accuracy"
    latency_table: str | None = None
    latency_device: str | None = None
    latency_measure: str | None = None
    latency_rounds: int = 3

    def validate(self, path: str) -> None:
        _check_rounds(self.latency_rounds, path)


def _check_rounds(rounds: int, path: str) -> None:
    if not 1 <= rounds <= 100:
        raise ConfigError(f"{path}.latency_rounds: must be in [1, 100] (3 is usual), got {rounds}")


@dataclass
class SupernetSpec:
    paths: ClassVar[tuple[str, ...]] = ("checkpoint", "latency_table")
    kind: str
    checkpoint: str
    split: str = "holdout"
    recal_batches: int = 10
    threads: int | None = None
    latency_table: str | None = None
    latency_device: str | None = None
    latency_measure: str | None = None
    latency_rounds: int = 3
    proxies: list[str] | None = None
    proxy_weights: str = "inherited"
    proxy_batch_size: int = 64
    calibration_images: int = 256
    calibration_method: str = "minmax"

    def validate(self, path: str) -> None:
        from predictors.quantization import CALIBRATION_METHODS

        if not 1 <= self.calibration_images <= 100_000:
            raise ConfigError(
                f"{path}.calibration_images: must be in [1, 100000] (256 is usual), got {self.calibration_images}"
            )
        if self.calibration_method not in CALIBRATION_METHODS:
            raise ConfigError(
                f"{path}.calibration_method: use one of {', '.join(CALIBRATION_METHODS)}, "
                f"got {self.calibration_method[:40]!r}"
            )
        if self.split not in ("holdout", "test"):
            raise ConfigError(f"{path}.split: use holdout (search) or test (final reports), got {self.split[:40]!r}")
        if self.proxy_weights not in ("inherited", "init"):
            raise ConfigError(
                f"{path}.proxy_weights: use inherited (the supernet's weights) or init (fresh initialisation), "
                f"got {self.proxy_weights[:40]!r}"
            )
        if not 1 <= self.proxy_batch_size <= 4096:
            raise ConfigError(f"{path}.proxy_batch_size: must be in [1, 4096], got {self.proxy_batch_size}")
        if self.proxies is not None:
            _check_proxy_names(self.proxies, f"{path}.proxies")
        if not 0 <= self.recal_batches <= 100_000:
            raise ConfigError(f"{path}.recal_batches: must be in [0, 100000], got {self.recal_batches}")
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise ConfigError(f"{path}.threads: must be in [1, 1024], got {self.threads}")
        _check_rounds(self.latency_rounds, path)


@dataclass
class ZeroCostSpec:
    paths: ClassVar[tuple[str, ...]] = ("data_root",)
    kind: str
    proxy: str = "synflow"
    dataset: str = "synthetic"
    data_root: str | None = None
    batch_size: int = 64
    num_classes: int = 10

    def validate(self, path: str) -> None:
        if not 1 <= self.batch_size <= 4096:
            raise ConfigError(f"{path}.batch_size: must be in [1, 4096], got {self.batch_size}")
        if not 2 <= self.num_classes <= 100_000:
            raise ConfigError(f"{path}.num_classes: must be in [2, 100000], got {self.num_classes}")


@dataclass
class CustomSpec:
    paths: ClassVar[tuple[str, ...]] = ()
    kind: str
    target: str
    options: dict[str, Any] | None = None


@dataclass
class PluginSpec:
    """An evaluator installed as a ``hwnas.evaluators`` entry point, called as ``factory(space=, **options)``.

    A factory may list option names that are file paths in a ``path_options`` attribute;
    the HTTP service keeps those inside its data roots like the built-in kinds' paths.
    """

    paths: ClassVar[tuple[str, ...]] = ()
    kind: str
    options: dict[str, Any] | None = None


def _cost(space: SearchSpace, arch: Arch) -> dict[str, float] | None:
    from predictors.flops import arch_cost

    cost = arch_cost(space, arch)
    return None if cost is None else {"macs": float(cost.macs), "params": float(cost.params)}


def _has_cost(space: SearchSpace) -> bool:
    try:
        space.static_config(space.min_arch())
    except NotImplementedError:
        return False
    return True


class CostMixin(CheapMetricsMixin):
    """MACs/params from the static config, and ``latency_ms@<device>`` from a latency table if given."""

    space: SearchSpace
    table: Any = None

    def _load_table(self, path: str | None) -> None:
        self.table = _load_latency_table(path, self.space) if path else None

    @property
    def latency_metric(self) -> str | None:
        return f"latency_ms@{self.table.metric_device}" if self.table is not None else None

    @property
    def cheap_metrics(self) -> tuple[str, ...]:
        names: tuple[str, ...] = ("macs", "params") if _has_cost(self.space) else ()
        latency = self.latency_metric
        return names + ((latency,) if latency is not None else ())

    def evaluate_cheap(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        out = []
        for arch in archs:
            arch = self.space.make(arch)
            row = _cost(self.space, arch) or {}
            latency = self.latency_metric
            if latency is not None:
                row[latency] = self.table.predict(self.space, arch)
            out.append(row)
        return out


def _with_scores(rows: list[dict[str, float]], scores: Any, archs: Sequence[Arch]) -> list[dict[str, float]]:
    """Each row with its arch's ``zc_<proxy>`` scores from ``scores`` (a score file or cache) beside it."""
    if scores is None:
        return rows
    return [{**row, **zc} for row, zc in zip(rows, scores.lookup(archs))]


class TabularEvaluator(CheapMetricsMixin, Evaluator):
    """NAS-Bench-201 tables; latency columns are cheap (measured offline), and so are zero-cost
    scores from ``zero_cost_scores`` (a file of per-arch proxy values, ``zc_<proxy>``)."""

    def __init__(self, spec: TabularSpec, space: SearchSpace) -> None:
        if not isinstance(space, TabularSpace):
            raise ConfigError(
                f"evaluator.kind: tabular needs a space with benchmark tables (such as nb201), "
                f"the job's space is {space.space_id}"
            )
        if spec.proxies is not None and spec.zero_cost_scores is None:
            raise ConfigError("evaluator.proxies: names proxies of a score file; give evaluator.zero_cost_scores")
        self.inner = space.tabular_evaluator(spec.accuracy_csv, spec.dataset, spec.latency_csv, spec.devices)
        self.space = space
        self.scores: Any = None
        if spec.zero_cost_scores is not None:
            from predictors.zero_cost_scores import ScoreFile

            try:
                self.scores = ScoreFile(spec.zero_cost_scores, space, spec.proxies)
            except ValueError as exc:
                raise ConfigError(f"evaluator.zero_cost_scores: {exc}") from exc

    @property
    def metrics(self) -> tuple[str, ...]:
        return self.inner.metrics + (self.scores.metrics if self.scores is not None else ())

    @property
    def cheap_metrics(self) -> tuple[str, ...]:
        latency = tuple(m for m in self.inner.metrics if m.startswith("latency_ms@"))
        return latency + (self.scores.metrics if self.scores is not None else ())

    def evaluate(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        rows = self.inner.evaluate(archs)
        return _with_scores(rows, self.scores, archs)

    def evaluate_cheap(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        latency = [m for m in self.inner.metrics if m.startswith("latency_ms@")]
        rows = [{k: m[k] for k in latency} for m in self.inner.evaluate(archs)] if latency else [{} for _ in archs]
        return _with_scores(rows, self.scores, archs)


class PredictorEvaluator(CostMixin, Evaluator):
    """A saved learned predictor (mean prediction) plus MACs/params."""

    def __init__(self, spec: PredictorSpec, space: SearchSpace) -> None:
        from predictors.learned import Predictor

        self.space = space
        self.metric = spec.metric
        self.predictor = Predictor.load(spec.path, space)
        self._load_table(spec.latency_table)

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.metric, f"{self.metric}_std", *self.cheap_metrics)

    def evaluate(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        mean, std = self.predictor.predict(archs)
        out = []
        for i, arch in enumerate(archs):
            row = {self.metric: float(mean[i]), f"{self.metric}_std": float(std[i]) if std is not None else 0.0}
            row.update(self.evaluate_cheap([arch])[0])
            out.append(row)
        return out


def _check_proxy_names(names: Sequence[str], where: str) -> None:
    from predictors.zero_cost import proxy_names

    known = proxy_names()
    unknown = [short_repr(n) for n in names if n not in known]
    if unknown or not names:
        listed = ", ".join(unknown) if unknown else "(none given)"
        raise ConfigError(f"{where}: unknown proxies {listed}; known: {', '.join(known)}")


class SupernetEvaluator(CostMixin, Evaluator):
    """Weights inherited from a trained supernet: BN recalibrated, accuracy on the holdout split.

    With ``proxies``, each subnet's zero-cost scores are cheap metrics too (``zc_<proxy>``),
    computed once per arch on one batch of ``proxy_batch_size`` training images at the subnet's
    resolution, with the supernet's weights (``proxy_weights: inherited``) or a fresh seeded
    initialisation (``init``): a cheap evaluator and the predictor searcher's features.

    In a space with precision genes the checkpoint is the float space's supernet; a subnet with
    int8 blocks is exported to ONNX after BN recalibration, quantized as deployed (ONNX Runtime
    static QDQ, ``calibration_images`` seeded training images, ``calibration_method``) and its
    accuracy measured by ONNX Runtime running the quantized model.

    The supernet and dataset load once per process (pickling this object ships
    them, e.g. once through Ray's object store).
    """

    def __init__(self, spec: SupernetSpec, space: SearchSpace) -> None:
        import torch

        from predictors.collect import _dataset
        from search_spaces.training.checkpoint import load_supernet

        if spec.threads:
            torch.set_num_threads(spec.threads)
        supernet, meta = load_supernet(spec.checkpoint)
        supernet_space = float_space(space)
        if supernet.space.space_id != supernet_space.space_id:
            raise ConfigError(
                f"evaluator.checkpoint: {spec.checkpoint} holds a supernet of space {supernet.space.space_id}, "
                f"the job's space is {supernet_space.space_id}; set space to match"
            )
        self.space = space
        self.spec = spec
        self.supernet = supernet.eval()
        self.dataset = _dataset(supernet, meta)
        self._load_table(spec.latency_table)
        self._proxy_data: Any = None
        self.proxy_cache: Any = None
        if spec.proxies:
            from predictors.zero_cost_scores import ProxyScoreCache

            self.proxy_cache = ProxyScoreCache(space, spec.proxies, self.proxy_scores)

    @property
    def metrics(self) -> tuple[str, ...]:
        return ("accuracy", "loss", *self.cheap_metrics)

    @property
    def cheap_metrics(self) -> tuple[str, ...]:
        return super().cheap_metrics + (self.proxy_cache.metrics if self.proxy_cache is not None else ())

    def evaluate_cheap(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        rows = super().evaluate_cheap(archs)
        return _with_scores(rows, self.proxy_cache, archs)

    def proxy_scores(self, arch: Arch) -> dict[str, float]:
        """The subnet's zero-cost scores (its weights per ``proxy_weights``; seeded by the arch)."""
        import torch

        from predictors.zero_cost import score_many
        from search_spaces.bn import resize_batch

        if self._proxy_data is None:
            loader = self.dataset.loader("train", self.spec.proxy_batch_size, train=False, shuffle=True, seed=0)
            self._proxy_data = next(iter(loader.epoch(0)))
        arch = float_arch(self.space, self.space.make(arch))  # proxies score the float subnet
        x, y = self._proxy_data
        x = resize_batch(x, self.supernet.space.resolution(arch))
        seed = int(arch.arch_id[:8], 16) % (2**31)
        with torch.enable_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = self.supernet.extract(arch)
            if self.spec.proxy_weights == "init":
                for module in net.modules():
                    if hasattr(module, "reset_parameters"):
                        module.reset_parameters()
            scores, _ = score_many(list(self.spec.proxies or ()), net.train(), (x, y), seed=seed)
        return scores

    def evaluate(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        import torch

        from predictors.quantization import QuantSettings, deployed_accuracy

        settings = QuantSettings(method=self.spec.calibration_method, images=self.spec.calibration_images)
        out = []
        with torch.no_grad():
            for arch in archs:
                arch = self.space.make(arch)
                m = deployed_accuracy(
                    self.supernet, self.space, arch, self.dataset, self.spec.split, settings,
                    recal_batches=self.spec.recal_batches, threads=torch.get_num_threads(),
                )  # fmt: skip
                out.append({"accuracy": m["accuracy"], "loss": m["loss"], **self.evaluate_cheap([arch])[0]})
        return out


class ZeroCostEvaluator(CostMixin, Evaluator):
    """A zero-cost proxy of each arch at initialisation (seeded per arch)."""

    def __init__(self, spec: ZeroCostSpec, space: SearchSpace) -> None:
        from predictors.zero_cost import proxy_names

        if spec.proxy not in proxy_names():
            raise ConfigError(f"evaluator.proxy: unknown {short_repr(spec.proxy)}; known: {', '.join(proxy_names())}")
        if not isinstance(space, InitNetworkSpace):
            raise ConfigError(
                f"evaluator.kind: zero_cost needs a space that builds networks at initialisation, not {space.space_id}"
            )
        self.space, self.spec = space, spec
        self._init_space: InitNetworkSpace = space
        self._batch: Any = None
        self._networks: Any = None

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.spec.proxy, *self.cheap_metrics)

    def _data(self) -> Any:
        import torch

        if self._batch is None:
            if self.spec.dataset == "synthetic":
                gen = torch.Generator().manual_seed(0)
                x = torch.randn(self.spec.batch_size, *self._init_space.input_shape(), generator=gen)
                y = torch.randint(0, self.spec.num_classes, (self.spec.batch_size,), generator=gen)
                self._batch = (x, y)
            else:
                from predictors.proxy_eval import proxy_batch

                if self.spec.data_root is None:
                    raise ConfigError("evaluator.data_root: required for dataset " + repr(self.spec.dataset))
                self._batch = proxy_batch(self.spec.data_root, self.spec.batch_size)
        return self._batch

    def _network(self, arch: Arch) -> Any:
        if self._networks is None:
            self._networks = self._init_space.init_networks(self.spec.num_classes)
        return self._networks(arch)

    def evaluate(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        import torch

        from predictors.zero_cost import score

        out = []
        for arch in archs:
            arch = self.space.make(arch)
            seed = int(arch.arch_id[:8], 16)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                net = self._network(arch)
            value = score(self.spec.proxy, net, self._data(), seed=seed)
            out.append({self.spec.proxy: value, **(_cost(self.space, arch) or {})})
        return out


def _check_options(factory: Any, label: str, options: Mapping[str, Any]) -> None:
    """Refuses options the factory's signature does not take (unless it takes ``**kwargs``), and missing ones."""
    registry.check_settings(factory, options, label, given=("space",), where="evaluator.options")


def _call_factory(factory: Any, label: str, space: SearchSpace, options: Mapping[str, Any]) -> Evaluator:
    _check_options(factory, label, options)
    try:
        evaluator = factory(space=space, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"evaluator.options: {label} refused them: {exc}") from exc
    if not isinstance(evaluator, Evaluator):
        raise ConfigError(f"evaluator: {label} did not return an Evaluator")
    return evaluator


def _custom_factory(spec: CustomSpec) -> Any:
    import importlib

    module, sep, name = spec.target.partition(":")
    if not sep:
        raise ConfigError(f"evaluator.target: {spec.target!r} is not 'package.module:factory'")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"evaluator.target: cannot import {spec.target!r}: {exc}") from exc


class CustomEvaluator:
    """The ``custom`` kind: builds a user's evaluator ``package.module:factory`` (CLI only; names code)."""

    spec_class = CustomSpec
    names_code = True

    def __new__(cls, spec: CustomSpec, space: SearchSpace) -> Evaluator:  # type: ignore[misc]
        return _call_factory(_custom_factory(spec), repr(spec.target), space, spec.options or {})


for _cls, _spec in ((TabularEvaluator, TabularSpec), (PredictorEvaluator, PredictorSpec),
                    (SupernetEvaluator, SupernetSpec), (ZeroCostEvaluator, ZeroCostSpec)):  # fmt: skip
    setattr(_cls, "spec_class", _spec)  # noqa: B010 - the registry reads it from the class

PATH_KEYS = tuple(sorted({k for spec in (TabularSpec, PredictorSpec, SupernetSpec, ZeroCostSpec) for k in spec.paths}))

PathCheck = Callable[[str, str], str]


def evaluator_kinds() -> list[str]:
    """Built-in evaluator kinds, then those registered or installed as plug-ins (:mod:`nas.core.registry`)."""
    return registry.names("evaluator")


def _plugin_factory(kind: str) -> Any:
    try:
        return registry.load("evaluator", kind)
    except RegistryError as exc:
        raise ConfigError(f"evaluator.kind: {exc}") from exc


def _check_latency_keys(parsed: Any) -> None:
    """The latency keys of an evaluator block do not name one metric twice."""
    measured = getattr(parsed, "latency_measure", None)
    if measured is None:
        return
    if measured == getattr(parsed, "latency_device", None):
        raise ConfigError(
            f"evaluator: latency_device and latency_measure both give latency_ms@{measured}; keep one "
            "(latency_device reads the device's table, latency_measure times every subnet on the device)"
        )


def _parse(spec: Mapping[str, Any], allow_code: bool) -> tuple[Any, Any]:
    """The evaluator block parsed into its kind's spec dataclass, and the kind's factory."""
    kind = spec.get("kind")
    if not isinstance(kind, str) or not registry.has("evaluator", kind):
        raise ConfigError(f"evaluator.kind: {short_repr(kind)} is not one of {evaluator_kinds()}")
    factory = _plugin_factory(kind)
    if getattr(factory, "names_code", False) and not allow_code:
        safe = [k for k in evaluator_kinds() if not getattr(_plugin_factory(k), "names_code", False)]
        raise ConfigError(
            f"evaluator.kind: {kind!r} names code to import and is not accepted here; use a registered kind "
            f"({', '.join(safe)}) or install an evaluator plug-in (entry point group {registry.GROUPS['evaluator']!r})"
        )
    spec_cls = getattr(factory, "spec_class", PluginSpec)
    return from_dict(spec_cls, dict(spec), "evaluator"), factory


def _path_keys(parsed: Any, factory: Any) -> tuple[str, ...]:
    if isinstance(parsed, PluginSpec):
        return tuple(getattr(factory, "path_options", ()))
    return tuple(parsed.paths)


@dataclass(frozen=True)
class EvaluatorCheck:
    """What :func:`check_evaluator` found: the block with its paths resolved, and the metrics the
    evaluator will offer, all of them and the cheap ones (``None`` for plug-in and custom
    evaluators, whose metrics are known only once built)."""

    spec: dict[str, Any]
    cheap_metrics: tuple[str, ...] | None
    metrics: tuple[str, ...] | None


def check_evaluator(
    spec: Mapping[str, Any], space: SearchSpace, *, allow_code: bool = True, check_path: PathCheck | None = None
) -> EvaluatorCheck:
    """Validates an ``evaluator`` block without running anything heavy: its paths resolved, and the
    metrics the evaluator will offer (:class:`EvaluatorCheck`).

    ``check_path(key, value)`` returns the path to use or raises :class:`ConfigError`
    (the HTTP service keeps paths inside its data roots). Every file named must exist,
    and the kind must suit the space; supernet checkpoints are checked from their
    description only, plug-in and custom evaluators against their factory's signature
    (their set-up may be heavy), the other kinds are built once (cheap: tables, a
    predictor's fit).
    """
    parsed, factory = _parse(spec, allow_code)
    _check_latency_keys(parsed)
    out = dict(spec)
    options = dict(out.get("options") or {}) if isinstance(parsed, PluginSpec) else out
    for name in _path_keys(parsed, factory):
        value = options.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ConfigError(f"evaluator.{name}: expected a path")
        value = check_path(name, value) if check_path is not None else value
        if not os.path.exists(value):
            raise ConfigError(f"evaluator.{name}: {value} not found")
        options[name] = value
    if isinstance(parsed, PluginSpec):
        out["options"] = options
    if isinstance(parsed, SupernetSpec):
        from search_spaces.training.checkpoint import CheckpointError, supernet_space_id

        if check_path is not None:
            contain_checkpoint(out["checkpoint"], check_path)
        try:
            found = supernet_space_id(out["checkpoint"])
        except CheckpointError as exc:
            raise ConfigError(f"evaluator.checkpoint: {exc}") from exc
        weights_space = float_space(space)  # a space with precision genes runs its float space's supernet
        if found != weights_space.space_id:
            raise ConfigError(
                f"evaluator.checkpoint: holds a supernet of space {found}, the job's space is "
                f"{weights_space.space_id}{_config_difference(out['checkpoint'], weights_space)}; set space to match"
            )
        from predictors.zero_cost_scores import proxy_metric

        cheap: list[str] = ["macs", "params"] if _has_cost(space) else []
        if parsed.latency_table is not None:
            cheap.append(f"latency_ms@{_load_latency_table(out['latency_table'], space).metric_device}")
        if parsed.latency_device is not None:
            cheap.append(f"latency_ms@{parsed.latency_device}")
        offered = (*cheap, *(proxy_metric(p) for p in parsed.proxies or ()))
        timed = (f"latency_ms@{parsed.latency_measure}",) if parsed.latency_measure is not None else ()
        return EvaluatorCheck(out, offered, ("accuracy", "loss", *offered, *timed))
    if isinstance(parsed, PluginSpec):
        _check_options(factory, f"evaluator plug-in {parsed.kind!r}", options)
        return EvaluatorCheck(out, None, None)
    if isinstance(parsed, CustomSpec):
        _check_options(_custom_factory(parsed), repr(parsed.target), parsed.options or {})
        return EvaluatorCheck(out, None, None)
    device = getattr(parsed, "latency_device", None)
    measured = getattr(parsed, "latency_measure", None)
    if device is not None or measured is not None:  # resolved from the job's store when it runs: offered by name
        others = {"latency_device", "latency_measure", "latency_rounds"}
        built = build_evaluator({k: v for k, v in out.items() if k not in others}, space, allow_code=allow_code)
        latency = (f"latency_ms@{device}",) if device is not None else ()
        timed = (f"latency_ms@{measured}",) if measured is not None else ()
        offered = (*getattr(built, "cheap_metrics", ()), *latency)
        return EvaluatorCheck(out, offered, (*built.metrics, *latency, *timed))
    built = build_evaluator(out, space, allow_code=allow_code)
    return EvaluatorCheck(out, tuple(getattr(built, "cheap_metrics", ())), tuple(built.metrics))


def _config_difference(checkpoint: str, space: SearchSpace) -> str:
    """The options in which a checkpoint's space and ``space`` differ, as text (ids name only hashes)."""
    from search_spaces.training.checkpoint import read_supernet_meta

    ours = getattr(space, "config_dict", None)
    try:
        theirs = read_supernet_meta(checkpoint)[1].get("space_config")
    except Exception:
        return ""
    if not callable(ours) or not isinstance(theirs, dict):
        return ""
    mine = ours()
    keys = [k for k in sorted(set(theirs) | set(mine)) if theirs.get(k) != mine.get(k) and k != "name"]
    if not keys:
        return ""
    shown = ", ".join(f"{k} (checkpoint {short_repr(theirs.get(k))}, spec {short_repr(mine.get(k))})" for k in keys[:5])
    return f": they differ in {shown}" + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def contain_checkpoint(checkpoint: str, check_path: PathCheck) -> None:
    """Applies ``check_path`` to every file a supernet checkpoint names: its description, its
    weights, and its data section's root and shards, which must be local files (a WebDataset
    ``pipe:`` command or a URL is refused: it would run a command or fetch from the network).

    Raises:
        ConfigError: naming the checkpoint's entry that is refused (never a file's content).
    """
    from search_spaces.streaming import expand_shards
    from search_spaces.training.checkpoint import CheckpointError, read_supernet_meta

    try:
        meta_path, meta = read_supernet_meta(checkpoint)
    except CheckpointError as exc:
        raise ConfigError(f"evaluator.checkpoint: {exc}") from exc
    check_path("checkpoint", str(meta_path))
    weights = meta.get("weights_file")
    if not isinstance(weights, str):
        raise ConfigError(f"evaluator.checkpoint: {meta_path} names no weights file")
    check_path("checkpoint's weights_file", str(meta_path.with_name(weights)))
    found = meta.get("data")
    data: dict[str, Any] = found if isinstance(found, dict) else {}
    if data.get("download"):
        raise ConfigError("evaluator.checkpoint: its data.download is true; this service reads data, never fetches it")
    for name in ("root", "train_shards", "val_shards"):
        value = data.get(name)
        if value is None:
            continue
        where = f"checkpoint's data.{name}"
        if not isinstance(value, str) or value.startswith("pipe:") or "://" in value:
            raise ConfigError(
                f"evaluator.{where}: a command (pipe:) or URL is not accepted here; name shards inside the data roots"
            )
        if name == "root":
            check_path(where, os.path.abspath(value))  # as the loader resolves it: from the working directory
            continue
        try:
            shards = expand_shards(value)
        except Exception as exc:  # a missing shard, a bad pattern
            raise ConfigError(f"evaluator.{where}: {type(exc).__name__}: the shards cannot be listed") from None
        for shard in shards:
            check_path(where, os.path.abspath(shard))


def _load_latency_table(path: str, space: SearchSpace) -> Any:
    from predictors.latency import LatencyTable

    try:
        table = LatencyTable.load(path, space_id=space.space_id)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"evaluator.latency_table: {exc}") from exc
    _check_reliable(table, path)
    return table


def _check_reliable(table: Any, where: str) -> None:
    """A table its build marked unreliable (measured under load, too noisy) is refused unless the
    user kept it knowingly (``nas latency build --accept-unreliable``)."""
    if not table.usable:
        raise ConfigError(
            f"evaluator.latency_table: {where} was marked unreliable when it was built ({table.reasons}); "
            "rebuild it, or keep it knowingly with `nas latency build ... --accept-unreliable`"
        )


DeviceResolver = Callable[[str, SearchSpace], Any]
# (the evaluator, the job's space, a device name, timing rounds) -> the evaluator that also
# measures latency_ms@NAME on that device (nas.device_measure.measure_resolver)
MeasureResolver = Callable[[Evaluator, SearchSpace, str, int], Evaluator]


def build_evaluator(
    spec: Mapping[str, Any],
    space: SearchSpace,
    *,
    allow_code: bool = True,
    check_path: PathCheck | None = None,
    devices: DeviceResolver | None = None,
    measure: MeasureResolver | None = None,
) -> Evaluator:
    """Validates an ``evaluator`` block and builds it.

    ``check_path`` (the HTTP service's data roots) is applied again here, to the files named and
    to those a supernet checkpoint names, since they may have changed since admission.
    ``devices`` finds ``latency_device`` (a device of the job's store) as a latency table
    (:func:`nas.devices.device_resolver`); ``measure`` finds ``latency_measure`` (a device of
    the store whose end-to-end latency each evaluation measures, where the device is:
    :func:`nas.device_measure.measure_resolver`).

    Raises:
        ConfigError: naming the key that is wrong.
    """
    parsed, factory = _parse(spec, allow_code)
    _check_latency_keys(parsed)
    measured = getattr(parsed, "latency_measure", None)
    if measured is not None:
        if measure is None:
            raise ConfigError(
                f"evaluator.latency_measure: {measured} is a device of a store; run the job with `nas search` "
                "and that store (--store)"
            )
        inner = build_evaluator({k: v for k, v in spec.items() if k not in ("latency_measure", "latency_rounds")},
                                space, allow_code=allow_code, check_path=check_path, devices=devices)  # fmt: skip
        return measure(inner, space, measured, parsed.latency_rounds)
    device = getattr(parsed, "latency_device", None)
    if device is not None:
        if getattr(parsed, "latency_table", None) is not None:
            raise ConfigError("evaluator: give latency_table (a file) or latency_device (a device), not both")
        if devices is None:
            raise ConfigError(
                f"evaluator.latency_device: {device} is a device of a store; run the job with `nas search` "
                "and that store (--store), or give latency_table: a table file"
            )
        table = devices(device, space)
        built = build_evaluator({k: v for k, v in spec.items() if k != "latency_device"}, space,
                                allow_code=allow_code, check_path=check_path)  # fmt: skip
        built.table = table  # type: ignore[attr-defined]  # the cost mixin's table: latency_ms@DEVICE
        return built
    for name in parsed.paths:
        value = getattr(parsed, name, None)
        if value is not None and check_path is not None:
            check_path(name, value)
        if value is not None and not os.path.exists(value):
            raise ConfigError(f"evaluator.{name}: {value} not found")
    if isinstance(parsed, SupernetSpec) and check_path is not None:
        contain_checkpoint(parsed.checkpoint, check_path)
    if isinstance(parsed, PluginSpec):
        return _call_factory(factory, f"evaluator plug-in {parsed.kind!r}", space, parsed.options or {})
    try:
        return factory(parsed, space)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"evaluator: {exc}") from exc
