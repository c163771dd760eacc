"""The OpenVINO IR of a static-INT8 bundle is NNCF's own INT8 of the FP32 graph (issue 23), gated
against FP32 as ONNX Runtime's INT8 is and checked on the golden vectors; when it fails either,
the IR converted from ONNX Runtime's QDQ graph ships instead and the metrics and card say why.

On a real network with its real weights: PaddleOCR's text-direction classifier (mobile v2.0,
from rapidocr-onnxruntime), evaluated on 120 text lines and calibrated on 100, drawn by
tests/text_lines.py as in tests/integration/test_bundle_build.py. Measured here (x86_64
AVX-512 VNNI, one thread): accuracy FP32 0.808, ONNX Runtime INT8 0.783 (agreement with FP32
95.8 %), NNCF INT8 IR 0.808 (96.7 %).

The fallback is made by a real input, not a patch: a calibration folder of mostly blank frames.
ONNX Runtime calibrates activations on the min/max over all inputs, so a few real lines set
its ranges; NNCF on the mean of each input's min/max, which the blank frames shrink until the
real lines clip: its IR then fails the gate or the golden vectors while ONNX Runtime's passes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import edgemed
from edgemed.bundle import BuildReport, build_bundle, load_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from text_lines import write_set

rapidocr = pytest.importorskip("rapidocr_onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("openvino")
CLS = Path(rapidocr.__file__).parent / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"
SPEC: dict[str, Any] = {
    "id": "text-direction",
    "version": "1.0.0",
    "task": "image-classification",
    "summary": "Is a text line upright or upside down (PP-OCR mobile v2.0 direction classifier)",
    "license": "Apache-2.0",
    "preprocess": {
        "size": [48, 192], "fit": "stretch", "interpolation": "bilinear",
        "channel_order": "bgr", "layout": "nchw", "scale": 1 / 255,
        "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
    },
    "postprocess": {
        "labels_file": "labels.txt", "scores": "probabilities", "multi_label": False,
        "top_k": 2, "min_confidence": 0.0,
    },
    "gate": {"min_agreement": 0.9, "max_metric_drop": 0.05},  # 120 lines: see test_bundle_build
}  # fmt: skip


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nncf")
    write_set(root / "eval", 60, seed=1)
    write_set(root / "calib", 50, seed=2, labelled=False)
    (root / "labels.txt").write_text("0\n180\n")
    return root


def _spec(work: Path, out: str, gate: dict[str, float] | None) -> Path:
    path = work / f"{out}.json"
    path.write_text(json.dumps(SPEC | ({"gate": gate} if gate else {})))
    return path


def _build(
    work: Path, out: str, calibration: Path, gate: dict[str, float] | None = None
) -> BuildReport:
    spec = load_spec(_spec(work, out, gate))
    return build_bundle(
        spec, CLS, evaluation=work / "eval", calibration=calibration, out=work / out
    )


def _mostly_blank(work: Path, blank: int, real: int) -> Path:
    folder = work / f"blank-{blank}-{real}"
    folder.mkdir()
    for i in range(blank):
        cv2.imwrite(str(folder / f"blank-{i}.png"), np.zeros((48, 192, 3), np.uint8))
    for line in sorted((work / "calib").iterdir())[:real]:
        shutil.copy(line, folder / line.name)
    return folder


def _nncf_made(bundle: Path) -> bool:
    """NNCF records its parameters in the IR it quantised; a converted QDQ graph has none."""
    xml = (bundle / "openvino/model.xml").read_text()
    return '<preset value="performance" />' in xml and "model.fp32.onnx" in xml


def test_nncf_int8_ir_ships_gated_and_serves_on_openvino(work: Path) -> None:
    pytest.importorskip("nncf")
    report = _build(work, "nncf", work / "calib")
    m = report.metrics
    assert m["shipped_precision"] == "int8" and m["gate"].startswith("INT8 passed")
    assert m["openvino_int8"] == "nncf" and m["openvino"] == "shipped"
    assert _nncf_made(report.path)
    fp32, ir = float(m["fp32_accuracy"]), float(m["openvino_accuracy"])
    assert float(m["openvino_fp32_agreement"]) >= 0.9 and fp32 - ir <= 0.05  # the spec's gate
    manifest = json.loads((report.path / "manifest.json").read_text())
    assert manifest["backends"] == ["onnxruntime", "openvino"]
    assert manifest["artifacts"]["openvino_model"]["precision"] == "int8"
    card = (report.path / "MODEL_CARD.md").read_text()
    assert "INT8 made by NNCF" in card
    assert f"| accuracy | {m['fp32_accuracy']} | {m['int8_accuracy']} | {ir} |" in card
    assert f"| agreement with FP32 | 1 | {m['fp32_int8_agreement']} | " in card
    with edgemed.load(report.path, backend="openvino") as served:  # golden vectors checked
        assert served.backend.name == "openvino" and served.check_golden() == []


@pytest.mark.parametrize(
    ("blank", "real", "gate", "why"),
    [  # NNCF's IR: agreement with FP32 86.7 % (ONNX Runtime's INT8: 98.3 %)
        (48, 2, {"min_agreement": 0.95, "max_metric_drop": 0.05}, "failed the gate"),
        # NNCF's IR: agreement 90.0 %, but golden scores off by 0.26 (limit 0.05)
        (90, 10, {"min_agreement": 0.85, "max_metric_drop": 0.1}, "failed the golden check"),
    ],
)
def test_a_mostly_blank_calibration_set_falls_back_to_the_converted_qdq_graph(
    work: Path, blank: int, real: int, gate: dict[str, float], why: str
) -> None:
    pytest.importorskip("nncf")
    report = _build(work, f"fallback-{blank}", _mostly_blank(work, blank, real), gate)
    m = report.metrics
    assert m["shipped_precision"] == "int8" and m["gate"].startswith("INT8 passed")
    assert str(m["openvino_int8"]).startswith(f"converted from ONNX QDQ: NNCF's IR {why}")
    assert "nncf_fp32_agreement" in m and "nncf_accuracy" in m  # the refused IR's figures
    assert m["openvino"] == "shipped" and not _nncf_made(report.path)
    assert f"INT8 {m['openvino_int8']}" in (report.path / "MODEL_CARD.md").read_text()
    with edgemed.load(report.path, backend="openvino") as served:
        assert served.check_golden() == []


# nncf blocked as `pip uninstall nncf` would leave it: importing it fails, find_spec says so.
_WITHOUT_NNCF = """
import json, sys
sys.modules["nncf"] = None
from pathlib import Path
from edgemed.bundle import build_bundle, load_spec
work = Path(sys.argv[1])
report = build_bundle(load_spec(Path(sys.argv[2])), Path(sys.argv[3]), evaluation=work / "eval",
                      calibration=work / "calib", out=work / "no-nncf")
print(json.dumps(report.metrics))
"""


def test_without_nncf_the_converted_qdq_graph_ships(work: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT_NNCF, str(work), str(_spec(work, "no-nncf", None)), str(CLS)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout.splitlines()[-1])
    assert m["openvino_int8"] == "converted from ONNX QDQ: NNCF is not installed"
    assert m["openvino"] == "shipped" and not _nncf_made(work / "no-nncf")
    assert "openvino_fp32_agreement" in m and "nncf_fp32_agreement" not in m
    with edgemed.load(work / "no-nncf", backend="openvino") as served:
        assert served.check_golden() == []
