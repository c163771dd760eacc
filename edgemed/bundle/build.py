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

import logging
import math
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import (
    BuildError,
    GoldenMismatchError,
    ManifestError,
    ModelError,
    QuantizationGateError,
)
from ..hardware import cpu_family
from ..manifest import Manifest, load_manifest
from ..pipeline import Pipeline, load
from ..results import Result
from ..tasks import BuildSupport, find_task, task_names
from ..trust import unlisted_files
from . import nncf_int8, openvino_ir
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
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildReport:
    path: Path
    shipped_precision: str
    metrics: dict[str, float | int | str]
    gate: str  # the gate's sentence, or why there was none


def _support(build: BuildSpec) -> BuildSupport:
    spec = find_task(build.task)
    if spec is None:
        raise BuildError(f"task {build.task!r} is not installed; known: {task_names()}")
    if spec.build is None:
        buildable = [t for t in task_names() if (s := find_task(t)) and s.build]
        raise BuildError(
            f"task {build.task!r} cannot be built by edgemed yet; buildable: {buildable}"
        )
    if missing := [role for role in spec.required_artifacts if role not in build.files]:
        raise BuildError(
            f"task {build.task!r} needs the file(s) {missing} in the spec's 'files' "
            f'(e.g. "files": {{"{missing[0]}": "<path relative to the spec>"}})'
        )
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
    } | {role: path.name for role, path in spec.files.items()}
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
    feeds: list[Any] = field(default_factory=list)  # static INT8's calibration tensors
    fp32: list[Result] = field(default_factory=list)  # FP32 results on the evaluation set


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
    run.feeds = feeds
    run.fp32 = results
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
    name = run.support.metric_name
    try:
        results = _run(run.stage, run.inputs, "INT8 evaluation", run.show)
    except ModelError as exc:  # INT8 outputs the task refuses: never shipped, never golden
        fp32_metric = run.support.metric(fp32, run.truths)
        broken = GateResult(agreement=0.0, fp32_metric=fp32_metric, int8_metric=float("nan"),
                            metric_name=name, gate=run.spec.gate, broken=str(exc))  # fmt: skip
        run.metrics["int8_refused"] = type(exc).__name__
        return [], broken
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


def _ir_results(run: _Run, make: Callable[[], None], precision: str) -> list[Result] | str:
    """The IR ``make`` writes, run through OpenVINO on the evaluation set; or, the IR removed,
    the kind of error that stopped it (its message, which holds the stage's path, is logged:
    the bundle must not depend on where it was built)."""
    try:
        make()
        _manifest(run.spec, run.graph, run.stage, precision, {})
        pipe = load(run.stage, backend="openvino", device="cpu", threads=1, golden=False)
    except Exception as exc:  # a graph OpenVINO or NNCF cannot convert, quantise or compile
        _log.warning("OpenVINO IR: %s", exc)
        shutil.rmtree(run.stage / "openvino", ignore_errors=True)
        return type(exc).__name__
    with pipe:
        return [pipe(item) for item in _progress(run.inputs, "OpenVINO evaluation", run.show)]


def _ir_figures(
    run: _Run, results: Sequence[Result], shipped: Sequence[Result]
) -> tuple[GateResult, dict[str, float]]:
    """The IR judged against FP32 as INT8 is (the gate), and its agreement with the shipped
    ONNX model's results."""
    name = run.support.metric_name
    gate = judge(
        run.support.agreement(run.fp32, results),
        fp32_metric=run.support.metric(run.fp32, run.truths),
        int8_metric=run.support.metric(results, run.truths),
        metric_name=name,
        gate=run.spec.gate,
    )
    return gate, {
        name: _round(gate.int8_metric),
        "fp32_agreement": _round(gate.agreement),
        "agreement": _round(run.support.agreement(shipped, results)),
    }


def _nncf_openvino(run: _Run, shipped: Sequence[Result]) -> str | None:
    """NNCF's INT8 IR of the FP32 graph, shipped (None) if it passes INT8's gate against FP32
    and the golden vectors (ONNX Runtime's INT8 outputs) hold on it; else why not (no IR left,
    its figures kept as ``nncf_*``)."""
    if not nncf_int8.available():
        return "NNCF is not installed"
    fp32 = run.stage / _MODEL_FILE["fp32"]
    results = _ir_results(run, lambda: nncf_int8.quantize_ir(fp32, run.feeds, run.stage), "int8")
    if isinstance(results, str):
        return f"NNCF's IR could not be made or run ({results})"
    gate, figures = _ir_figures(run, results, shipped)
    why = None
    if not gate.passed:
        why = (
            f"NNCF's IR failed the gate (agreement with FP32 {gate.agreement:.1%}, gate >= "
            f"{gate.gate.min_agreement:.1%}; {gate.metric_name} drop {gate.metric_drop:+.4f}, "
            f"gate <= {gate.gate.max_metric_drop:.4f})"
        )
    else:  # the golden limits _finish will state, checked now while a fallback is possible
        tolerance = run.support.golden_tolerance
        golden = tolerance("int8", shipped) if tolerance else None
        _manifest(run.spec, run.graph, run.stage, "int8", {}, golden)
        problems = openvino_ir.golden_problems(run.stage)
        if problems is not None:
            why = f"NNCF's IR failed the golden check ({problems})"
    prefix = "nncf" if why else "openvino"
    run.metrics |= {f"{prefix}_{key}": value for key, value in figures.items()}
    if why:
        shutil.rmtree(run.stage / "openvino")
        return why
    run.metrics |= {"openvino": "shipped", "openvino_int8": "nncf"}
    return None


def _add_openvino(run: _Run, precision: str, shipped: Sequence[Result]) -> None:
    """The shipped model's OpenVINO IR; the metrics say which one and why. Static INT8: NNCF's
    own INT8 of the FP32 graph where nncf is installed and that IR passes the gate and the
    golden check. Otherwise the IR converted from the shipped ONNX graph (FP32, or INT8 whose
    scales are ONNX Runtime's), kept only where it agrees with ONNX Runtime's results on the
    evaluation set as much as the gate asks of INT8."""
    if not openvino_ir.available():
        run.metrics["openvino"] = "not built: OpenVINO is not installed here"
        return
    if precision == "int8" and run.spec.quantization == "static":
        why = _nncf_openvino(run, shipped)
        if why is None:
            return
        run.metrics["openvino_int8"] = f"converted from ONNX QDQ: {why}"
    elif precision == "int8":
        run.metrics["openvino_int8"] = "converted from ONNX dynamic INT8 (NNCF: static only)"
    model = run.stage / _MODEL_FILE[precision]
    results = _ir_results(run, lambda: openvino_ir.convert(model, run.stage), precision)
    if isinstance(results, str):
        run.metrics["openvino"] = f"dropped: OpenVINO cannot run it ({results})"
        return
    _, figures = _ir_figures(run, results, shipped)
    run.metrics |= {f"openvino_{key}": value for key, value in figures.items()}
    agreement, needed = run.support.agreement(shipped, results), run.spec.gate.min_agreement
    if agreement < needed:
        run.metrics["openvino"] = (
            f"dropped: agrees with ONNX Runtime on {agreement:.1%} < {needed:.1%}"
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
    if run.spec.openvino:  # while the FP32 graph is still here: NNCF quantises it
        _add_openvino(run, precision, shipped)
    for other, path in _MODEL_FILE.items():
        if other != precision:
            (run.stage / path).unlink(missing_ok=True)
    run.metrics |= {"shipped_precision": precision, "gate": gate_text, "cpu_family": cpu_family()}
    run.metrics |= {
        "gate_min_agreement": run.spec.gate.min_agreement,
        "gate_max_metric_drop": run.spec.gate.max_metric_drop,
    }
    golden = (
        run.support.golden_tolerance(precision, shipped) if run.support.golden_tolerance else None
    )
    _card_and_manifest(run, precision, gate_text, golden)
    why = _golden_refused(run.stage, "openvino") if (run.stage / "openvino").is_dir() else None
    if why is not None:
        # The golden vectors are ONNX Runtime's: an IR whose outputs on them differ by more than
        # the bundle's tolerance (dynamic INT8 on a CPU without VNNI: 0.051 > 0.05 on a small
        # encoder) would be refused by every device like this one. Dropped, and said why.
        shutil.rmtree(run.stage / "openvino")
        run.metrics["openvino"] = f"dropped: its golden check fails on this machine ({why})"
        _card_and_manifest(run, precision, gate_text, golden)
    # OpenVINO, when shipped, loaded above; ONNX Runtime as a device would load it: every
    # sha256, then the golden vectors on this machine.
    try:
        load(run.stage, backend="onnxruntime", device="cpu", threads=1).close()
    except Exception as exc:
        raise BuildError(f"{_NOT_AS_A_DEVICE}: {exc}") from exc
    if out.exists():
        shutil.rmtree(out)
    run.stage.rename(out)
    return BuildReport(out, precision, dict(run.metrics), gate_text)


def _card_and_manifest(
    run: _Run, precision: str, gate_text: str, golden: dict[str, float] | None
) -> None:
    card = render_card(
        run.spec, run.graph, run.metrics, metric=run.support.metric_name,
        gate_text=gate_text, edgemed_version=__version__,
        golden_choice=run.support.golden_choice,
    )  # fmt: skip
    (run.stage / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    _manifest(run.spec, run.graph, run.stage, precision, dict(sorted(run.metrics.items())), golden)
    extra = unlisted_files(load_manifest(run.stage, verify=False))
    if extra:  # devices under a trust policy refuse them, and `bundle sign` would too
        raise BuildError(f"the bundle holds file(s) its manifest does not list: {extra}")


_NOT_AS_A_DEVICE = "the bundle built does not load as a device would"


def _golden_refused(stage: Path, backend: str) -> str | None:
    """Why a device would refuse ``backend`` on its golden check here, or None when it loads
    as a device would; BuildError when it fails for any other reason."""
    try:
        load(stage, backend=backend, device="cpu", threads=1).close()
    except GoldenMismatchError as exc:
        return str(exc)
    except Exception as exc:
        raise BuildError(f"{_NOT_AS_A_DEVICE}: {exc}") from exc
    return None


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
    support = _support(spec)
    graph = check_graph(model)
    if out.exists() and not force:
        raise BuildError(f"{out} exists; pass --force to replace it")
    stage = out.parent / f".{out.name}.building"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        shutil.copyfile(model, stage / _MODEL_FILE["fp32"])
        for path in spec.files.values():
            shutil.copyfile(path, stage / path.name)
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
