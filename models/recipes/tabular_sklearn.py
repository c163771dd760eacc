"""Rebuild models/wdbc-malignancy-mlp and models/diabetes-progression from scikit-learn's bundled data.

Both bundles come from data that ships inside scikit-learn (no download):

* ``wdbc-malignancy-mlp``: Wisconsin Diagnostic Breast Cancer (569 x 30), target = malignant.
  StandardScaler + MLPClassifier(16 ReLU units, logistic output), fixed random_state.
* ``diabetes-progression``: Efron et al.'s diabetes data in raw units (``scaled=False``,
  442 x 10), target = disease progression one year after baseline. StandardScaler + RidgeCV.

Steps (deterministic for the pinned versions in requirements.txt):

1. repeated cross-validation of the whole sklearn pipeline (scaler fitted inside each fold):
   out-of-fold predictions for every row in every repeat, 95 % CI by a percentile bootstrap
   over patients of those predictions;
2. for the classifier, each fold's model is also exported to ONNX and quantised with ONNX
   Runtime static QDQ INT8 calibrated on that fold's training rows, so the INT8 gate compares
   out-of-fold FP32 and INT8 on the same splits;
3. the shipped model is fitted on all rows after CV and exported by hand with ``onnx.helper``
   (standardisation Sub/Div, MatMul/Add/Relu, Sigmoid): plain ONNX ops that ONNX Runtime,
   OpenVINO and TensorRT all read (skl2onnx emits ai.onnx.ml ops OpenVINO cannot convert; it
   is used here only as a cross-check); OpenVINO IR converted from that ONNX;
4. golden rows (real rows of each dataset), model card and manifest with sha256 of every file.

Timings measured here go to the manifest's ``latency_*`` metrics only (they vary run to run);
every artifact, the model card included, is bit-reproducible.

Run:  python models/recipes/tabular_sklearn.py [--out models] [--only wdbc|diabetes]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import openvino as ov
import sklearn
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import RidgeCV
from sklearn.metrics import mean_absolute_error, r2_score, roc_auc_score
from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent
VERSION = "1.0.0"
SEED = 0
N_SPLITS, N_REPEATS = 5, 5
N_BOOT = 2000
RANGE_MARGIN = 0.10  # valid range = observed [min, max] widened by 10 % of the span each side
OPSET, IR_VERSION = 17, 8  # IR 8: readable by older ONNX Runtime builds (JetPack)
# INT8 gate: out-of-fold ROC AUC within 1 point of FP32 and >= 99 % identical decisions.
GATE_MAX_AUC_DROP = 0.01
GATE_MIN_AGREEMENT = 0.99
# INT8 must also be clearly faster to be worth its error (the FP32 model is a few kB).
GATE_MIN_SPEEDUP = 1.25
THRESHOLD = 0.5
GOLDEN_ROWS = 8

# WDBC: ten nuclear measurements x (mean, standard error, worst = mean of the 3 largest) over
# the nuclei of one digitised fine-needle-aspirate image. Lengths and areas are in the
# digitised image's (uncalibrated) units; the rest are dimensionless.
WDBC_BASE = [
    ("radius", "image length unit"),
    ("texture", "grey level (SD)"),
    ("perimeter", "image length unit"),
    ("area", "image length unit^2"),
    ("smoothness", "1"),
    ("compactness", "1"),
    ("concavity", "1"),
    ("concave_points", "1"),
    ("symmetry", "1"),
    ("fractal_dimension", "1"),
]
DIABETES_FEATURES = [
    ("age", "years"),
    ("sex", "code 1 or 2"),
    ("bmi", "kg/m^2"),
    ("bp", "mmHg"),
    ("s1_tc", "mg/dL"),
    ("s2_ldl", "mg/dL"),
    ("s3_hdl", "mg/dL"),
    ("s4_tch", "ratio"),
    ("s5_ltg", "ln(mg/dL)"),
    ("s6_glu", "mg/dL"),
]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- ONNX graphs


def export_onnx(model: Pipeline, path: Path, *, output: str, n_features: int) -> None:
    """StandardScaler + (MLP | linear) as plain ONNX ops, float32, dynamic batch."""
    scaler = model[0]
    est = model[-1]
    if isinstance(est, MLPClassifier):
        if est.activation != "relu" or est.out_activation_ != "logistic":
            raise SystemExit(f"unsupported MLP: {est.activation}/{est.out_activation_}")
        weights, biases = est.coefs_, est.intercepts_
        final = "Sigmoid"
    else:
        weights = [np.asarray(est.coef_, dtype=np.float64).reshape(-1, 1)]
        biases = [np.atleast_1d(np.asarray(est.intercept_, dtype=np.float64))]
        final = None
    inits = [
        numpy_helper.from_array(scaler.mean_.astype(np.float32)[None, :], "mean"),
        numpy_helper.from_array(scaler.scale_.astype(np.float32)[None, :], "scale"),
    ]
    nodes = [
        helper.make_node("Sub", ["features", "mean"], ["centred"], name="standardise_sub"),
        helper.make_node("Div", ["centred", "scale"], ["z"], name="standardise_div"),
    ]
    x = "z"
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        last = i == len(weights) - 1
        inits += [
            numpy_helper.from_array(w.astype(np.float32), f"W{i}"),
            numpy_helper.from_array(b.astype(np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node("MatMul", [x, f"W{i}"], [f"mm{i}"], name=f"dense{i}_matmul"),
            helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"h{i}"], name=f"dense{i}_bias"),
        ]
        x = f"h{i}"
        if not last:
            nodes.append(helper.make_node("Relu", [x], [f"a{i}"], name=f"dense{i}_relu"))
            x = f"a{i}"
    if final:
        nodes.append(helper.make_node(final, [x], [output], name="output_sigmoid"))
    else:
        nodes.append(helper.make_node("Identity", [x], [output], name="output"))
    graph = helper.make_graph(
        nodes,
        "edgemed_tabular",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", n_features])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", 1])],
        initializer=inits,
    )
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="edgemed-recipe",
        producer_version=VERSION,
    )
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_predict(sess: ort.InferenceSession, X: np.ndarray) -> np.ndarray:
    out: np.ndarray = sess.run(None, {"features": X.astype(np.float32)})[0]
    return out[:, 0].astype(np.float64)


class _Rows(CalibrationDataReader):
    def __init__(self, X: np.ndarray) -> None:
        self._rows = iter([{"features": r[None, :].astype(np.float32)} for r in X])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._rows, None)


def quantize_int8(fp32: Path, int8: Path, calibration: np.ndarray) -> None:
    """ONNX Runtime static QDQ INT8 (per-channel weights, MinMax calibration).

    Only MatMul is quantised: its input is the standardised z, so one activation scale fits all
    features (quantising the raw-unit input, where area ~1000 sits beside smoothness ~0.1,
    would round most features to zero)."""
    logging.getLogger().setLevel(logging.ERROR)  # "consider pre-processing": not for 3 nodes
    quantize_static(
        str(fp32),
        str(int8),
        _Rows(calibration),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )


def to_openvino(onnx_path: Path, xml_path: Path) -> None:
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml_path), compress_to_fp16=False)


def ov_compile(xml_path: Path) -> Any:
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1}
    return ov.Core().compile_model(str(xml_path), "CPU", config)


def ov_predict(compiled: Any, X: np.ndarray) -> np.ndarray:
    return np.asarray(compiled(X.astype(np.float32))[0])[:, 0].astype(np.float64)


# ----------------------------------------------------------------------------- statistics


def bootstrap_ci(
    y: np.ndarray,
    oof: np.ndarray,
    metric: Callable[[np.ndarray, np.ndarray], float],
    *,
    strata: np.ndarray | None,
) -> tuple[float, float]:
    """95 % percentile bootstrap over patients of the repeat-averaged out-of-fold metric.

    ``oof`` is (repeats, n): each resample draws patients (within each class when ``strata``
    is given), scores every repeat's predictions on them and averages over repeats."""
    rng = np.random.default_rng(SEED)
    groups = (
        [np.arange(len(y))]
        if strata is None
        else [np.flatnonzero(strata == s) for s in np.unique(strata)]
    )
    stats = np.empty(N_BOOT)
    for b in range(N_BOOT):
        idx = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
        stats[b] = np.mean([metric(y[idx], row[idx]) for row in oof])
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(lo), float(hi)


def r4(x: float) -> float:
    return round(float(x), 4)


def sci(x: float) -> float:
    return float(f"{x:.2e}")


# ----------------------------------------------------------------------------- timing


def interleaved_ms(
    fns: dict[str, Callable[[], object]], *, rounds: int = 15, inner: int = 200
) -> dict[str, float]:
    """Median ms per call of each fn, measured in interleaved rounds (shared 2-vCPU machine)."""
    for fn in fns.values():
        for _ in range(20):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            samples[name].append((time.perf_counter() - t0) * 1e3 / inner)
    return {k: statistics.median(v) for k, v in samples.items()}


# ----------------------------------------------------------------------------- manifest bits


def feature_specs(
    names_units: Sequence[tuple[str, str]], X: np.ndarray, *, exact: Sequence[str] = ()
) -> list[dict[str, Any]]:
    specs = []
    for j, (name, unit) in enumerate(names_units):
        lo, hi = float(X[:, j].min()), float(X[:, j].max())
        if name not in exact:
            span = hi - lo
            lo, hi = max(0.0, lo - RANGE_MARGIN * span), hi + RANGE_MARGIN * span
        specs.append(
            {"name": name, "unit": unit, "min": float(f"{lo:.6g}"), "max": float(f"{hi:.6g}")}
        )
    return specs


def golden_indices(y: np.ndarray, *, stratify: bool) -> np.ndarray:
    rng = np.random.default_rng(SEED)
    if not stratify:
        return np.sort(rng.choice(len(y), size=GOLDEN_ROWS, replace=False))
    half = GOLDEN_ROWS // 2
    picks = [rng.choice(np.flatnonzero(y == c), size=half, replace=False) for c in (0, 1)]
    return np.sort(np.concatenate(picks))


def write_golden(
    out: Path, names: list[str], X: np.ndarray, idx: np.ndarray, expected: np.ndarray
) -> None:
    (out / "golden").mkdir(parents=True, exist_ok=True)
    rows = [{n: float(v) for n, v in zip(names, X[i], strict=True)} for i in idx]
    (out / "golden" / "inputs.json").write_text(json.dumps(rows, indent=1) + "\n")
    np.save(out / "golden" / "expected.npy", expected.astype(np.float32))


def write_manifest(
    out: Path, manifest: dict[str, Any], roles: dict[str, tuple[str, dict[str, str]]]
) -> None:
    manifest["artifacts"] = {
        role: {"path": rel, "sha256": sha256(out / rel), **extra}
        for role, (rel, extra) in roles.items()
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def metrics_table(rows: Sequence[tuple[str, str]]) -> str:
    return "\n".join(["| metric | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


# ----------------------------------------------------------------------------- classifier


def make_classifier() -> Pipeline:
    mlp = MLPClassifier(
        hidden_layer_sizes=(16,), alpha=1.0, solver="adam", max_iter=2000, random_state=SEED
    )
    return make_pipeline(StandardScaler(), mlp)


@dataclass
class ClsCV:
    fp32: np.ndarray  # (repeats, n) out-of-fold probabilities, ONNX FP32
    int8: np.ndarray  # (repeats, n) out-of-fold probabilities, ONNX Runtime static INT8
    fold_auc: list[float]
    onnx_vs_sklearn: float


def cv_classifier(X: np.ndarray, y: np.ndarray, work: Path) -> ClsCV:
    cv = RepeatedStratifiedKFold(n_splits=N_SPLITS, n_repeats=N_REPEATS, random_state=SEED)
    fp32 = np.full((N_REPEATS, len(y)), np.nan)
    int8 = np.full((N_REPEATS, len(y)), np.nan)
    fold_auc, worst = [], 0.0
    for k, (tr, te) in enumerate(cv.split(X, y)):
        model = make_classifier().fit(X[tr], y[tr])
        f32, i8 = work / f"fold{k}.onnx", work / f"fold{k}.int8.onnx"
        export_onnx(model, f32, output="p_malignant", n_features=X.shape[1])
        quantize_int8(f32, i8, X[tr])
        p32 = ort_predict(session(f32), X[te])
        worst = max(worst, float(np.abs(p32 - model.predict_proba(X[te])[:, 1]).max()))
        fp32[k // N_SPLITS, te] = p32
        int8[k // N_SPLITS, te] = ort_predict(session(i8), X[te])
        fold_auc.append(float(roc_auc_score(y[te], p32)))
    return ClsCV(fp32=fp32, int8=int8, fold_auc=fold_auc, onnx_vs_sklearn=worst)


def sens_spec(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    pred = p >= THRESHOLD
    return float(pred[y == 1].mean()), float((~pred[y == 0]).mean())


def build_classifier(root: Path, work: Path) -> dict[str, Any]:
    data = load_breast_cancer()
    X = np.asarray(data.data, dtype=np.float64)
    y = (data.target == 0).astype(np.int64)  # 1 = malignant (sklearn codes malignant as 0)
    assert list(data.target_names) == ["malignant", "benign"]
    names_units = [(f"{b}_{s}", u) for s in ("mean", "se", "worst") for b, u in WDBC_BASE]
    names = [n for n, _ in names_units]

    cv = cv_classifier(X, y, work)
    auc = lambda yy, pp: float(roc_auc_score(yy, pp))  # noqa: E731
    auc32 = float(np.mean([auc(y, r) for r in cv.fp32]))
    auc8 = float(np.mean([auc(y, r) for r in cv.int8]))
    ci32 = bootstrap_ci(y, cv.fp32, auc, strata=y)
    ci8 = bootstrap_ci(y, cv.int8, auc, strata=y)
    agree = float(((cv.fp32 >= THRESHOLD) == (cv.int8 >= THRESHOLD)).mean())
    sens32, spec32 = map(np.mean, zip(*(sens_spec(y, r) for r in cv.fp32), strict=True))
    sens8, spec8 = map(np.mean, zip(*(sens_spec(y, r) for r in cv.int8), strict=True))
    acc_ok = auc32 - auc8 <= GATE_MAX_AUC_DROP and agree >= GATE_MIN_AGREEMENT

    # The shipped model: fitted on all 569 rows after CV.
    final = make_classifier().fit(X, y)
    fp32_path, int8_path = work / "model.fp32.onnx", work / "model.int8.onnx"
    export_onnx(final, fp32_path, output="p_malignant", n_features=X.shape[1])
    quantize_int8(fp32_path, int8_path, X)
    s32, s8 = session(fp32_path), session(int8_path)
    ref = final.predict_proba(X)[:, 1]
    onnx_diff = float(np.abs(ort_predict(s32, X) - ref).max())
    if onnx_diff > 1e-5:
        raise SystemExit(f"ONNX export differs from sklearn by {onnx_diff:.3g} > 1e-5")
    skl_diff = skl2onnx_crosscheck(final, X)
    final_int8_diff = float(np.abs(ort_predict(s8, X) - ort_predict(s32, X)).max())

    x1, x64 = X[:1].astype(np.float32), X[:64].astype(np.float32)
    lat = interleaved_ms(
        {
            "fp32_b1": lambda: s32.run(None, {"features": x1}),
            "int8_b1": lambda: s8.run(None, {"features": x1}),
            "fp32_b64": lambda: s32.run(None, {"features": x64}),
            "int8_b64": lambda: s8.run(None, {"features": x64}),
        }
    )
    speedup_b1, speedup_b64 = lat["fp32_b1"] / lat["int8_b1"], lat["fp32_b64"] / lat["int8_b64"]
    fast_ok = min(speedup_b1, speedup_b64) >= GATE_MIN_SPEEDUP
    ship_int8 = acc_ok and fast_ok
    reasons = []
    reasons.append(
        f"accuracy {'passed' if acc_ok else 'FAILED'} (CV AUC drop {auc32 - auc8:+.4f} vs max "
        f"{GATE_MAX_AUC_DROP}, decision agreement {agree:.4f} vs min {GATE_MIN_AGREEMENT})"
    )
    if acc_ok:
        # Worded coarsely (not the timings themselves) so the card stays bit-reproducible.
        if max(speedup_b1, speedup_b64) < 1.0:
            observed = (
                "INT8 was slower than FP32 at both batch sizes: ONNX Runtime runs it as "
                "QuantizeLinear -> QLinearMatMul -> DequantizeLinear per layer, and those extra "
                "nodes cost more than int8 saves on 30x16 and 16x1 matmuls"
            )
        elif fast_ok:
            observed = f"INT8 was at least {GATE_MIN_SPEEDUP}x faster at both batch sizes"
        else:
            observed = f"INT8 was less than {GATE_MIN_SPEEDUP}x faster at one batch size or both"
        reasons.append(
            "speed "
            + ("passed" if fast_ok else "FAILED")
            + f" (INT8 must be >= {GATE_MIN_SPEEDUP}x faster than FP32 on ONNX Runtime at "
            f"batch 1 and 64; {observed})"
        )
    decision = ("shipped INT8: " if ship_int8 else "shipped FP32: ") + "; ".join(reasons)

    out = root / "wdbc-malignancy-mlp"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    precision = "int8" if ship_int8 else "fp32"
    model_file = f"model.{precision}.onnx"
    shutil.copy2(int8_path if ship_int8 else fp32_path, out / model_file)
    to_openvino(out / model_file, out / "openvino" / "model.xml")
    shipped = session(out / model_file)
    compiled = ov_compile(out / "openvino" / "model.xml")
    ov_diff = float(np.abs(ov_predict(compiled, X) - ort_predict(shipped, X)).max())
    lat_ov = interleaved_ms(
        {
            "ort_b1": lambda: shipped.run(None, {"features": x1}),
            "ov_b1": lambda: compiled(x1),
            "ort_b64": lambda: shipped.run(None, {"features": x64}),
            "ov_b64": lambda: compiled(x64),
        }
    )
    backends = (
        ["onnxruntime", "openvino"]
        if lat_ov["ort_b1"] <= lat_ov["ov_b1"]
        else ["openvino", "onnxruntime"]
    )

    gi = golden_indices(y, stratify=True)
    expected = ort_predict(shipped, X[gi])
    write_golden(out, names, X, gi, expected)

    m: dict[str, Any] = {
        "dataset": "sklearn load_breast_cancer (WDBC), 569 rows (212 malignant), 30 features",
        "cv_scheme": f"RepeatedStratifiedKFold {N_SPLITS}-fold x {N_REPEATS} repeats, random_state={SEED}",
        "ci_method": f"95% percentile bootstrap over patients ({N_BOOT} stratified resamples) of the repeat-averaged out-of-fold metric",
        "cv_roc_auc_fp32": r4(auc32),
        "cv_roc_auc_fp32_ci95_low": r4(ci32[0]),
        "cv_roc_auc_fp32_ci95_high": r4(ci32[1]),
        "cv_fold_roc_auc_min": r4(min(cv.fold_auc)),
        "cv_fold_roc_auc_max": r4(max(cv.fold_auc)),
        "cv_sensitivity_fp32": r4(sens32),
        "cv_specificity_fp32": r4(spec32),
        "cv_roc_auc_int8": r4(auc8),
        "cv_roc_auc_int8_ci95_low": r4(ci8[0]),
        "cv_roc_auc_int8_ci95_high": r4(ci8[1]),
        "cv_sensitivity_int8": r4(sens8),
        "cv_specificity_int8": r4(spec8),
        "cv_int8_vs_fp32_decision_agreement": r4(agree),
        "cv_int8_vs_fp32_max_abs_prob": r4(float(np.abs(cv.int8 - cv.fp32).max())),
        "threshold": THRESHOLD,
        "int8_gate": decision,
        "shipped_precision": precision,
        "final_fit": "all 569 rows, after CV",
        "onnx_vs_sklearn_max_abs_prob": sci(max(onnx_diff, cv.onnx_vs_sklearn)),
        "skl2onnx_vs_edgemed_onnx_max_abs_prob": sci(skl_diff),
        "openvino_vs_onnxruntime_max_abs_prob": sci(ov_diff),
        "final_int8_vs_fp32_max_abs_prob": r4(final_int8_diff),
        "fp32_onnx_bytes": fp32_path.stat().st_size,
        "int8_onnx_bytes": int8_path.stat().st_size,
        "latency_ms_ort_fp32_b1": round(lat["fp32_b1"], 4),
        "latency_ms_ort_int8_b1": round(lat["int8_b1"], 4),
        "latency_ms_ort_fp32_b64": round(lat["fp32_b64"], 4),
        "latency_ms_ort_int8_b64": round(lat["int8_b64"], 4),
        "latency_ms_shipped_ort_b1": round(lat_ov["ort_b1"], 4),
        "latency_ms_shipped_openvino_b1": round(lat_ov["ov_b1"], 4),
        "latency_ms_shipped_ort_b64": round(lat_ov["ort_b64"], 4),
        "latency_ms_shipped_openvino_b64": round(lat_ov["ov_b64"], 4),
    }
    card_rows = [
        ("cross-validation", m["cv_scheme"]),
        ("95% CI", m["ci_method"]),
        (
            "ROC AUC, FP32 (out-of-fold)",
            f"{m['cv_roc_auc_fp32']} [{m['cv_roc_auc_fp32_ci95_low']}, {m['cv_roc_auc_fp32_ci95_high']}]",
        ),
        (
            "ROC AUC, INT8 static QDQ (out-of-fold)",
            f"{m['cv_roc_auc_int8']} [{m['cv_roc_auc_int8_ci95_low']}, {m['cv_roc_auc_int8_ci95_high']}]",
        ),
        (
            "ROC AUC per fold, min / max (FP32)",
            f"{m['cv_fold_roc_auc_min']} / {m['cv_fold_roc_auc_max']}",
        ),
        (
            f"sensitivity / specificity at p >= {THRESHOLD}, FP32",
            f"{m['cv_sensitivity_fp32']} / {m['cv_specificity_fp32']}",
        ),
        (
            f"sensitivity / specificity at p >= {THRESHOLD}, INT8",
            f"{m['cv_sensitivity_int8']} / {m['cv_specificity_int8']}",
        ),
        (
            "INT8 vs FP32 identical decisions (out-of-fold)",
            f"{m['cv_int8_vs_fp32_decision_agreement']}",
        ),
        (
            "INT8 vs FP32 max abs probability difference (out-of-fold)",
            f"{m['cv_int8_vs_fp32_max_abs_prob']}",
        ),
        (
            "ONNX (edgemed graph) vs sklearn predict_proba, max abs",
            f"{m['onnx_vs_sklearn_max_abs_prob']}",
        ),
        (
            "skl2onnx export vs edgemed graph, max abs",
            f"{m['skl2onnx_vs_edgemed_onnx_max_abs_prob']}",
        ),
        ("OpenVINO IR vs ONNX Runtime, max abs", f"{m['openvino_vs_onnxruntime_max_abs_prob']}"),
        ("ONNX size FP32 / INT8 (bytes)", f"{m['fp32_onnx_bytes']} / {m['int8_onnx_bytes']}"),
    ]
    card = (
        (HERE / "wdbc_malignancy_mlp_card.md")
        .read_text()
        .format(
            version=VERSION,
            metrics_table=metrics_table(card_rows),
            decision=decision,
            precision=precision.upper(),
            model_file=model_file,
            sklearn_version=sklearn.__version__,
            margin_pct=int(RANGE_MARGIN * 100),
        )
    )
    (out / "MODEL_CARD.md").write_text(card)
    manifest = {
        "schema": "edgemed.manifest/1",
        "id": "wdbc-malignancy-mlp",
        "version": VERSION,
        "task": "tabular-classification",
        "summary": "Breast-mass malignancy probability from 30 FNA nuclear features (WDBC, MLP)",
        "license": "BSD-3-Clause",
        "medical_device": False,
        "source": {
            "package": f"scikit-learn=={sklearn.__version__}",
            "upstream": "UCI Breast Cancer Wisconsin (Diagnostic), Wolberg, Street & Mangasarian 1995",
            "recipe": "models/recipes/tabular_sklearn.py",
        },
        "backends": backends,
        "inputs": [{"name": "features", "dtype": "float32", "shape": ["batch", len(names)]}],
        "outputs": [{"name": "p_malignant", "dtype": "float32", "shape": ["batch", 1]}],
        "preprocess": {
            "features": feature_specs(names_units, X),
            "range_source": f"observed range of the 569 training rows widened by {int(RANGE_MARGIN * 100)}% of the span on each side, lower bound clipped at 0",
            "standardization": "in_graph",
        },
        "postprocess": {
            "labels": ["benign", "malignant"],
            "positive_label": "malignant",
            "threshold": THRESHOLD,
        },
        "golden": {"max_abs_diff": 0.03 if ship_int8 else 1e-4, "min_label_agreement": 1.0},
        "metrics": m,
        "rows_independent": True,
    }
    roles = {
        "model": (model_file, {"format": "onnx", "precision": precision}),
        "openvino_model": ("openvino/model.xml", {"format": "openvino", "precision": precision}),
        "openvino_weights": ("openvino/model.bin", {"format": "openvino", "precision": precision}),
        "golden_inputs": ("golden/inputs.json", {}),
        "golden_outputs": ("golden/expected.npy", {}),
        "model_card": ("MODEL_CARD.md", {}),
    }
    write_manifest(out, manifest, roles)
    return m


def skl2onnx_crosscheck(model: Pipeline, X: np.ndarray) -> float:
    """skl2onnx's own export of the same pipeline (ai.onnx.ml ops) against our graph."""
    from skl2onnx import to_onnx

    proto = to_onnx(
        model,
        X[:1].astype(np.float32),
        options={id(model[-1]): {"zipmap": False}},
        target_opset=OPSET,
    )
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    probs = sess.run(None, {sess.get_inputs()[0].name: X.astype(np.float32)})[1][:, 1]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        export_onnx(model, path, output="p_malignant", n_features=X.shape[1])
        ours = ort_predict(session(path), X)
    return float(np.abs(probs - ours).max())


# ----------------------------------------------------------------------------- regression


def make_regressor() -> Pipeline:
    return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))


def build_regressor(root: Path, work: Path) -> dict[str, Any]:
    X, y = load_diabetes(return_X_y=True, scaled=False)
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    names = [n for n, _ in DIABETES_FEATURES]
    cv = RepeatedKFold(n_splits=N_SPLITS, n_repeats=N_REPEATS, random_state=SEED)
    oof = np.full((N_REPEATS, len(y)), np.nan)
    fold_r2, worst = [], 0.0
    for k, (tr, te) in enumerate(cv.split(X)):
        model = make_regressor().fit(X[tr], y[tr])
        path = work / f"reg{k}.onnx"
        export_onnx(model, path, output="progression", n_features=X.shape[1])
        pred = ort_predict(session(path), X[te])
        worst = max(worst, float(np.abs(pred - model.predict(X[te])).max()))
        oof[k // N_SPLITS, te] = pred
        fold_r2.append(float(r2_score(y[te], pred)))
    r2 = float(np.mean([r2_score(y, r) for r in oof]))
    mae = float(np.mean([mean_absolute_error(y, r) for r in oof]))
    r2_ci = bootstrap_ci(y, oof, lambda a, b: float(r2_score(a, b)), strata=None)
    mae_ci = bootstrap_ci(y, oof, lambda a, b: float(mean_absolute_error(a, b)), strata=None)
    base_mae = float(np.mean(np.abs(y - y.mean())))

    final = make_regressor().fit(X, y)
    out = root / "diabetes-progression"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    export_onnx(final, out / "model.fp32.onnx", output="progression", n_features=X.shape[1])
    to_openvino(out / "model.fp32.onnx", out / "openvino" / "model.xml")
    sess = session(out / "model.fp32.onnx")
    compiled = ov_compile(out / "openvino" / "model.xml")
    pred = ort_predict(sess, X)
    onnx_diff = float(np.abs(pred - final.predict(X)).max())
    if onnx_diff > 1e-3:
        raise SystemExit(f"ONNX export differs from sklearn by {onnx_diff:.3g} > 1e-3")
    ov_diff = float(np.abs(ov_predict(compiled, X) - pred).max())
    x1, x64 = X[:1].astype(np.float32), X[:64].astype(np.float32)
    lat = interleaved_ms(
        {
            "ort_b1": lambda: sess.run(None, {"features": x1}),
            "ov_b1": lambda: compiled(x1),
            "ort_b64": lambda: sess.run(None, {"features": x64}),
            "ov_b64": lambda: compiled(x64),
        }
    )
    backends = (
        ["onnxruntime", "openvino"]
        if lat["ort_b1"] <= lat["ov_b1"]
        else ["openvino", "onnxruntime"]
    )
    gi = golden_indices(y, stratify=False)
    write_golden(out, names, X, gi, ort_predict(sess, X[gi]))
    est = final[-1]
    m: dict[str, Any] = {
        "dataset": "sklearn load_diabetes(scaled=False), 442 rows, 10 features in raw units",
        "cv_scheme": f"RepeatedKFold {N_SPLITS}-fold x {N_REPEATS} repeats, random_state={SEED}",
        "ci_method": f"95% percentile bootstrap over patients ({N_BOOT} resamples) of the repeat-averaged out-of-fold metric",
        "cv_r2": r4(r2),
        "cv_r2_ci95_low": r4(r2_ci[0]),
        "cv_r2_ci95_high": r4(r2_ci[1]),
        "cv_fold_r2_min": r4(min(fold_r2)),
        "cv_fold_r2_max": r4(max(fold_r2)),
        "cv_mae": round(mae, 2),
        "cv_mae_ci95_low": round(mae_ci[0], 2),
        "cv_mae_ci95_high": round(mae_ci[1], 2),
        "mae_predicting_the_mean": round(base_mae, 2),
        "ridge_alpha": float(est.alpha_),
        "int8": "not tried: a 10-weight linear model (10 multiply-adds) gains nothing from INT8",
        "shipped_precision": "fp32",
        "final_fit": "all 442 rows, after CV",
        "onnx_vs_sklearn_max_abs": sci(max(onnx_diff, worst)),
        "openvino_vs_onnxruntime_max_abs": sci(ov_diff),
        "fp32_onnx_bytes": (out / "model.fp32.onnx").stat().st_size,
        "latency_ms_ort_b1": round(lat["ort_b1"], 4),
        "latency_ms_openvino_b1": round(lat["ov_b1"], 4),
        "latency_ms_ort_b64": round(lat["ort_b64"], 4),
        "latency_ms_openvino_b64": round(lat["ov_b64"], 4),
    }
    card_rows = [
        ("cross-validation", m["cv_scheme"]),
        ("95% CI", m["ci_method"]),
        ("R² (out-of-fold)", f"{m['cv_r2']} [{m['cv_r2_ci95_low']}, {m['cv_r2_ci95_high']}]"),
        ("R² per fold, min / max", f"{m['cv_fold_r2_min']} / {m['cv_fold_r2_max']}"),
        (
            "MAE (out-of-fold, progression units)",
            f"{m['cv_mae']} [{m['cv_mae_ci95_low']}, {m['cv_mae_ci95_high']}]",
        ),
        ("MAE of always predicting the mean", f"{m['mae_predicting_the_mean']}"),
        ("ridge alpha (RidgeCV, shipped fit)", f"{m['ridge_alpha']}"),
        ("ONNX (edgemed graph) vs sklearn predict, max abs", f"{m['onnx_vs_sklearn_max_abs']}"),
        ("OpenVINO IR vs ONNX Runtime, max abs", f"{m['openvino_vs_onnxruntime_max_abs']}"),
        ("ONNX size (bytes)", f"{m['fp32_onnx_bytes']}"),
    ]
    coef = est.coef_ / final[0].scale_  # per raw unit
    coef_rows = "\n".join(
        f"| {n} | {u} | {c:+.4g} |" for (n, u), c in zip(DIABETES_FEATURES, coef, strict=True)
    )
    card = (
        (HERE / "diabetes_progression_card.md")
        .read_text()
        .format(
            version=VERSION,
            metrics_table=metrics_table(card_rows),
            coef_table="| feature | unit | progression per unit |\n|---|---|---|\n" + coef_rows,
            sklearn_version=sklearn.__version__,
            margin_pct=int(RANGE_MARGIN * 100),
        )
    )
    (out / "MODEL_CARD.md").write_text(card)
    manifest = {
        "schema": "edgemed.manifest/1",
        "id": "diabetes-progression",
        "version": VERSION,
        "task": "tabular-regression",
        "summary": "One-year diabetes disease-progression score from age, sex, BMI, BP and six serum values (ridge)",
        "license": "BSD-3-Clause",
        "medical_device": False,
        "source": {
            "package": f"scikit-learn=={sklearn.__version__}",
            "upstream": "Efron, Hastie, Johnstone & Tibshirani 2004, Least Angle Regression (diabetes data)",
            "recipe": "models/recipes/tabular_sklearn.py",
        },
        "backends": backends,
        "inputs": [{"name": "features", "dtype": "float32", "shape": ["batch", len(names)]}],
        "outputs": [{"name": "progression", "dtype": "float32", "shape": ["batch", 1]}],
        "preprocess": {
            "features": feature_specs(DIABETES_FEATURES, X, exact=("sex",)),
            "range_source": f"observed range of the 442 training rows widened by {int(RANGE_MARGIN * 100)}% of the span on each side, lower bound clipped at 0; sex exactly [1, 2]",
            "standardization": "in_graph",
        },
        "postprocess": {
            "name": "progression_1y",
            "unit": "progression score (dataset units, 25-346 observed)",
        },
        # FP32 linear model: float32 rounding of a ~150 output is ~1e-5; 1e-3 leaves room for
        # other CPUs' summation order and OpenVINO.
        "golden": {"max_abs_diff": 1e-3},
        "metrics": m,
        "rows_independent": True,
    }
    roles = {
        "model": ("model.fp32.onnx", {"format": "onnx", "precision": "fp32"}),
        "openvino_model": ("openvino/model.xml", {"format": "openvino", "precision": "fp32"}),
        "openvino_weights": ("openvino/model.bin", {"format": "openvino", "precision": "fp32"}),
        "golden_inputs": ("golden/inputs.json", {}),
        "golden_outputs": ("golden/expected.npy", {}),
        "model_card": ("MODEL_CARD.md", {}),
    }
    write_manifest(out, manifest, roles)
    return m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent, help="folder holding the bundles")
    parser.add_argument("--only", choices=("wdbc", "diabetes"), default=None)
    args = parser.parse_args()
    warnings.filterwarnings("error", module="sklearn")  # a non-converged MLP must not ship
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "wdbc"):
            report["wdbc-malignancy-mlp"] = build_classifier(args.out, Path(tmp))
        if args.only in (None, "diabetes"):
            report["diabetes-progression"] = build_regressor(args.out, Path(tmp))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
