"""Rebuild models/monitor-reader from the rapidocr-onnxruntime registry package.

Steps (deterministic for the pinned versions in requirements.txt):
1. copy PP-OCRv4 text detection and recognition ONNX models from rapidocr-onnxruntime 1.4.4
   and write the recogniser's character dictionary (the ONNX metadata key ``character``, the
   6,623-line ppocr_keys_v1 list) as ``ppocr_keys_v1.txt``;
2. render screens (``monitor_screens.render_screen``, seeds 1000-1199);
3. measure per-field exact-value accuracy FP32 vs INT8 (ONNX Runtime dynamic INT8 of the
   recogniser, per-channel; static QDQ INT8 of the detector calibrated on seeds 0-31); an INT8
   variant ships only if every field stays within 1 point of FP32 and it reads no more wrong
   values (the gate's figures go to ``metrics.int8_gate``);
4. try OpenVINO conversion (``ov.convert_model``) of both models and compare outputs;
5. ``monitor_safety.py --release``: fit the field confidence on the tuning families, evaluate
   leave-family-out, write golden screens, ``tests/fixtures/monitor-screens-v2``, the model
   card and the manifest (sha256 of every artifact).

Needs the font packages the generator draws with (Debian): fonts-dejavu-core fonts-liberation2
fonts-open-sans fonts-roboto-unhinted fonts-b612 fonts-hack fonts-dseg.

Run:  python models/recipes/monitor_reader.py [--out models/monitor-reader] [--screens 200]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from monitor_screens import render_screen  # noqa: E402

import edgemed  # noqa: E402
from edgemed.results import MONITOR_FIELDS, MonitorReading  # noqa: E402
from edgemed.tasks.monitor_reader.field_confidence import FEATURES  # noqa: E402

MODEL_ID = "monitor-reader"
VERSION = "1.3.11"  # monitor_safety.py --release writes the same
EVAL_SEEDS = 1000  # first evaluation seed
CALIB_SEEDS = range(0, 32)
FIELDS = ("hr", "spo2", "nibp", "rr", "temperature")
PREPROCESS = {"limit_side_len": 960, "limit_type": "max", "mean": 0.5, "std": 0.5}
POSTPROCESS = {
    "thresh": 0.3,
    "box_thresh": 0.5,
    "unclip_ratio": 1.6,
    "max_candidates": 1000,
    "rec_height": 48,
    "rec_min_width": 64,
    "rec_width_step": 32,
    "rec_max_width": 1280,
    "rec_mean": 0.5,
    "rec_std": 0.5,
    "min_text_confidence": 0.5,
    # Placeholder until monitor_safety.py fits it on the tuning families (step 5).
    "field_confidence": {
        "weights": dict.fromkeys(FEATURES, 0.0),
        "bias": 10.0,
        "threshold": 0.0,
    },
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rapidocr_models() -> Path:
    import rapidocr_onnxruntime

    return Path(rapidocr_onnxruntime.__file__).parent / "models"


def write_charset(rec_onnx: Path, out: Path) -> int:
    import onnx

    model = onnx.load(str(rec_onnx), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    chars = meta["character"].splitlines()
    out.write_text("\n".join(chars) + "\n", encoding="utf-8")
    return len(chars)


def truth_fields(gt: dict[str, Any]) -> dict[str, Any]:
    return {k: gt[k] for k in MONITOR_FIELDS}


def score(readings: list[dict[str, Any]], truths: list[dict[str, Any]]) -> dict[str, float]:
    """Exact-value accuracy per field (NIBP: both numbers), over every screen: a field shown as
    missing counts as correct only when read as None."""
    acc: dict[str, float] = {}
    for f in FIELDS:
        keys = ("nibp_systolic", "nibp_diastolic") if f == "nibp" else (f,)
        ok = [all(r[k] == t[k] for k in keys) for r, t in zip(readings, truths, strict=True)]
        acc[f] = round(100.0 * float(np.mean(ok)), 2)
    acc["mean"] = round(float(np.mean([acc[f] for f in FIELDS])), 2)
    screens = [r == t for r, t in zip(readings, truths, strict=True)]
    acc["all_fields"] = round(100.0 * float(np.mean(screens)), 2)
    wrong = sum(
        1
        for r, t in zip(readings, truths, strict=True)
        for k in MONITOR_FIELDS
        if r[k] is not None and r[k] != t[k]
    )
    acc["wrong_values"] = wrong  # a value read but not the one shown (the dangerous error)
    return acc


def write_manifest(
    out: Path,
    *,
    det: str,
    rec: str,
    det_precision: str,
    rec_precision: str,
    metrics: dict[str, Any],
    golden_tol: float = 0.05,
) -> None:
    def art(path: str, **extra: Any) -> dict[str, Any]:
        return {"path": path, "sha256": sha256(out / path), **extra}

    manifest = {
        "schema": "edgemed.manifest/1",
        "id": MODEL_ID,
        "version": VERSION,
        "task": "monitor-reader",
        "summary": "Bedside monitor reader: PP-OCRv4 text detection + recognition, "
        "vital signs and NEWS2 from a photo of a patient-monitor screen",
        "license": "Apache-2.0",
        "medical_device": False,
        "source": {
            "package": "rapidocr-onnxruntime==1.4.4",
            "upstream": "PaddleOCR PP-OCRv4 (ch_PP-OCRv4_det_infer, ch_PP-OCRv4_rec_infer)",
            "recipe": "models/recipes/monitor_reader.py",
        },
        "artifacts": {
            "model": art(det, format="onnx", precision=det_precision),
            "recognizer": art(rec, format="onnx", precision=rec_precision),
            "charset": art("ppocr_keys_v1.txt"),
            "golden_inputs": art("golden/screens.png"),
            "golden_outputs": art("golden/expected.json"),
            "model_card": art("MODEL_CARD.md"),
        },
        "backends": ["onnxruntime"],
        "inputs": [
            {
                "name": "x",
                "dtype": "float32",
                "shape": ["batch", 3, "height", "width"],
                "layout": "NCHW",
            }
        ],
        "outputs": [
            {
                "name": "sigmoid_0.tmp_0",
                "dtype": "float32",
                "shape": ["batch", 1, "height", "width"],
            }
        ],
        "preprocess": PREPROCESS,
        "postprocess": POSTPROCESS,
        "golden": {"max_abs_diff": golden_tol},
        "metrics": metrics,
        "rows_independent": False,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def read_all(pipe: Any, images: list[np.ndarray]) -> tuple[list[dict[str, Any]], dict[str, float]]:
    readings, pre, inf, post = [], [], [], []
    for img in images:
        r = pipe(img)
        assert isinstance(r, MonitorReading)
        readings.append({k: r.value(k) for k in MONITOR_FIELDS})
        t = r.provenance.timings
        pre.append(t.preprocess_ms)
        inf.append(t.inference_ms)
        post.append(t.postprocess_ms)
    timing = {
        "preprocess_ms": round(float(np.median(pre)), 2),
        "inference_ms": round(float(np.median(inf)), 2),
        "postprocess_ms": round(float(np.median(post)), 2),
        "total_ms": round(float(np.median(np.add(np.add(pre, inf), post))), 2),
    }
    return readings, timing


def quantize_recognizer(src: Path, dst: Path) -> None:
    """Dynamic INT8 (per-channel weights: per-tensor loses accuracy, as on the text model)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_dynamic(
            str(pre),
            str(dst),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )


def quantize_detector(src: Path, dst: Path, pipe: Any) -> None:
    """Static QDQ INT8 (U8 activations, S8 per-channel weights), calibrated on rendered screens
    (seeds 0-31, never evaluation seeds) preprocessed exactly as the pipeline does."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Screens(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter([pipe.preprocess(render_screen(s)[0]).tensors for s in CALIB_SEEDS])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._items, None)

    import onnx
    from onnx import version_converter

    with tempfile.TemporaryDirectory() as tmp:
        pre, v13 = Path(tmp) / "pre.onnx", Path(tmp) / "v13.onnx"
        # Per-channel QDQ needs DequantizeLinear's axis attribute: opset >= 13 (model: 11).
        onnx.save(version_converter.convert_version(onnx.load(str(src)), 13), str(v13))
        quant_pre_process(str(v13), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(dst),
            Screens(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )


def try_openvino(out: Path, pipe: Any, image: np.ndarray) -> str:
    """Convert both models with ov.convert_model and compare to ONNX Runtime (FP32 hint)."""
    try:
        import openvino as ov
    except ImportError:
        return "openvino not installed"
    core = ov.Core()
    notes = []
    x = pipe.preprocess(image).tensors["x"]
    crops = np.random.default_rng(0).uniform(-1, 1, (2, 3, 48, 160)).astype(np.float32)
    for name, path, feed in (
        ("det fp32", out / "det.fp32.onnx", x),
        ("det int8 QDQ", out / "det.int8.onnx", x),
        ("rec fp32", out / "rec.fp32.onnx", crops),
        ("rec int8 dynamic", out / "rec.int8.onnx", crops),
    ):
        try:
            model = ov.convert_model(str(path))
            compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            got = np.asarray(compiled(feed)[0])
            import onnxruntime as ort

            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            ref = np.asarray(sess.run(None, {sess.get_inputs()[0].name: feed})[0])
            worst = float(np.abs(got - ref).max())
            # Coarse bands: the note goes into the manifest, which must hash the same each run.
            band = next((f"< {b:.0e}" for b in (1e-4, 1e-3, 1e-2, 1e-1) if worst < b), "up to 1")
            notes.append(f"{name}: converts, max |OV - ORT| {band}")
        except Exception as exc:  # report, never hide: the outcome goes into the model card
            notes.append(f"{name}: conversion failed ({type(exc).__name__}: {str(exc)[:120]})")
    return "; ".join(notes)


def prob_map_stats(prob: np.ndarray) -> dict[str, Any]:
    """Checksum-like summary of a detector probability map: shape, mean, fraction above the DB
    threshold and the means of an 8x8 grid of blocks."""
    h, w = prob.shape
    blocks = prob[: h // 8 * 8, : w // 8 * 8].reshape(8, h // 8, 8, w // 8).mean(axis=(1, 3))
    return {
        "shape": [h, w],
        "mean": round(float(prob.mean()), 6),
        "above_thresh": round(float((prob > POSTPROCESS["thresh"]).mean()), 6),
        "blocks": np.round(blocks, 5).tolist(),
    }


def evaluate(
    out: Path, det: str, rec: str, dp: str, rp: str, images: list, truths: list
) -> tuple[dict, dict]:
    write_manifest(out, det=det, rec=rec, det_precision=dp, rec_precision=rp, metrics={})
    pipe = edgemed.load(out, golden=False, threads=2)
    readings, timing = read_all(pipe, images)
    pipe.close()
    return score(readings, truths), timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "models" / MODEL_ID)
    parser.add_argument("--screens", type=int, default=120)
    args = parser.parse_args()
    out: Path = args.out
    shutil.rmtree(out, ignore_errors=True)
    (out / "golden").mkdir(parents=True)
    src = rapidocr_models()
    shutil.copy(src / "ch_PP-OCRv4_det_infer.onnx", out / "det.fp32.onnx")
    shutil.copy(src / "ch_PP-OCRv4_rec_infer.onnx", out / "rec.fp32.onnx")
    n_chars = write_charset(out / "rec.fp32.onnx", out / "ppocr_keys_v1.txt")
    for placeholder in ("golden/screens.png", "golden/expected.json", "MODEL_CARD.md"):
        (out / placeholder).write_bytes(b"")
    write_manifest(
        out,
        det="det.fp32.onnx",
        rec="rec.fp32.onnx",
        det_precision="fp32",
        rec_precision="fp32",
        metrics={},
    )
    fp32 = edgemed.load(out, golden=False, threads=2)
    with tempfile.TemporaryDirectory() as tmp:
        quantize_recognizer(out / "rec.fp32.onnx", Path(tmp) / "rec.int8.onnx")
        quantize_detector(out / "det.fp32.onnx", Path(tmp) / "det.int8.onnx", fp32)
        for f in ("rec.int8.onnx", "det.int8.onnx"):
            shutil.copy(Path(tmp) / f, out / f)
    images, truths = [], []
    for seed in range(EVAL_SEEDS, EVAL_SEEDS + args.screens):
        img, gt = render_screen(seed)
        images.append(img)
        truths.append(truth_fields(gt))
    variants = {
        "fp32": ("det.fp32.onnx", "rec.fp32.onnx", "fp32", "fp32"),
        "rec_int8": ("det.fp32.onnx", "rec.int8.onnx", "fp32", "int8"),
        "det_int8": ("det.int8.onnx", "rec.fp32.onnx", "int8", "fp32"),
        "int8": ("det.int8.onnx", "rec.int8.onnx", "int8", "int8"),
    }
    results = {}
    for name, (det, rec, dp, rp) in variants.items():
        t0 = time.time()
        acc, timing = evaluate(out, det, rec, dp, rp, images, truths)
        results[name] = {"accuracy": acc, "timing": timing}
        print(name, acc, timing, f"{time.time() - t0:.0f} s", flush=True)
    base = results["fp32"]["accuracy"]

    def passes(name: str) -> bool:
        acc = results[name]["accuracy"]
        return (
            all(acc[f] >= base[f] - 1.0 for f in FIELDS)
            and acc["wrong_values"] <= base["wrong_values"]
        )

    chosen = next(n for n in ("int8", "rec_int8", "det_int8", "fp32") if n == "fp32" or passes(n))
    det, rec, dp, rp = variants[chosen]
    print("ships", chosen, flush=True)
    write_manifest(out, det=det, rec=rec, det_precision=dp, rec_precision=rp, metrics={})
    pipe = edgemed.load(out, golden=False, threads=2)
    ov_note = try_openvino(out, pipe, images[0])
    print("openvino", ov_note, flush=True)
    pipe.close()
    for f in ("det.fp32.onnx", "rec.fp32.onnx", "det.int8.onnx", "rec.int8.onnx"):
        if f not in (det, rec):
            (out / f).unlink()
    gate = {
        "int8_gate_eval_screens": args.screens,
        "int8_gate_shipped_variant": chosen,
        **{
            f"int8_gate_{v}_{k}": r["accuracy"][k]
            for v, r in results.items()
            for k in ("mean", "wrong_values")
        },
        "openvino": ov_note[:400],
        "charset_classes": n_chars + 2,
    }
    write_manifest(out, det=det, rec=rec, det_precision=dp, rec_precision=rp, metrics=gate)
    # Step 5: fit the field confidence on the tuning families, evaluate on held-out families,
    # write golden screens, the test fixtures, the card and the final manifest.
    import subprocess

    fp32_rec = str(src / "ch_PP-OCRv4_rec_infer.onnx")
    subprocess.run(
        [
            sys.executable,
            str(HERE / "monitor_safety.py"),
            "--bundle",
            str(out),
            "--release",
            "--fp32-recogniser",
            fp32_rec,
        ],
        check=True,
    )
    # Latency depends on the machine and its load: printed, never written into an artifact
    # (the recipe's outputs must hash the same run to run).
    print("timings", json.dumps({v: r["timing"] for v, r in results.items()}))
    for p in sorted(out.rglob("*")):
        if p.is_file():
            print(f"{sha256(p)[:16]}  {p.stat().st_size:>10}  {p.relative_to(out)}")


if __name__ == "__main__":
    main()
