"""Export of the subnets a search found: deployable files per device, checked, with a manifest.

``export_job`` takes a job whose evaluator is a trained supernet, picks trials from its
Pareto front (each front member, the most accurate one within a latency budget on a
device, or one trial), and for each writes the subnet as a static network with its BN
statistics recalibrated exactly as the search evaluated it, in one of:

- ``onnx`` — an ONNX model (input ``x``, output ``y``, dynamic batch), checked in ONNX Runtime;
- ``torchscript`` — a traced TorchScript module, checked after ``torch.jit.load``;
- ``safetensors`` — the weights, with the space id and arch in the file's metadata; rebuilt
  by :func:`load_safetensors` (no pickle) and checked after rebuilding;
- ``timm`` — (spaces whose subnets are timm models: ``vit``) a folder with timm's
  ``config.json`` and ``model.safetensors``: ``timm.create_model("local-dir:FOLDER",
  pretrained=True)`` loads a subnet whose layers are uniform, and
  :func:`search_spaces.vit.static.load_timm_folder` any subnet; checked after loading.

Each file is checked by running it on a batch of real inputs against the torch network it
came from (largest absolute difference recorded; over ``tolerance`` is an error), its test
accuracy is measured, and ``manifest.json`` records per model the trial, arch, the
search's metrics, the input (shape and preprocessing), the file's SHA-256 and the check.
Files are registered in the store as ``export`` artifacts of the job.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.core.pareto import Constraint, Objective, pareto_front
from nas.core.precision import float_arch, float_space, int8_layers, space_dynamic
from nas.store import Store, TrialRecord

if TYPE_CHECKING:
    from predictors.quantization import QuantSettings

logger = logging.getLogger(__name__)

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors", "timm": "/model.safetensors"}
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


class ExportError(ValueError):
    """A request that cannot be exported (wrong job, device, budget or trial)."""


def _job_space(spec: dict[str, Any]) -> Any:
    from nas.job import job_from_dict

    return job_from_dict(spec).space.build()


# ----------------------------------------------------------------- choosing trials
def latency_metrics(job_spec: dict[str, Any]) -> list[str]:
    """The ``latency_ms@<device>`` metrics a job optimised or constrained."""
    names = [o["metric"] for o in job_spec["objectives"]] + [c["metric"] for c in job_spec.get("constraints", [])]
    return list(dict.fromkeys(n for n in names if n.startswith("latency_ms@")))


def choose_trials(
    store: Store, job_id: str, device: str, *, max_latency: float | None = None, trial_id: int | None = None
) -> list[TrialRecord]:
    """The trials to export for ``device``, fastest first.

    With ``trial_id``: that (complete) trial. With ``max_latency``: the front member with the
    best value of the job's first non-latency objective among those within the budget.
    Otherwise every member of the job's feasible Pareto front.
    """
    if max_latency is not None and trial_id is not None:
        raise ExportError("give --max-latency or --trial, not both")
    job = store.job(job_id)
    latency = f"latency_ms@{device}"
    known = latency_metrics(job.spec)
    if latency not in known:
        have = ", ".join(m.split("@", 1)[1] for m in known) or "none"
        raise ExportError(
            f"--device {device}: job {job_id} has no {latency} objective or constraint (its devices: {have}); "
            "export for a device the job searched for"
        )
    trials = store.trials(job_id, ["complete"])
    if trial_id is not None:
        match = [t for t in trials if t.trial_id == trial_id]
        if not match:
            states = {t.trial_id: t.state for t in store.trials(job_id)}
            why = f"it is {states[trial_id]}" if trial_id in states else "there is no such trial"
            raise ExportError(
                f"--trial {trial_id}: cannot export from job {job_id}, {why}; `nas pareto {job_id}` lists trials"
            )
        return match
    if not trials:
        raise ExportError(f"job {job_id} has no completed trials to export")
    objectives = [Objective(o["metric"], o.get("direction", "min")) for o in job.spec["objectives"]]
    constraints = [Constraint(c["metric"], c.get("min"), c.get("max")) for c in job.spec.get("constraints", [])]
    points = [{k: (math.nan if v is None else v) for k, v in t.metrics.items()} for t in trials]
    front = sorted((trials[i] for i in pareto_front(points, objectives, constraints)), key=lambda t: t.metrics[latency])
    if not front:
        raise ExportError(f"job {job_id} has no feasible trial (none meets its constraints)")
    if max_latency is None:
        return front
    within = [t for t in front if t.metrics[latency] <= max_latency]
    if not within:
        raise ExportError(
            f"--max-latency {max_latency}: no front member of job {job_id} is that fast on {device}; "
            f"the fastest takes {front[0].metrics[latency]:.4g} ms"
        )
    goal = next((o for o in objectives if o.metric != latency), None)
    if goal is None:
        return [within[0]]
    sign = 1.0 if goal.direction == "max" else -1.0
    return [max(within, key=lambda t: sign * t.metrics[goal.metric])]


# ----------------------------------------------------------------- writing and checking
def _model_order(model: dict[str, Any]) -> tuple[str, float, str]:
    latency = model["search_metrics"].get(f"latency_ms@{model['device']}")
    return model["device"], latency if latency is not None else math.inf, model["file"]


def _run_onnx(path: Path, x: Any) -> Any:
    import torch

    from predictors.onnx_backend import ort_session

    session = ort_session(path.read_bytes(), torch.get_num_threads())
    return torch.from_numpy(session.run(["y"], {"x": x.numpy()})[0])


def save_safetensors(net: Any, space: Any, arch: Any, path: Path) -> None:
    """The static network's tensors, with what rebuilds it (space id, arch) as metadata."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    meta = {
        "space": space.name,
        "space_id": space.space_id,
        "space_config": json.dumps(space.config_dict()),
        "arch": json.dumps(arch.to_dict()),
    }
    save_file(tensors, str(path), metadata=meta)


def load_safetensors(path: str | Path) -> Any:
    """A network exported as ``safetensors``, rebuilt from its metadata (in eval mode)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from nas.core.space import create_space

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if not {"space", "space_id", "space_config", "arch"} <= set(meta):
        raise ExportError(f"{path}: not a subnet exported by `nas export` (no space/arch metadata)")
    space = create_space(meta["space"], config=json.loads(meta["space_config"]))
    if space.space_id != meta["space_id"] or not hasattr(space, "build_static"):
        raise ExportError(f"{path}: cannot rebuild space {meta['space_id']} (got {space.space_id})")
    arch = space.make(json.loads(meta["arch"]))
    net = space.build_static(arch)
    net.load_state_dict(load_file(str(path)), strict=True)
    return net.eval()


def _write_timm(net: Any, space: Any, arch: Any, path: Path, normalization: tuple[Any, Any]) -> Any:
    """Writes a timm model folder (``path`` is its ``model.safetensors``) and returns the model as
    a user loads it: by timm itself where its arguments build the subnet, else by our loader."""
    import timm

    from search_spaces.vit.static import load_timm_folder

    config = space.timm_folder_config(arch, *normalization)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors(net, space, arch, path)
    (path.parent / "config.json").write_text(json.dumps(config, indent=1))
    if config["hwnas"]["timm_native"]:
        return timm.create_model(f"local-dir:{path.parent}", pretrained=True).eval()
    return load_timm_folder(path.parent)


def _write_and_check(
    net: Any, space: Any, arch: Any, fmt: str, path: Path, x: Any, normalization: tuple[Any, Any]
) -> Any:
    """Writes ``net`` as ``fmt`` to ``path`` and returns the written file's outputs on ``x``."""
    import torch

    if fmt == "timm":
        with torch.no_grad():
            return _write_timm(net, space, arch, path, normalization)(x)

    if fmt == "onnx":
        from predictors.onnx_backend import export_onnx

        path.write_bytes(export_onnx(net, x[:1], dynamic_batch=True))
        return _run_onnx(path, x)
    if fmt == "torchscript":  # deprecated by PyTorch in favour of torch.export, still what many runtimes load
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", FutureWarning)
            traced = torch.jit.trace(net, x[:1], check_trace=False)
            traced.save(str(path))
            return torch.jit.load(str(path)).eval()(x)
    save_safetensors(net, space, arch, path)
    with torch.no_grad():
        return load_safetensors(path)(x)


PRECISIONS = ("arch", "fp32", "int8", "int8_dynamic")


def _quantize_in_place(
    path: Path, dataset: Any, resolution: int, quant: QuantSettings | None, fp32_accuracy: float,
    layers: list[str] | None = None, dynamic: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Replaces the float ONNX model at ``path`` by its int8 version (``layers``: only those
    static-config layers; all when ``None``; ``dynamic``: ONNX Runtime's dynamic quantization,
    else static QDQ); returns what the manifest records: the settings, the int8 and float test
    accuracy, and their top-1 agreement."""
    import torch

    from predictors.quantization import QuantSettings, count_quantized, onnx_predictions, quantize, split_batches

    settings = quant or QuantSettings()
    # dynamic quantization has nothing to calibrate
    calibration = (
        [] if dynamic else split_batches(dataset, "holdout", resolution, settings.images, settings.batch_size)[0]
    )
    fp32_model = path.read_bytes()
    int8_model = quantize(fp32_model, calibration, settings, layers, dynamic=dynamic)
    test_batches, labels = split_batches(dataset, "test", resolution, None, 256)
    threads = torch.get_num_threads()
    int8_top1 = onnx_predictions(int8_model, test_batches, threads)
    fp32_top1 = onnx_predictions(fp32_model, test_batches, threads)
    path.write_bytes(int8_model)
    nodes = count_quantized(int8_model)
    if not (nodes["integer_kernels"] if dynamic else nodes["quantize"]):
        raise ExportError(f"{path}: ONNX Runtime quantized no tensor of this model; please report it")
    if dynamic:
        record = {**settings.record(dynamic=True), "integer_kernels": nodes["integer_kernels"]}
    else:
        record = {**settings.record(), "calibration_images": int(sum(len(b) for b in calibration)),
                  "calibration_split": "holdout", "qdq_nodes": nodes["quantize"] + nodes["dequantize"]}  # fmt: skip
    return {
        "quantization": record,
        "int8_test_accuracy": float((int8_top1 == labels).mean()),
        "fp32_test_accuracy": fp32_accuracy,
        "top1_agreement_with_fp32": float((int8_top1 == fp32_top1).mean()),
    }  # fmt: skip


def export_job(
    store: Store,
    job_id: str,
    device: str,
    fmt: str,
    out_dir: str | Path,
    *,
    max_latency: float | None = None,
    trial_id: int | None = None,
    tolerance: float = 1e-3,
    progress: bool = False,
    precision: str = "arch",
    quant: QuantSettings | None = None,
) -> dict[str, Any]:
    """Exports trials of a supernet job (see :func:`choose_trials`) and writes the manifest.

    ``precision``: ``arch`` (default) writes each subnet in the precision its arch searched: float,
    or, in a space with precision genes, its int8 blocks quantized (``mixed``, ONNX only);
    ``fp32`` writes it in float whatever its arch says; ``int8`` (ONNX only) quantizes the
    whole subnet after the fact. Quantization is post-training static (:mod:`predictors.quantization`,
    settings ``quant``) calibrated on the held-out split; the test accuracy is measured by ONNX
    Runtime running the quantized file, next to the float subnet's and the share of test images
    on which both predict the same class.

    Returns:
        The manifest (also written to ``out_dir/manifest.json``; an existing manifest there
        keeps its other models whose files are unchanged), with ``written``: the files this
        call wrote.
    """
    import torch

    from nas.core.io import sha256_file
    from nas.core.progress import bar as progress_bar
    from nas.evaluators import SupernetSpec
    from predictors.collect import _dataset
    from predictors.quantization import module_names
    from search_spaces.bn import resize_batch
    from search_spaces.training.checkpoint import load_supernet, versions
    from search_spaces.training.evaluation import accuracy, recalibrated_subnet

    if fmt not in FORMATS:
        raise ExportError(f"--format: unknown {fmt!r}; choose one of {', '.join(FORMATS)}")
    if precision not in PRECISIONS:
        raise ExportError(f"--precision: unknown {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision in ("int8", "int8_dynamic") and fmt != "onnx":
        raise ExportError(f"--precision {precision}: quantized models are written as ONNX; use --format onnx")
    job = store.job(job_id)
    evaluator = job.spec["evaluator"]
    if evaluator.get("kind") != "supernet":
        raise ExportError(
            f"job {job_id} was evaluated by a {evaluator.get('kind')!r} evaluator, which has no weights to export; "
            "export needs a job whose evaluator is a trained supernet (evaluator.kind: supernet)"
        )
    job_space = _job_space(job.spec)
    if fmt == "timm" and not hasattr(job_space, "timm_folder_config"):
        raise ExportError(
            f"--format timm: the subnets of job {job_id}'s space are not timm models (the vit space's are); "
            f"use one of {', '.join(f for f in FORMATS if f != 'timm')}"
        )
    spec = SupernetSpec(**evaluator)
    chosen = choose_trials(store, job_id, device, max_latency=max_latency, trial_id=trial_id)
    supernet, meta = load_supernet(spec.checkpoint)
    supernet.eval()
    space = supernet.space
    if space.space_id != float_space(job_space).space_id:
        raise ExportError(
            f"{spec.checkpoint} now holds a supernet of {space.space_id}, job {job_id} searched {job.space_id}"
        )
    dataset = _dataset(supernet, meta)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    models: dict[str, Any] = {}
    if manifest_path.is_file():
        for m in json.loads(manifest_path.read_text()).get("models", []):
            kept = out / str(m.get("file", ""))  # an entry whose file is gone or changed is dropped, not kept stale
            inside = out.resolve() in kept.resolve().parents  # a file of out or of a folder in it (timm)
            if inside and kept.is_file() and sha256_file(kept) == m.get("sha256"):
                models[m["file"]] = m
            else:
                logger.warning("manifest: dropped %s (its file is missing or changed)", m.get("file"))
    written: list[str] = []
    probe, _ = next(dataset.loader("test", 16, train=False, resolutions=[space.input_shape()[-1]]).epoch(0))
    for trial in progress_bar(iterable=chosen, desc="export", unit="model", disable=not progress):
        searched = job_space.make(trial.arch)
        arch = float_arch(job_space, searched)
        in_int8 = int8_layers(job_space, searched) if precision == "arch" else []
        written_as = {"arch": "mixed" if in_int8 else "fp32", "fp32": "fp32", "int8": "int8",
                      "int8_dynamic": "int8_dynamic"}[precision]  # fmt: skip
        dynamic = precision == "int8_dynamic" or (bool(in_int8) and space_dynamic(job_space))
        if written_as != "fp32" and fmt != "onnx":
            raise ExportError(
                f"trial {trial.trial_id} runs blocks in int8 ({', '.join(in_int8)}); quantized models are "
                "written as ONNX (QDQ): use --format onnx, or --precision fp32 for its float model"
            )
        net = recalibrated_subnet(supernet, arch, dataset, recal_batches=spec.recal_batches, device=torch.device("cpu"))
        r = space.resolution(arch)
        x = resize_batch(probe, r)
        with torch.no_grad():
            reference = net(x)
        suffix = "" if written_as == "fp32" else f"-{written_as}"
        path = out / f"trial{trial.trial_id:04d}-{searched.arch_id}{suffix}{FORMATS[fmt]}"
        outputs = _write_and_check(net, space, arch, fmt, path, x, (dataset.mean, dataset.std))
        diff = float((outputs - reference).abs().max())
        if not diff <= tolerance:
            raise ExportError(
                f"{path}: the exported {fmt} model differs from the network it came from by {diff:.3g} "
                f"(> {tolerance}); please report this with the manifest"
            )
        test = accuracy(net, dataset, "test", r)
        quantized: dict[str, Any] = {}
        if written_as != "fp32":
            scopes = module_names(net, in_int8) if in_int8 else None
            quantized = _quantize_in_place(path, dataset, r, quant, test["accuracy"], scopes, dynamic)
            test = {"accuracy": quantized.pop("int8_test_accuracy")}
            if in_int8:
                quantized["int8_layers"] = in_int8
        record = {
            "file": path.relative_to(out).as_posix(),
            "format": fmt,
            "precision": written_as,
            **quantized,
            "sha256": sha256_file(path),
            "job_id": job_id,
            "trial_id": trial.trial_id,
            "arch_id": searched.arch_id,
            "arch": searched.to_dict(),
            "space_id": job_space.space_id,
            "device": device,
            "search_metrics": trial.metrics,
            "test_accuracy": test["accuracy"],
            "input": {
                "shape": [None, int(x.shape[1]), r, r],
                "dtype": "float32",
                "preprocessing": {
                    "scale": 1 / 255,
                    "mean": list(dataset.mean),
                    "std": list(dataset.std),
                    "resize": dataset.eval_resize(r),
                },
            },
            "output": {"name": "y", "classes": dataset.classes},
            # the float model against the network it came from (an int8 file is checked by its accuracy)
            "check": {"max_abs_diff": diff, "inputs": int(x.shape[0]), "model": "fp32"},
        }
        models[record["file"]] = record
        written.append(record["file"])
        store.add_artifact("export", path, job_id=job_id, meta={k: record[k] for k in ("format", "trial_id", "device")})
        logger.info("exported trial %d (%s) to %s, max |diff| %.2e", trial.trial_id, searched.arch_id, path, diff)
    manifest = {
        "format": MANIFEST_FORMAT,
        "supernet": str(spec.checkpoint),
        "versions": versions(),
        "models": sorted(models.values(), key=_model_order),
    }
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(manifest_path)
    return {**manifest, "written": written}
