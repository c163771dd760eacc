"""``edgemed bundle build``: a device maker's ONNX model -> a gated, verified, documented bundle.

Steps: check the graph -> run FP32 on the evaluation set through the very pipeline devices
use -> quantise to INT8 on the calibration set -> run INT8 on the same evaluation set -> gate
(agreement with FP32, metric drop) -> golden vectors from the shipped model -> manifest with
every sha256 and MODEL_CARD.md -> load the bundle as a device would (golden check included).
Everything is written to a hidden folder beside ``out`` and moved into place only when all
of it passed. Same inputs and edgemed version, same machine -> byte-identical bundle: nothing
in it depends on the time, the paths or the thread count (one thread throughout).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import BuildError, ManifestError, QuantizationGateError
from ..hardware import cpu_family
from ..manifest import Manifest, load_manifest
from ..pipeline import Pipeline, load
from ..results import Result
from ..tasks import BuildSupport, find_task, task_names
from ..trust import unlisted_files
from . import openvino_ir
from .card import render_card
from .files import npz_bytes, sha256_of, write_json
from .gate import GateResult, judge
from .graph import GraphInfo, check_graph
from .openvino_ir import IR_FILES
from .quantize import quantize
from .spec import BuildSpec

__all__ = ["BuildReport", "build_bundle"]

# Load-time tolerance of the golden vectors: FP32 graphs agree to rounding across CPUs; INT8
# kernels round differently per CPU family (AVX2, AVX-512 VNNI, NEON), so a looser limit on the
# scores, never on the decision (golden inputs are chosen far from any decision boundary).
GOLDEN_FP32 = {"max_abs_diff": 1e-4, "min_label_agreement": 1.0}
GOLDEN_INT8 = {"max_abs_diff": 0.05, "min_label_agreement": 1.0}
_MODEL_FILE = {"fp32": "model.fp32.onnx", "int8": "model.int8.onnx"}


@dataclass(frozen=True)
class BuildReport:
    path: Path
    shipped_precision: str
    metrics: dict[str, float | int | str]
    gate: str  # the gate's sentence, or why there was none


def _support(task: str) -> BuildSupport:
    spec = find_task(task)
    if spec is None:
        raise BuildError(f"task {task!r} is not installed; known: {task_names()}")
    if spec.build is None:
        buildable = [t for t in task_names() if (s := find_task(t)) and s.build]
        raise BuildError(f"task {task!r} cannot be built by edgemed yet; buildable: {buildable}")
    return spec.build


def _progress(items: Sequence[Any], what: str, show: bool) -> Iterable[Any]:
    if not show:
        return items
    from tqdm import tqdm  # type: ignore[import-untyped]  # the `build` extra (untyped)

    bar: Iterable[Any] = tqdm(items, desc=what, unit="input", leave=False)
    return bar


def _manifest(
    spec: BuildSpec,
    graph: GraphInfo,
    stage: Path,
    precision: str,
    metrics: dict[str, float | int | str],
    golden: dict[str, float] | None = None,
) -> None:
    roles = {
        "model": _MODEL_FILE[precision],
        "golden_inputs": "golden/inputs.npz",
        "golden_outputs": "golden/outputs.npz",
        "model_card": "MODEL_CARD.md",
    }
    openvino = (stage / IR_FILES["openvino_model"]).is_file()
    if openvino:
        roles |= IR_FILES
    artifacts: dict[str, dict[str, str]] = {}
    for role, path in roles.items():
        artifacts[role] = {"path": path, "sha256": sha256_of(stage / path)}
    artifacts["model"] |= {"format": "onnx", "precision": precision}
    for role in IR_FILES if openvino else ():
        artifacts[role] |= {"format": "openvino", "precision": precision}
    write_json(
        stage / "manifest.json",
        {
            "schema": "edgemed.manifest/1",
            "id": spec.id,
            "version": spec.version,
            "task": spec.task,
            "summary": spec.summary,
            "license": spec.license,
            "medical_device": False,
            "source": {
                "package": f"edgemed=={__version__}",
                "upstream": spec.source.get("upstream", "not stated"),
                "recipe": "edgemed bundle build",
            },
            "backends": ["onnxruntime", "openvino"] if openvino else ["onnxruntime"],
            "inputs": [t.manifest() for t in graph.inputs],
            "outputs": [t.manifest() for t in graph.outputs],
            "preprocess": spec.preprocess,
            "postprocess": spec.postprocess,
            **({"stream": spec.stream} if spec.stream is not None else {}),
            "golden": golden or (GOLDEN_INT8 if precision == "int8" else GOLDEN_FP32),
            "metrics": metrics,
            "rows_independent": spec.quantization != "dynamic",
            "tensorrt_precision": precision,
            "artifacts": artifacts,
        },
    )


def _open(stage: Path) -> Pipeline:
    try:
        return load(stage, backend="onnxruntime", device="cpu", threads=1, golden=False)
    except BuildError:
        raise
    except Exception as exc:  # a spec the task refuses (ManifestError...) is the spec's fault
        raise BuildError(f"the build spec does not fit task or model: {exc}") from exc


def _run(stage: Path, inputs: Sequence[object], what: str, show: bool) -> list[Result]:
    with _open(stage) as pipe:
        return [pipe(item) for item in _progress(inputs, what, show)]


def _calibration_feeds(pipe: Pipeline, inputs: Sequence[object], show: bool) -> list[Any]:
    feeds = []
    for i, item in enumerate(_progress(inputs, "calibration", show)):
        tensors = pipe.preprocess(item).tensors
        if not all(np.isfinite(t).all() for t in tensors.values() if t.dtype.kind == "f"):
            raise BuildError(f"calibration input {i}: NaN or infinity after preprocessing")
        feeds.append(tensors)
    return feeds


def _draft(stage: Path) -> Manifest:
    try:
        return load_manifest(stage, verify=False)
    except ManifestError as exc:  # the spec's sections or the graph's interface
        raise BuildError(f"the build spec does not make a valid manifest: {exc}") from exc


def _placeholders(stage: Path) -> None:
    (stage / "golden").mkdir(exist_ok=True)
    for name in ("golden/inputs.npz", "golden/outputs.npz", "MODEL_CARD.md"):
        (stage / name).write_bytes(b"")


def _round(value: float) -> float:
    return float(f"{value:.6g}") if math.isfinite(value) else value


@dataclass
class _Run:
    """What one build learns, step by step."""

    spec: BuildSpec
    graph: GraphInfo
    support: BuildSupport
    stage: Path
    show: bool
    inputs: list[object]
    truths: list[Any]
    metrics: dict[str, float | int | str]


def _calibration_inputs(run: _Run, calibration: Path | None) -> list[object]:
    if run.spec.quantization != "static":
        return []
    if calibration is None:
        raise BuildError("static INT8 needs a calibration folder (--calibration DIR)")
    inputs = run.support.read_calibration(calibration)
    if not inputs:
        raise BuildError(f"{calibration}: no calibration inputs found")
    return inputs


def _evaluate_fp32(run: _Run, calibration: Path | None) -> tuple[list[Result], list[Any]]:
    """FP32 results on the evaluation set and, for static INT8, the calibration tensors: one
    pipeline serves both (the tensors are the ones the device's preprocessing makes)."""
    calib_inputs = _calibration_inputs(run, calibration)
    with _open(run.stage) as pipe:
        results = [pipe(item) for item in _progress(run.inputs, "FP32 evaluation", run.show)]
        feeds = _calibration_feeds(pipe, calib_inputs, run.show)
    name = run.support.metric_name
    run.metrics[f"fp32_{name}"] = _round(run.support.metric(results, run.truths))
    if feeds:
        run.metrics["calibration_samples"] = len(feeds)
    return results, feeds


def _evaluate_int8(
    run: _Run, feeds: Sequence[Any], fp32: Sequence[Result]
) -> tuple[list[Result], GateResult]:
    quantize(
        run.stage / _MODEL_FILE["fp32"],
        run.stage / _MODEL_FILE["int8"],
        run.spec.quantization,
        feeds,
    )
    _manifest(run.spec, run.graph, run.stage, "int8", {})
    results = _run(run.stage, run.inputs, "INT8 evaluation", run.show)
    name = run.support.metric_name
    gate = judge(
        run.support.agreement(fp32, results),
        fp32_metric=run.support.metric(fp32, run.truths),
        int8_metric=run.support.metric(results, run.truths),
        metric_name=name,
        gate=run.spec.gate,
    )
    run.metrics[f"int8_{name}"] = _round(gate.int8_metric)
    run.metrics["fp32_int8_agreement"] = _round(gate.agreement)
    if run.support.per_class is not None:
        figures = run.support.per_class(fp32, results, run.truths)
        run.metrics |= {key: _round(value) for key, value in figures.items()}
    return results, gate


def _add_openvino(run: _Run, precision: str, shipped: Sequence[Result]) -> None:
    """The IR of the shipped graph, kept only where it agrees with ONNX Runtime's results on
    the evaluation set as much as the gate asks of INT8 (the metrics say which, and why)."""
    if not openvino_ir.available():
        run.metrics["openvino"] = "not built: OpenVINO is not installed here"
        return
    try:
        openvino_ir.convert(run.stage / _MODEL_FILE[precision], run.stage)
        _manifest(run.spec, run.graph, run.stage, precision, {})
        pipe = load(run.stage, backend="openvino", device="cpu", threads=1, golden=False)
    except Exception as exc:  # a graph OpenVINO cannot convert or compile: shipped without it
        run.metrics["openvino"] = f"dropped: OpenVINO cannot run it ({type(exc).__name__})"
        shutil.rmtree(run.stage / "openvino", ignore_errors=True)
        return
    with pipe:
        results = [pipe(item) for item in _progress(run.inputs, "OpenVINO evaluation", run.show)]
    agreement = run.support.agreement(shipped, results)
    run.metrics["openvino_agreement"] = _round(agreement)
    if agreement < run.spec.gate.min_agreement:
        run.metrics["openvino"] = (
            f"dropped: agrees with ONNX Runtime on {agreement:.1%} < {run.spec.gate.min_agreement:.1%}"
        )
        shutil.rmtree(run.stage / "openvino")
    else:
        run.metrics["openvino"] = "shipped"


def _write_golden(run: _Run, results: Sequence[Result]) -> None:
    chosen = sorted(run.support.golden_order(results)[: run.spec.golden_count])
    if not chosen:
        raise BuildError("no evaluation result can serve as a golden vector")
    inputs, outputs = run.support.golden_arrays(
        _draft(run.stage), [run.inputs[i] for i in chosen], [results[i] for i in chosen]
    )
    (run.stage / "golden/inputs.npz").write_bytes(npz_bytes(inputs))
    (run.stage / "golden/outputs.npz").write_bytes(npz_bytes(outputs))
    run.metrics["golden_count"] = len(chosen)


def _finish(
    run: _Run, precision: str, gate_text: str, out: Path, shipped: Sequence[Result]
) -> BuildReport:
    for other, path in _MODEL_FILE.items():
        if other != precision:
            (run.stage / path).unlink(missing_ok=True)
    if run.spec.openvino:
        _add_openvino(run, precision, shipped)
    run.metrics |= {"shipped_precision": precision, "gate": gate_text, "cpu_family": cpu_family()}
    run.metrics |= {
        "gate_min_agreement": run.spec.gate.min_agreement,
        "gate_max_metric_drop": run.spec.gate.max_metric_drop,
    }
    card = render_card(
        run.spec, run.graph, run.metrics, metric=run.support.metric_name,
        gate_text=gate_text, edgemed_version=__version__,
        golden_choice=run.support.golden_choice,
    )  # fmt: skip
    (run.stage / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    golden = (
        run.support.golden_tolerance(precision, shipped) if run.support.golden_tolerance else None
    )
    _manifest(run.spec, run.graph, run.stage, precision, dict(sorted(run.metrics.items())), golden)
    extra = unlisted_files(load_manifest(run.stage, verify=False))
    if extra:  # devices under a trust policy refuse them, and `bundle sign` would too
        raise BuildError(f"the bundle holds file(s) its manifest does not list: {extra}")
    backends = ["onnxruntime"] + (["openvino"] if (run.stage / "openvino").is_dir() else [])
    try:  # as a device would load it: every sha256, then the golden vectors on this machine
        for backend in backends:
            load(run.stage, backend=backend, device="cpu", threads=1).close()
    except Exception as exc:
        raise BuildError(f"the bundle built does not load as a device would: {exc}") from exc
    if out.exists():
        shutil.rmtree(out)
    run.stage.rename(out)
    return BuildReport(out, precision, dict(run.metrics), gate_text)


def build_bundle(
    spec: BuildSpec,
    model: Path,
    *,
    evaluation: Path,
    out: Path,
    calibration: Path | None = None,
    fp32_if_gate_fails: bool = False,
    force: bool = False,
    progress: bool = False,
) -> BuildReport:
    """Build the bundle of ``model`` described by ``spec`` into ``out`` (see module docstring).

    Raises BuildError (the model, spec or data cannot make a bundle) or
    QuantizationGateError (INT8 falls short of ``spec.gate``; nothing is written).
    """
    support = _support(spec.task)
    graph = check_graph(model)
    if out.exists() and not force:
        raise BuildError(f"{out} exists; pass --force to replace it")
    stage = out.parent / f".{out.name}.building"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        shutil.copyfile(model, stage / _MODEL_FILE["fp32"])
        _placeholders(stage)
        _manifest(spec, graph, stage, "fp32", {})
        draft = _draft(stage)
        if support.for_manifest is not None:
            support = support.for_manifest(draft)
        labelled = support.read_evaluation(evaluation, draft)
        if not labelled:
            raise BuildError(f"{evaluation}: no evaluation inputs found")
        run = _Run(spec, graph, support, stage, progress, [x for x, _ in labelled],
                   [t for _, t in labelled], {"eval_samples": len(labelled), "opset": graph.opset})  # fmt: skip
        fp32, feeds = _evaluate_fp32(run, calibration)
        if spec.quantization == "none":
            _write_golden(run, fp32)
            return _finish(
                run, "fp32", "none: FP32 shipped as asked (quantization: none)", out, fp32
            )
        int8, gate = _evaluate_int8(run, feeds, fp32)
        if gate.passed:
            _write_golden(run, int8)
            return _finish(run, "int8", gate.explain(), out, int8)
        if not fp32_if_gate_fails:
            raise QuantizationGateError(gate.explain())
        _write_golden(run, fp32)
        return _finish(run, "fp32", f"{gate.explain()}; FP32 shipped instead, as asked", out, fp32)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
