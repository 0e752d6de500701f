"""Measuring on a device that cannot run Python: each op and subnet as a model file, timed by a
command the user gives, whose output a declared pattern parses (nn-Meter's backends: a profiler
plus a parser).

The template is split like a shell line (no shell runs it) and each word formatted with
``{model}`` (the ONNX file), ``{batch}``, ``{threads}`` and ``{shape}`` (the input shape,
``1,3,32,32``), e.g. ``adb shell /data/local/tmp/onnxruntime_perf_test -r 50 {model}`` after an
``adb push`` in a wrapper script, or ``python -m nas.testing.ort_benchmark --model {model}``.
The pattern is a regular expression with a group named ``ms`` (or ``us``) that finds the
latency in the command's output. Every answer is kept in the work folder (``measured.json``)
as it comes, so an interrupted build resumes where it stopped (and forgotten once it completes,
:meth:`CommandTimer.done`); a failing command is retried and then reported with its output.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.core.arch import Arch
from nas.core.precision import DYNAMIC, FLOAT, layers_dynamic, quantized, quantized_layers
from nas.core.space import SearchSpace

logger = logging.getLogger(__name__)

PLACEHOLDERS = ("model", "batch", "threads", "shape")
DEFAULT_PATTERN = r"(?P<ms>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*ms"


class CommandError(RuntimeError):
    """A device command failed (after its retries) or printed nothing the pattern matches."""


@dataclass(frozen=True)
class CommandSpec:
    """How to time one model file on the device (see the module docstring)."""

    template: str
    pattern: str = DEFAULT_PATTERN
    timeout_s: float = 300.0
    retries: int = 2

    def check(self) -> None:
        """Raises ``ValueError`` naming what is wrong with the template or the pattern."""
        try:
            words = shlex.split(self.template)
        except ValueError as exc:
            raise ValueError(f"command: cannot split {self.template!r} into words ({exc})") from None
        if not words:
            raise ValueError("command: empty; give the program that times one model, with {model} for its file")
        names = set(re.findall(r"{(\w*)}", self.template))
        unknown = sorted(names - set(PLACEHOLDERS))
        if unknown:
            raise ValueError(f"command: unknown placeholder {{{unknown[0]}}}; use {', '.join(PLACEHOLDERS)}")
        if "model" not in names:
            raise ValueError("command: has no {model}; the model file's path must reach the program")
        try:
            compiled = re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"pattern: not a regular expression ({exc})") from None
        if not {"ms", "us"} & set(compiled.groupindex):
            raise ValueError("pattern: needs a group named ms or us, e.g. 'mean: (?P<ms>[0-9.]+) ms'")
        if self.timeout_s <= 0 or self.retries < 0:
            raise ValueError("command: timeout_s must be > 0 and retries >= 0")

    def parse(self, output: str) -> float:
        """The latency (ms) the pattern finds in ``output`` (its last match)."""
        matches = list(re.finditer(self.pattern, output))
        if not matches:
            tail = output.strip()[-300:] or "(no output)"
            raise CommandError(f"the pattern {self.pattern!r} matched nothing in the command's output: {tail}")
        found = matches[-1].groupdict()
        return float(found["ms"]) if found.get("ms") is not None else float(found["us"]) / 1000.0


class CommandTimer:
    """Layer and arch timers for :func:`predictors.latency.build_table` that run ``spec`` on model
    files written to ``work`` (which also keeps every answer, for resuming)."""

    def __init__(self, spec: CommandSpec, work: str | Path, batch: int = 1, threads: int = 1) -> None:
        spec.check()
        self.spec, self.batch, self.threads = spec, batch, threads
        self.work = Path(work)
        (self.work / "models").mkdir(parents=True, exist_ok=True)
        self.cache_path = self.work / "measured.json"
        self.cache: dict[str, list[float]] = {}
        if self.cache_path.is_file():
            self.cache = json.loads(self.cache_path.read_text())
            logger.info("resuming: %d models already measured in %s", len(self.cache), self.cache_path)
        self.calls: dict[str, int] = {}

    def done(self) -> None:
        """Forgets the answers once the measurement they belong to is complete: they let an
        interrupted build resume, never stand in for a later build's measurements."""
        self.cache_path.unlink(missing_ok=True)
        self.cache, self.calls = {}, {}

    def _save(self) -> None:
        tmp = self.cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.cache))
        tmp.replace(self.cache_path)

    def _run(self, path: Path, shape: tuple[int, ...]) -> float:
        values = {"model": str(path), "batch": str(self.batch), "threads": str(self.threads),
                  "shape": ",".join(str(d) for d in (self.batch, *shape))}  # fmt: skip
        args = [word.format(**values) for word in shlex.split(self.spec.template)]
        error = ""
        for attempt in range(self.spec.retries + 1):
            try:
                done = subprocess.run(args, capture_output=True, text=True, timeout=self.spec.timeout_s, check=False)
            except subprocess.TimeoutExpired:
                error = f"timed out after {self.spec.timeout_s:g} s"
            except OSError as exc:
                raise CommandError(f"command {args[0]!r} cannot run: {exc}") from None
            else:
                if done.returncode == 0:
                    try:
                        return self.spec.parse(done.stdout + "\n" + done.stderr)
                    except CommandError as exc:
                        error = str(exc)
                else:
                    error = f"exit status {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}"
            logger.warning("%s: attempt %d of %d failed: %s", path.name, attempt + 1, self.spec.retries + 1, error)
        raise CommandError(f"{path.name}: {shlex.join(args)} failed {self.spec.retries + 1} times; last: {error}")

    def _measure(self, key: str, model: Any, shape: tuple[int, ...]) -> dict[str, float]:
        """The next round's timing of ``key`` (from the work folder when an earlier run measured it)."""
        n = self.calls[key] = self.calls.get(key, 0) + 1
        samples = self.cache.setdefault(key, [])
        if len(samples) < n:
            path = self.work / "models" / f"{key}.onnx"
            if not path.is_file():
                path.write_bytes(model())
            samples.append(self._run(path, shape))
            self._save()
        ms = samples[n - 1]
        return {"mean_ms": ms, "median_ms": ms, "std_ms": 0.0, "count": 1}

    def _example(self, shape: tuple[int, ...]) -> Any:
        import torch

        return torch.randn((self.batch, *shape), generator=torch.Generator().manual_seed(0))

    def layer(self, layer: Mapping[str, Any]) -> dict[str, float]:
        from predictors.latency.ops import layer_module, signature
        from predictors.onnx_backend import export_onnx
        from predictors.quantization import int8_model

        key = "op-" + hashlib.sha256(f"{signature(layer)}|b{self.batch}".encode()).hexdigest()[:20]
        module, shape = layer_module(layer)
        precision = layer.get("precision", FLOAT)

        def model() -> bytes:
            example = self._example(shape)
            if not quantized(precision):
                return export_onnx(module, example)
            return int8_model(module, example, None, dynamic=precision == DYNAMIC)

        return self._measure(key, model, shape)

    def arch(self, space: SearchSpace, arch: Arch) -> dict[str, float]:
        from predictors.onnx_backend import export_onnx
        from predictors.quantization import int8_model

        arch = space.make(arch)
        layers = space.static_config(arch)
        first = layers[0]
        shape = (first["in_ch"], first["in_hw"], first["in_hw"])
        int8 = quantized_layers(layers)

        def model() -> bytes:
            net = space.build_static(arch)  # type: ignore[attr-defined]
            example = self._example(shape)
            return int8_model(net, example, int8, dynamic=layers_dynamic(layers)) if int8 else export_onnx(net, example)

        return self._measure(f"arch-{arch.arch_id[:20]}-b{self.batch}", model, shape)
