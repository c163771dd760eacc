"""`edgemed bundle build` of a multi-label image classifier through the command line: the
manifest's ``multi_label: true`` and per-class ``thresholds``, the evaluation folder's
``labels.csv``, macro F1 and per-class FP32-vs-INT8 agreement and F1 in the report and the
card, and a result listing every class over its threshold with its score (more than ``top_k``).

The network is made here (no real multi-label network with weights is at hand): sigmoid of
10 x (channel mean - 0.5), one class per colour channel, so a colour is "present" where its
channel is bright. The truths are the colours drawn, so FP32 scores F1 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import product
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import edgemed
from edgemed.contracts import check_result_body
from edgemed.results import ImageClassification

onnx = pytest.importorskip("onnx")
LABELS = ["blue", "green", "red"]  # the model's channels: BGR
SPEC: dict[str, Any] = {
    "id": "colours",
    "version": "1.0.0",
    "task": "image-classification",
    "summary": "Which colour channels are bright (a made-up multi-label test network)",
    "license": "MIT",
    "source": {"upstream": "made by tests/integration/test_bundle_multilabel.py"},
    "preprocess": {
        "size": [8, 8], "fit": "stretch", "interpolation": "area", "channel_order": "bgr",
        "layout": "nchw", "scale": 1 / 255, "mean": [0, 0, 0], "std": [1, 1, 1],
    },
    "postprocess": {
        "labels": LABELS, "scores": "probabilities", "multi_label": True, "top_k": 1,
        "min_confidence": 0.0, "thresholds": {"red": 0.6},
    },
    "gate": {"min_agreement": 0.95, "max_metric_drop": 0.05},
    "golden_count": 3,
    "card": {"intended_use": "Test bundle: bright colour channels of synthetic images."},
}  # fmt: skip


def model(path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array((10 * np.eye(3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.full(3, -5.0, np.float32), "b")
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w", "b"], ["logits"], transB=1),
        helper.make_node("Sigmoid", ["logits"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes, "colours",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 3])],
        initializer=[weight, bias],
    )  # fmt: skip
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.save(proto, str(path))


def colour_image(rng: np.random.Generator, present: tuple[int, ...]) -> np.ndarray:
    """16 x 16 BGR: each channel ~225 where its class is present, ~30 where not."""
    base = np.array([225 if p else 30 for p in present], np.float64)
    noise = rng.normal(0, 12, (16, 16, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_folders(root: Path) -> None:
    rng = np.random.default_rng(3)
    rows = ["image,red,green,blue"]  # any label order
    for i, present in enumerate(list(product((0, 1), repeat=3)) * 3):
        name = f"set{i % 2}/img{i:02d}.png"
        (root / "eval" / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "eval" / name), colour_image(rng, present))
        blue, green, red = present
        rows.append(f"{name},{red},{green},{blue}")
    (root / "eval" / "labels.csv").write_text("\n".join(rows) + "\n")
    (root / "calib").mkdir()
    for i, present in enumerate(list(product((0, 1), repeat=3)) * 2):
        cv2.imwrite(str(root / "calib" / f"c{i:02d}.png"), colour_image(rng, present))


def edgemed_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgemed.cli", *map(str, args)],
        capture_output=True, text=True, timeout=300, cwd=cwd, env=dict(os.environ),
    )  # fmt: skip


def build(work: Path, out: str, evaluation: str = "eval") -> subprocess.CompletedProcess[str]:
    return edgemed_cli(
        "bundle", "build", "spec.json", "--onnx", "colours.onnx", "--evaluation", evaluation,
        "--calibration", "calib", "--out", out, "--json", cwd=work,
    )  # fmt: skip


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("multilabel")
    model(root / "colours.onnx")
    write_folders(root)
    (root / "spec.json").write_text(json.dumps(SPEC))
    return root


@pytest.fixture(scope="module")
def built(work: Path) -> dict[str, Any]:
    proc = build(work, "colours")
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    report["path"] = str(work / report["path"])
    return report


def test_the_build_reports_macro_f1_and_per_class_figures(built: dict[str, Any]) -> None:
    assert built["eval_samples"] == 24 and built["fp32_macro_f1"] == 1.0
    assert built["shipped_precision"] == "int8", built["gate"]
    assert built["int8_macro_f1"] >= 0.95 and built["fp32_int8_agreement"] >= 0.95
    for label in LABELS:
        assert built[f"fp32_f1[{label}]"] == 1.0
        assert 0.9 <= built[f"agreement[{label}]"] <= 1.0
        assert 0.9 <= built[f"int8_f1[{label}]"] <= 1.0
    assert "accuracy" not in json.dumps(built)
    card = (Path(built["path"]) / "MODEL_CARD.md").read_text()
    assert f"| macro_f1 | 1.0 | {built['int8_macro_f1']} |" in card
    assert f"| red | 1.0 | {built['int8_f1[red]']} | {built['agreement[red]']} |" in card
    manifest = json.loads((Path(built["path"]) / "manifest.json").read_text())
    assert manifest["postprocess"]["multi_label"] is True
    assert manifest["postprocess"]["thresholds"] == {"red": 0.6}


def test_a_result_lists_every_class_over_its_threshold(built: dict[str, Any]) -> None:
    rng = np.random.default_rng(9)
    with edgemed.load(Path(built["path"]), threads=1) as pipe:
        assert pipe.check_golden() == []
        result = pipe(colour_image(rng, (0, 1, 1)))  # green and red
        none = pipe(colour_image(rng, (0, 0, 0)))
    assert isinstance(result, ImageClassification) and result.multi_label
    assert sorted(result.positive) == ["green", "red"]
    scores = dict(result.top)  # top_k is 1; both positives still come with their scores
    assert set(scores) == {"green", "red"} and min(scores.values()) > 0.9
    check_result_body(result.kind, result.body())
    assert isinstance(none, ImageClassification) and none.positive == () and none.label is None


def test_a_bad_labels_csv_stops_the_build(work: Path) -> None:
    bad = work / "bad_eval"
    bad.mkdir()
    for path in (work / "eval").rglob("*.png"):
        target = bad / path.relative_to(work / "eval")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    lines = (work / "eval" / "labels.csv").read_text().splitlines()
    (bad / "labels.csv").write_text("\n".join(lines[:-1]) + "\n")  # one image without a row
    proc = build(work, "bad", "bad_eval")
    assert proc.returncode == 10 and "without a row in labels.csv" in proc.stderr
    (bad / "labels.csv").write_text("image,red,green\n")
    proc = build(work, "bad", "bad_eval")
    assert proc.returncode == 10 and "header must be 'image' then every label" in proc.stderr
