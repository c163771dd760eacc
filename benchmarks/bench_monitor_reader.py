"""Latency per monitor screen (preprocess / detector / postprocess incl. recogniser), shipped
INT8 recogniser vs the FP32 recogniser, interleaved screen by screen so machine noise hits both.

Run:  python benchmarks/bench_monitor_reader.py [--threads 2] [--rounds 3]
Prints JSON: median ms per stage for each variant over the shipped test screens, and the
rapidocr reference pipeline (its own preprocessing, pyclipper/shapely post-processing, FP32).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
from _machine import machine_info

import edgemed
from edgemed.registry import find_model_dir

ROOT = Path(__file__).resolve().parents[1]
SCREENS = ROOT / "tests" / "fixtures" / "monitor-screens"


def fp32_variant(tmp: Path) -> Path:
    """A copy of the bundle whose recogniser is rapidocr's FP32 model (manifest re-hashed)."""
    import hashlib

    import rapidocr_onnxruntime

    src = find_model_dir("monitor-reader")
    dst = tmp / "monitor-reader"
    shutil.copytree(src, dst)
    rec = Path(rapidocr_onnxruntime.__file__).parent / "models" / "ch_PP-OCRv4_rec_infer.onnx"
    shutil.copy(rec, dst / "rec.fp32.onnx")
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["artifacts"]["recognizer"] = {
        "path": "rec.fp32.onnx",
        "sha256": hashlib.sha256(rec.read_bytes()).hexdigest(),
        "format": "onnx",
        "precision": "fp32",
    }
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    images = [cv2.imread(str(p)) for p in sorted(SCREENS.glob("*.png"))]
    with tempfile.TemporaryDirectory() as tmp:
        pipes = {
            "rec_int8 (shipped)": edgemed.load("monitor-reader", threads=args.threads),
            "rec_fp32": edgemed.load(fp32_variant(Path(tmp)), threads=args.threads, golden=False),
        }
        samples: dict[str, dict[str, list[float]]] = {
            n: {"preprocess": [], "inference": [], "postprocess": [], "total": []} for n in pipes
        }
        rapid: list[float] = []
        try:
            from rapidocr_onnxruntime import RapidOCR

            engine: Any = RapidOCR(intra_op_num_threads=args.threads, use_cls=False)
        except ImportError:
            engine = None
        for _ in range(args.rounds):
            for img in images:
                for name, pipe in pipes.items():
                    t = pipe(img).provenance.timings
                    s = samples[name]
                    s["preprocess"].append(t.preprocess_ms)
                    s["inference"].append(t.inference_ms)
                    s["postprocess"].append(t.postprocess_ms)
                    s["total"].append(t.total_ms)
                if engine is not None:
                    t0 = time.perf_counter()
                    engine(img, use_cls=False)
                    rapid.append((time.perf_counter() - t0) * 1e3)
    out: dict[str, Any] = {
        "screens": len(images),
        "rounds": args.rounds,
        "threads": args.threads,
        "median_ms": {
            n: {k: round(statistics.median(v), 1) for k, v in s.items()} for n, s in samples.items()
        },
        "machine": machine_info(),
    }
    if rapid:
        out["median_ms"]["rapidocr 1.4.4 reference (fp32, no angle classifier)"] = {
            "total": round(statistics.median(rapid), 1)
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
