"""SDK overhead of a generic task (image-classification) over the raw runtime call.

The bundle is built here with ``edgemed bundle build``'s API from the real PP-OCR mobile v2.0
text-direction classifier (rapidocr-onnxruntime) on text lines drawn by tests/text_lines.py.
Paired and interleaved, warm heap, one thread on both sides (``threads=1`` and
``intra_op_num_threads=1``), for a 48x192 crop (no resize) and a 1080p frame (the resize is
real work a caller would do by hand anyway):

* ``raw_run``: ``onnxruntime.InferenceSession.run`` on the very tensors the pipeline makes
  (``pipeline.preprocess(image).tensors``), the same model file, no edgemed in the loop;
* ``sdk``: ``pipeline(image)``: preprocessing kernel, backend, postprocessing, the result
  with its provenance and output-contract check;
* ``overhead_fraction`` = (sdk - raw_run - preprocess - postprocess) / sdk at the median: what
  edgemed adds beyond the work itself (issue target <= 5 %); ``total_over_raw`` counts the
  pre/postprocessing work as overhead too.

Usage: python benchmarks/bench_image_classifier.py [N]   (default 2000 calls per case)
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from _machine import machine_info

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from text_lines import text_line, write_set

import edgemed
from edgemed.bundle import BuildSpec, Gate, build_bundle

SPEC = BuildSpec(
    id="text-direction",
    version="1.0.0",
    task="image-classification",
    summary="Text-line direction (PP-OCR mobile v2.0)",
    license="Apache-2.0",
    source={"upstream": "PaddleOCR ch_ppocr_mobile_v2.0_cls via rapidocr-onnxruntime"},
    preprocess={
        "size": [48, 192], "fit": "stretch", "interpolation": "bilinear",
        "channel_order": "bgr", "layout": "nchw", "scale": 1 / 255,
        "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
    },
    postprocess={"labels": ["0", "180"], "scores": "probabilities", "multi_label": False,
                 "top_k": 2, "min_confidence": 0.0},
    gate=Gate(min_agreement=0.9, max_metric_drop=0.05),
)  # fmt: skip


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def measure(pipe: edgemed.Pipeline, image: np.ndarray, n: int) -> dict[str, Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(pipe.manifest.path("model")), options, providers=["CPUExecutionProvider"]
    )
    prepared = pipe.preprocess(image)
    outputs = pipe.backend.run(prepared.tensors)
    cases = {
        "sdk": lambda: pipe(image),
        "raw_run": lambda: session.run(None, prepared.tensors),
        "preprocess": lambda: pipe.preprocess(image),
        "postprocess": lambda: pipe.postprocess(outputs, prepared.context),
    }
    for fn in cases.values():
        for _ in range(50):
            fn()
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(n):
        for name, fn in cases.items():
            times[name].append(_timed(fn))
    p50 = {k: statistics.median(v) for k, v in times.items()}
    work = p50["raw_run"] + p50["preprocess"] + p50["postprocess"]
    return {
        "input": f"{image.shape[1]}x{image.shape[0]}",
        "calls": n,
        **{f"{k}_p50_ms": round(v, 4) for k, v in p50.items()},
        "overhead_ms": round(p50["sdk"] - work, 4),
        "overhead_fraction": round((p50["sdk"] - work) / p50["sdk"], 4),
        "total_over_raw": round(p50["sdk"] / p50["raw_run"], 3),
    }


def main() -> None:
    import rapidocr_onnxruntime

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    onnx = Path(rapidocr_onnxruntime.__file__).parent / "models/ch_ppocr_mobile_v2.0_cls_infer.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_set(work / "eval", 30, seed=1)
        write_set(work / "calib", 30, seed=2, labelled=False)
        report = build_bundle(
            SPEC, onnx, evaluation=work / "eval", calibration=work / "calib", out=work / "b"
        )
        line = text_line(np.random.default_rng(7))
        frame = cv2.resize(line, (1920, 1080), interpolation=cv2.INTER_LINEAR)
        with edgemed.load(report.path, threads=1) as pipe:
            rows = [measure(pipe, line, n), measure(pipe, frame, max(200, n // 10))]
            precision = pipe.manifest.precision
    print(json.dumps({
        "benchmark": "image-classification SDK overhead over the raw ONNX Runtime call",
        "model": f"text-direction ({precision}, built by edgemed bundle build)",
        "threads": {"edgemed": 1, "onnxruntime_raw": 1},
        "heap": "warm (50 calls per case before timing)",
        "machine": machine_info(),
        "rows": rows,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
