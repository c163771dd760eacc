"""`edgemed bundle build | verify | inspect` through the command line, as a device maker runs
it, on a real network with its real weights: PaddleOCR's text-direction classifier (mobile
v2.0, from the rapidocr-onnxruntime package), evaluated and calibrated on text lines drawn
by tests/text_lines.py (synthetic, labelled by construction).

The gate in these specs is looser than the default (0.98 / 0.01): the evaluation set here is
small (120 lines), and the test is about what the builder does with a gate, not about this
classifier's INT8 figures (the build prints them; docs/bring-your-own-model.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import edgemed
from edgemed.contracts import check_result_body

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from text_lines import text_line, write_set

rapidocr = pytest.importorskip("rapidocr_onnxruntime")
pytest.importorskip("onnx")
CLS = Path(rapidocr.__file__).parent / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"
SPEC: dict[str, Any] = {
    "id": "text-direction",
    "version": "1.0.0",
    "task": "image-classification",
    "summary": "Is a text line upright or upside down (PP-OCR mobile v2.0 direction classifier)",
    "license": "Apache-2.0",
    "source": {"upstream": "PaddleOCR ch_ppocr_mobile_v2.0_cls, ONNX from rapidocr-onnxruntime"},
    "preprocess": {
        "size": [48, 192], "fit": "stretch", "interpolation": "bilinear",
        "channel_order": "bgr", "layout": "nchw", "scale": 1 / 255,
        "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
    },
    "postprocess": {
        "labels_file": "labels.txt", "scores": "probabilities", "multi_label": False,
        "top_k": 2, "min_confidence": 0.0,
    },
    "gate": {"min_agreement": 0.9, "max_metric_drop": 0.05},
    "card": {"intended_use": "Turning text-line crops upright before recognition (an OCR step)."},
}  # fmt: skip


def edgemed_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgemed.cli", *map(str, args)],
        capture_output=True, text=True, timeout=600, cwd=cwd, env=dict(os.environ),
    )  # fmt: skip


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("byom")
    write_set(root / "eval", 60, seed=1)
    write_set(root / "calib", 50, seed=2, labelled=False)
    (root / "labels.txt").write_text("0\n180\n")
    (root / "spec.json").write_text(json.dumps(SPEC))
    return root


def build(work: Path, out: str, *extra: str | Path, spec: str = "spec.json") -> Any:
    return edgemed_cli(
        "bundle", "build", spec, "--onnx", CLS, "--evaluation", "eval",
        "--calibration", "calib", "--out", out, "--json", *extra, cwd=work,
    )  # fmt: skip


@pytest.fixture(scope="module")
def bundle(work: Path) -> Path:
    proc = build(work, "text-direction")
    assert proc.returncode == 0, proc.stderr
    return work / "text-direction"


def test_a_real_classifier_builds_gates_and_serves(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    metrics = manifest["metrics"]
    assert metrics["shipped_precision"] == "int8" and metrics["gate"].startswith("INT8 passed")
    assert metrics["eval_samples"] == 120 and metrics["calibration_samples"] == 100
    assert metrics["fp32_int8_agreement"] >= 0.9 and metrics["fp32_accuracy"] > 0.6
    assert manifest["postprocess"]["labels"] == ["0", "180"]  # from labels_file
    assert metrics["openvino"] == "shipped" and manifest["backends"] == ["onnxruntime", "openvino"]
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "Not a medical device" in card and "TO COMPLETE" in card  # training data unknown
    assert f"| accuracy | {metrics['fp32_accuracy']} | {metrics['int8_accuracy']} |" in card
    with edgemed.load(bundle) as classifier:  # sha256 + golden vectors, as a device does
        line = text_line(np.random.default_rng(99))
        upright, turned = classifier(line), classifier(cv2.rotate(line, cv2.ROTATE_180))
        assert classifier.manifest.precision == "int8"
    check_result_body(upright.kind, upright.body())
    with edgemed.load(bundle, backend="openvino") as on_openvino:  # its own golden check
        assert on_openvino.backend.name == "openvino"
    if upright.label == "0":  # where it reads a line right, half a turn reads the other way
        assert turned.label == "180"


def test_verify_and_inspect(bundle: Path, work: Path) -> None:
    verified = edgemed_cli("bundle", "verify", bundle, "--json", cwd=work)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["golden"] == "passed"
    info = json.loads(edgemed_cli("bundle", "inspect", bundle, "--json", cwd=work).stdout)
    assert info["task"] == "image-classification" and info["precision"] == "int8"
    copy = work / "tampered"
    shutil.copytree(bundle, copy)
    (copy / "golden" / "outputs.npz").write_bytes(b"tampered")
    tampered = edgemed_cli("bundle", "verify", copy, cwd=work)
    assert tampered.returncode == 5 and "IntegrityError" in tampered.stderr


def test_the_same_inputs_give_a_byte_identical_bundle(work: Path) -> None:
    for out in ("again-1", "again-2"):
        assert build(work, out).returncode == 0
    files = sorted(p.relative_to(work / "again-1") for p in (work / "again-1").rglob("*"))
    assert files == sorted(p.relative_to(work / "again-2") for p in (work / "again-2").rglob("*"))
    for rel in files:
        if (work / "again-1" / rel).is_file():
            assert (work / "again-1" / rel).read_bytes() == (work / "again-2" / rel).read_bytes(), (
                rel
            )


def test_a_blank_calibration_set_is_refused_int8(work: Path) -> None:
    black = work / "black"
    black.mkdir()
    for i in range(20):
        cv2.imwrite(str(black / f"{i}.png"), np.zeros((48, 192, 3), np.uint8))
    refused = edgemed_cli(
        "bundle", "build", "spec.json", "--onnx", CLS, "--evaluation", "eval",
        "--calibration", "black", "--out", "black-bundle", cwd=work,
    )  # fmt: skip
    assert refused.returncode == 11, refused.stderr
    assert "INT8 refused" in refused.stderr and "agrees with FP32 on" in refused.stderr
    assert not (work / "black-bundle").exists()
    assert not list(work.glob(".black-bundle*"))  # nothing half-written left behind
    shipped = edgemed_cli(
        "bundle", "build", "spec.json", "--onnx", CLS, "--evaluation", "eval",
        "--calibration", "black", "--out", "black-bundle", "--fp32-if-gate-fails", cwd=work,
    )  # fmt: skip
    assert shipped.returncode == 0, shipped.stderr
    manifest = json.loads((work / "black-bundle" / "manifest.json").read_text())
    assert manifest["metrics"]["shipped_precision"] == "fp32"
    assert "FP32 shipped instead" in (work / "black-bundle" / "MODEL_CARD.md").read_text()


def _spec(work: Path, name: str, **changes: Any) -> str:
    spec = json.loads(json.dumps(SPEC))
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            spec[section][field] = value
        else:
            spec[section] = value
    (work / name).write_text(json.dumps(spec))
    return name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"postprocess__labels_file": "missing.txt"}, "labels_file: cannot read"),
        ({"preprocess__mean": [0.5]}, "mean"),
        ({"postprocess__labels_file": "three.txt"}, "one score per label"),
        ({"task": "no-such-task"}, "not installed"),
        ({"task": "ecg-sleep-staging"}, "cannot be built"),
        ({"quantization": "int4"}, "quantization"),
    ],
)
def test_bad_specs_exit_10_saying_why(work: Path, change: dict[str, Any], message: str) -> None:
    (work / "three.txt").write_text("0\n90\n180\n")
    proc = build(work, "bad", spec=_spec(work, "bad.json", **change))
    assert proc.returncode == 10, proc.stderr
    assert "BuildError" in proc.stderr and message in proc.stderr, proc.stderr


def test_bad_models_and_folders_exit_10_saying_why(work: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    (work / "junk.onnx").write_bytes(b"this is not a model")
    junk = edgemed_cli("bundle", "build", "spec.json", "--onnx", "junk.onnx",
                       "--evaluation", "eval", "--out", "x", cwd=work)  # fmt: skip
    assert junk.returncode == 10 and "not a valid ONNX model" in junk.stderr
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    )  # fmt: skip
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)]), work / "old.onnx"
    )
    old = edgemed_cli("bundle", "build", "spec.json", "--onnx", "old.onnx",
                      "--evaluation", "eval", "--out", "x", cwd=work)  # fmt: skip
    assert old.returncode == 10 and "opset 9 is outside 10-21" in old.stderr
    wrong = work / "wrong-labels"
    write_set(wrong, 2, seed=5)
    (wrong / "0").rename(wrong / "upright")
    bad_eval = edgemed_cli("bundle", "build", "spec.json", "--onnx", CLS, "--evaluation",
                           "wrong-labels", "--calibration", "calib", "--out", "x", cwd=work)  # fmt: skip
    assert bad_eval.returncode == 10 and "['upright'] are not labels" in bad_eval.stderr
    exists = build(work, "text-direction")
    assert exists.returncode == 10 and "pass --force" in exists.stderr


def test_a_built_bundle_runs_by_id_from_edgemed_models_path(bundle: Path, work: Path) -> None:
    """As the README says: the bundle's parent folder on EDGEMED_MODELS_PATH, then by id."""
    line = text_line(np.random.default_rng(3))
    cv2.imwrite(str(work / "line.png"), line)
    env = dict(os.environ, EDGEMED_MODELS_PATH=str(bundle.parent))
    proc = subprocess.run(
        [sys.executable, "-m", "edgemed.cli", "run", "text-direction", "@line.png"],
        capture_output=True, text=True, timeout=120, cwd=work, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["label"] in ("0", "180") and set(summary["top"]) == {"0", "180"}
