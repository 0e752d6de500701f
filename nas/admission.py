"""Admitting a job spec: everything it needs is checked before the job is stored.

The CLI admits a user's own spec (:data:`CLI_POLICY`: ``module:factory`` names and any
path allowed). The HTTP service admits specs from the network under a
:func:`service_policy`: only registered spaces, evaluators and searchers (built in or
installed as entry points), and every file inside the data roots it was started with,
after symlinks are resolved. A spec that fails leaves nothing behind (no job row).
No torch import here; checking a supernet checkpoint reads only its description.
"""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.core import registry
from nas.core.config import ConfigError
from nas.core.limits import DEFAULT_LIMITS, InputLimits
from nas.core.space import SearchSpace
from nas.evaluators import check_evaluator
from nas.job import JobSpec, job_from_dict
from nas.searchers import create_searcher, searcher_class

MAX_NAME_BYTES = 255  # one path component (NAME_MAX on Linux, macOS and Windows file systems)


@dataclass(frozen=True)
class SpecPolicy:
    """What a spec may ask for.

    Attributes:
        allow_code: Accept ``module:factory`` names and the ``custom`` evaluator.
        data_roots: Folders every file must resolve into; ``None`` means any path.
        limits: Bounds on the spec's values.
        max_params: Largest parameter count of the space's largest subnet (``None``: no bound).
        max_macs: Largest MACs per sample of the space's largest subnet (``None``: no bound).
    """

    allow_code: bool = True
    data_roots: tuple[Path, ...] | None = None
    limits: InputLimits = field(default=DEFAULT_LIMITS)
    max_params: float | None = None
    max_macs: float | None = None

    def check_network(self, space: SearchSpace) -> None:
        """Refuses a space whose largest subnet is past :attr:`max_params` or :attr:`max_macs`
        (counted from its static layer description: nothing is built)."""
        if self.max_params is None and self.max_macs is None:
            return
        from predictors.flops import arch_cost

        cost = arch_cost(space, space.max_arch())
        if cost is None:
            return
        for what, value, high in (("parameters", cost.params, self.max_params), ("MACs", cost.macs, self.max_macs)):
            if high is not None and value > high:
                raise ConfigError(
                    f"space: the largest subnet of {space.space_id} has {value:.3g} {what}; this service runs "
                    f"networks of at most {high:.3g} (ask its operator, or run it with `nas search`)"
                )

    def check_path(self, key: str, value: str) -> str:
        """The absolute, symlink-free path ``value`` names, if it lies inside a data root.

        A relative path is looked up in each root in turn. The error never says whether
        a path outside the roots exists.
        """
        if self.data_roots is None:
            return value
        if not self.data_roots:
            raise ConfigError(
                f"evaluator.{key}: this service accepts no file paths (start it with `nas serve --data-root DIR`)"
            )
        if "\x00" in value or any(len(part.encode("utf-8", "replace")) > MAX_NAME_BYTES for part in Path(value).parts):
            raise ConfigError(f"evaluator.{key}: not a valid path (a name over {MAX_NAME_BYTES} bytes or a NUL)")
        try:
            given = Path(value).expanduser() if value.startswith("~") else Path(value)
            candidates = [given] if given.is_absolute() else [root / given for root in self.data_roots]
            inside = []
            for candidate in candidates:
                real = Path(os.path.realpath(candidate))
                if any(real == root or root in real.parents for root in self.data_roots):
                    inside.append(real)
            found = next((p for p in inside if os.path.exists(p)), inside[0] if inside else None)
        except (OSError, RuntimeError, ValueError):  # a path the system cannot resolve (too long, a loop)
            raise ConfigError(f"evaluator.{key}: not a valid path") from None
        if found is None:
            roots = ", ".join(str(r) for r in self.data_roots)
            raise ConfigError(f"evaluator.{key}: {value[:200]} is outside the data roots ({roots})")
        return str(found)


CLI_POLICY = SpecPolicy()


SERVICE_MAX_PARAMS = 250e6  # 1 GB of float32 weights; the largest published supernet has 48 M
SERVICE_MAX_MACS = 100e9  # per sample; OFA-ResNet50's largest subnet needs 7.5 G at 224 px


def service_policy(
    data_roots: Sequence[str | Path], limits: InputLimits = DEFAULT_LIMITS, *,
    max_params: float | None = SERVICE_MAX_PARAMS, max_macs: float | None = SERVICE_MAX_MACS,
) -> SpecPolicy:  # fmt: skip
    """The policy of the HTTP service: registered names only, files inside ``data_roots``,
    networks up to ``max_params`` parameters and ``max_macs`` MACs."""
    roots = []
    for root in data_roots:
        real = Path(os.path.realpath(Path(root).expanduser()))
        if not real.is_dir():
            raise ConfigError(f"--data-root: {root} is not a folder")
        roots.append(real)
    return SpecPolicy(allow_code=False, data_roots=tuple(roots), limits=limits, max_params=max_params,
                      max_macs=max_macs)  # fmt: skip


def _check_metrics(spec: JobSpec, offered: tuple[str, ...]) -> None:
    """Every objective and constraint names a metric the evaluator offers (a typo such as
    ``acc`` or ``latency_ms@pixel4`` would otherwise fail every trial and still end ``done``)."""
    names = ", ".join(offered)
    named = [("objectives", i, o.metric) for i, o in enumerate(spec.objectives)]
    named += [("constraints", i, c.metric) for i, c in enumerate(spec.constraints)]
    for key, i, metric in named:
        if metric not in offered:
            close = difflib.get_close_matches(metric, offered, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{key}[{i}].metric: {metric!r} is not a metric of this evaluator "
                f"({spec.evaluator.get('kind')}: {names}){hint}"
            )


@contextlib.contextmanager
def _stage(key: str) -> Iterator[None]:
    """Turns an unexpected exception while checking ``key`` (a plug-in's bug, a value its code did
    not expect) into a :class:`ConfigError` naming the key and the exception's type only."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"{key}: checking it raised {type(exc).__name__}; its options are not ones its code accepts"
        ) from exc


def _not_called(archs: Any) -> Any:
    raise RuntimeError("admission builds searchers only to check their settings")


def admit_job(data: Any, policy: SpecPolicy = CLI_POLICY) -> tuple[JobSpec, SearchSpace]:
    """A fully checked job spec and its space, ready to store and run.

    Checks, in order: value bounds and types (:func:`job_from_dict`), the space (by
    registered name unless ``allow_code``), the evaluator (kind, files, suitability for
    the space) and the searcher's settings. The evaluator block comes back with its
    file paths resolved, so the job runs on exactly the files that were checked.

    Raises:
        ConfigError: naming the key that is wrong.
    """
    spec = job_from_dict(data, policy.limits)
    with _stage("space"):  # a plug-in's own errors are the spec's errors, never a crash of the caller
        space = spec.space.build(allow_code=policy.allow_code)
        policy.check_network(space)
    with _stage("evaluator"):
        checked = check_evaluator(
            spec.evaluator, space, allow_code=policy.allow_code,
            check_path=policy.check_path if policy.data_roots is not None else None,
        )  # fmt: skip
    spec.evaluator, cheap_metrics = checked.spec, checked.cheap_metrics
    if checked.metrics is not None:
        _check_metrics(spec, checked.metrics)
    settings = dict(spec.searcher.settings)
    if cheap_metrics is None:  # a plug-in evaluator: the runner checks proxy settings once it is built
        cheap_metrics = ()
        settings = {k: v for k, v in settings.items() if k not in ("proxy_features", "warm_start")}
    try:
        create_searcher(
            spec.searcher.kind, space, spec.objective_list, spec.constraint_list, spec.seed, settings,
            cheap=_not_called, cheap_metrics=cheap_metrics,
        )  # fmt: skip
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"searcher.settings: {exc}") from exc
    except Exception as exc:
        raise ConfigError(f"searcher: checking it raised {type(exc).__name__}") from exc
    return spec, space


def code_names(spec: JobSpec) -> dict[str, str]:
    """The ``package.module:factory`` names a spec asks to import, by key."""
    names: dict[str, str] = {}
    if ":" in spec.space.name and not registry.has("space", spec.space.name):
        names["space.name"] = spec.space.name
    if spec.evaluator.get("kind") == "custom" and isinstance(spec.evaluator.get("target"), str):
        names["evaluator.target"] = spec.evaluator["target"]
    return names


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check_job` found: the spec, its space (``None`` when the space is code) and the
    code it did not run (key -> ``module:factory`` and the file that defines it)."""

    spec: JobSpec
    space: SearchSpace | None
    code: dict[str, str]


def check_job(data: Any) -> CheckReport:
    """Every check :func:`admit_job` makes under :data:`CLI_POLICY`, without running user code.

    ``module:factory`` names are found on the path without importing their modules; what
    only the code itself can say (the space it builds, a custom evaluator's options) is
    left to ``nas search``, and the report lists those names.

    Raises:
        ConfigError: naming the key that is wrong (a code name that cannot be found included).
    """
    spec = job_from_dict(data, CLI_POLICY.limits)
    code = code_names(spec)
    located: dict[str, str] = {}
    for key, target in code.items():
        try:
            located[key] = f"{target} ({registry.locate_code(target)})"
        except registry.RegistryError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    if not code:
        spec, space = admit_job(spec.to_dict(), CLI_POLICY)
        return CheckReport(spec, space, {})
    try:  # the searcher's settings need no space: checked whatever the space is
        searcher_class(spec.searcher.kind).checked_settings(spec.searcher.settings)
    except TypeError:  # a plug-in whose defaults() needs an instance: checked when `nas search` builds it
        pass
    except ValueError as exc:
        raise ConfigError(f"searcher.settings: {exc}") from None
    if "space.name" in code:
        return CheckReport(spec, None, located)
    space = spec.space.build(allow_code=False)
    return CheckReport(spec, space, located)


__all__ = ["CLI_POLICY", "CheckReport", "SpecPolicy", "admit_job", "check_job", "code_names", "service_policy"]
