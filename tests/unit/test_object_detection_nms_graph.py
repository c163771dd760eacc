"""Layout ``detections`` on a real graph with NMS inside, through ONNX Runtime: a network made
here with ``onnx.helper`` whose scores and boxes come from convolutions over the image, then
ONNX's own ``NonMaxSuppression`` op, then Gather/Concat into ``[1, k, 6]`` rows of ``x1, y1,
x2, y2, score, class`` (what YOLOv10 / ultralytics ``end2end`` exports give). The SDK's boxes
are checked against a reference computed here in NumPy alone (preprocessing, convolution,
greedy per-class NMS, thresholds, letterbox mapping, clipping); then ``edgemed bundle build``
builds it from the command line (static INT8, gated), ``bundle verify`` checks it and
``edgemed.load`` serves it.

The network, over a 64 x 64 RGB input in [0, 1], per 8 x 8 cell (stride 8, 64 cells): class
scores ``dark`` = sigmoid(12 (0.5 - mean grey)) and ``red`` = sigmoid(12 (mean R - mean G -
0.3)); a box centred on the cell, of half-side 4 + 12 sigmoid(12 (mean B - 0.95)) (the
cell itself, except in bluish cells, whose larger boxes overlap their neighbours': NMS has
work). NMS: per class, score > 0.25, IoU > 0.4 suppressed, at most 10 per class.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import edgemed
from edgemed.results import ObjectDetection, Provenance, Timings
from edgemed.tasks import find_task

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")

PROVENANCE = Provenance(
    model_id="nms-inside", model_version="1.0.0", model_sha256="0" * 64, backend="onnxruntime",
    device="cpu", precision="fp32", input_sha256="0" * 64, input_kind="image",
    timings=Timings(preprocess_ms=1, inference_ms=1, postprocess_ms=1), edgemed_version="0",
    created_at=0.0,
)  # fmt: skip
LABELS = ["dark", "red"]
K = 12.0
NMS = {"max": 10, "iou": 0.4, "score": 0.25}
POST: dict[str, Any] = {
    "labels": LABELS, "layout": "detections", "score_threshold": 0.5,
    "thresholds": {"red": 0.6}, "max_detections": 50,
}  # fmt: skip
PRE: dict[str, Any] = {
    "size": [64, 64], "fit": "letterbox", "interpolation": "area", "channel_order": "rgb",
    "layout": "nchw", "scale": 1 / 255, "mean": [0, 0, 0], "std": [1, 1, 1], "pad_value": 255,
}  # fmt: skip


def weights() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Score convolution (2, 3, 8, 8) and bias; box-size convolution (1, 3, 8, 8) and bias."""
    ws = np.zeros((2, 3, 8, 8), np.float32)
    ws[0] = -K / (3 * 64)
    ws[1, 0], ws[1, 1] = K / 64, -K / 64
    wh = np.zeros((1, 3, 8, 8), np.float32)
    wh[0, 2] = K / 64
    return ws, np.array([K * 0.5, -K * 0.3], np.float32), wh, np.array([-K * 0.95], np.float32)


def centres() -> np.ndarray:
    gy, gx = np.divmod(np.arange(64), 8)
    return np.stack([(gx + 0.5) * 8, (gy + 0.5) * 8], axis=1).astype(np.float32)


def constants() -> dict[str, Any]:
    ws, bs, wh, bh = weights()
    return {
        "ws": ws, "bs": bs, "wh": wh, "bh": bh, "twelve": np.float32(12), "four": np.float32(4),
        "centres": centres()[None], "s_shape": np.array([1, 2, 64], np.int64),
        "h_shape": np.array([1, 64, 1], np.int64), "b_shape": np.array([64, 4], np.int64),
        "flat": np.array([128], np.int64), "n": np.array([64], np.int64),
        "max": np.array([NMS["max"]], np.int64), "iou": np.array([NMS["iou"]], np.float32),
        "thr": np.array([NMS["score"]], np.float32), "one": np.int64(1), "two": np.int64(2),
        "ax0": np.array([0], np.int64), "ax1": np.array([1], np.int64),
    }  # fmt: skip


def model(path: Path, nms: bool = True) -> None:
    """The network; ``nms=False``: cut before the NMS, outputs ``boxes`` and ``scores``."""
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node
    nodes = [
        node("Conv", ["image", "ws", "bs"], ["logits"], strides=[8, 8]),
        node("Sigmoid", ["logits"], ["probs"]),
        node("Reshape", ["probs", "s_shape"], ["scores"]),  # [1, classes, cells]
        node("Conv", ["image", "wh", "bh"], ["h_logit"], strides=[8, 8]),
        node("Sigmoid", ["h_logit"], ["h_sig"]),
        node("Mul", ["h_sig", "twelve"], ["h_12"]),
        node("Add", ["h_12", "four"], ["half_map"]),
        node("Reshape", ["half_map", "h_shape"], ["half"]),
        node("Sub", ["centres", "half"], ["lo"]),
        node("Add", ["centres", "half"], ["hi"]),
        node("Concat", ["lo", "hi"], ["boxes"], axis=2),  # [1, cells, 4] x1, y1, x2, y2
        # center_point_box 0 reads y1, x1, y2, x2; IoU is the same with x and y swapped
        node("NonMaxSuppression", ["boxes", "scores", "max", "iou", "thr"], ["sel"]),
        node("Gather", ["sel", "one"], ["cls"], axis=1),
        node("Gather", ["sel", "two"], ["cell"], axis=1),
        node("Reshape", ["boxes", "b_shape"], ["boxes2"]),
        node("Gather", ["boxes2", "cell"], ["k_boxes"], axis=0),
        node("Mul", ["cls", "n"], ["cls_n"]),
        node("Add", ["cls_n", "cell"], ["flat_i"]),
        node("Reshape", ["scores", "flat"], ["scores1"]),
        node("Gather", ["scores1", "flat_i"], ["k_scores"], axis=0),
        node("Unsqueeze", ["k_scores", "ax1"], ["k_scores1"]),
        node("Cast", ["cls"], ["cls_f"], to=TensorProto.FLOAT),
        node("Unsqueeze", ["cls_f", "ax1"], ["cls_f1"]),
        node("Concat", ["k_boxes", "k_scores1", "cls_f1"], ["rows"], axis=1),
        node("Unsqueeze", ["rows", "ax0"], ["detections"]),
    ]
    out: dict[str, list[int | str]] = (
        {"detections": [1, "k", 6]} if nms else {"boxes": [1, 64, 4], "scores": [1, 2, 64]}
    )
    nodes = nodes if nms else nodes[:11]
    used = {name for n in nodes for name in n.input}
    graph = helper.make_graph(
        nodes, "nms-inside",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in out.items()],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in constants().items() if k in used],
    )  # fmt: skip
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1 / (1 + np.exp(-x)))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return float(w * h / union)


def model_input(image: np.ndarray) -> np.ndarray:
    """(3, 64, 64) of a 64 x 128 BGR image made of 2 x 2 blocks (the area downscale exact)."""
    small = image.reshape(32, 2, 64, 2, 3).mean(axis=(1, 3)) / 255
    tensor = np.ones((3, 64, 64))  # white padding
    tensor[:, 16:48] = small[..., ::-1].transpose(2, 0, 1)  # RGB; rows 16..48, letterboxed
    return tensor


def reference(image: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    """What the SDK must report for ``image``, computed without the SDK; and how many boxes
    clearing the SDK's thresholds NMS removed."""
    ws, bs, wh, bh = weights()
    patches = model_input(image).reshape(3, 8, 8, 8, 8)  # channel, cell row, row, cell col, col
    scores = sigmoid(np.einsum("cyaxb,ocab->oyx", patches, ws) + bs[:, None, None])
    scores = scores.reshape(2, 64)
    half = 4 + 12 * sigmoid(np.einsum("cyaxb,ocab->oyx", patches, wh) + bh[:, None, None])
    boxes = np.concatenate([centres() - half.reshape(64, 1), centres() + half.reshape(64, 1)], 1)
    thresholds = np.array([POST["score_threshold"], POST["thresholds"]["red"]])
    found, removed = [], 0
    for c in range(2):
        kept: list[int] = []
        for i in np.argsort(-scores[c], kind="stable"):
            if scores[c, i] <= NMS["score"] or len(kept) == NMS["max"]:
                break
            if all(iou(boxes[i], boxes[j]) <= NMS["iou"] for j in kept):
                kept.append(int(i))
            elif scores[c, i] >= thresholds[c]:
                removed += 1
        found += [(scores[c, i], c, boxes[i]) for i in kept if scores[c, i] >= thresholds[c]]
    found.sort(key=lambda f: -f[0])
    mapped = np.array([b for _, _, b in found]).reshape(-1, 4) - [0, 16, 0, 16]
    mapped = np.clip(mapped * 2, 0, [128, 64, 128, 64])
    area = (mapped[:, 2] > mapped[:, 0]) & (mapped[:, 3] > mapped[:, 1])  # not all padding
    labels = [LABELS[c] for (_, c, _), a in zip(found, area, strict=True) if a]
    return labels, np.array([s for s, _, _ in found])[area], mapped[area], removed


def blobs(seed: int) -> np.ndarray:
    """A light, noisy 64 x 128 image of 2 x 2 blocks with 3-7 rectangles anywhere (6-19 x 8-29 blocks), dark grey,
    red, blue or magenta (BGR)."""
    rng = np.random.default_rng(seed)
    small = np.clip(rng.normal(215, 10, (32, 64, 3)), 0, 255)
    colours = [(40, 40, 40), (90, 90, 250), (250, 30, 30), (250, 40, 250)]
    for _ in range(int(rng.integers(3, 8))):
        y, x = int(rng.integers(0, 28)), int(rng.integers(0, 58))
        h, w = int(rng.integers(6, 20)), int(rng.integers(8, 30))
        block = small[y : y + h, x : x + w]  # noise on every pixel: no two cells tie
        block[:] = colours[int(rng.integers(0, 4))] + rng.normal(0, 6, block.shape)
    return np.repeat(np.repeat(np.clip(small, 0, 255).astype(np.uint8), 2, 0), 2, 1)


def manifest() -> Any:
    from edgemed.manifest import parse_manifest

    data = {
        "schema": "edgemed.manifest/1", "id": "nms-inside", "version": "1.0.0",
        "task": "object-detection", "summary": "test", "license": "MIT", "medical_device": False,
        "source": {"package": "tests", "upstream": "none", "recipe": "none"},
        "artifacts": {role: {"path": f"{role}.bin", "sha256": "0" * 64}
                      for role in ("model", "golden_inputs", "golden_outputs", "model_card")},
        "backends": ["onnxruntime"],
        "inputs": [{"name": "image", "dtype": "float32", "shape": [1, 3, 64, 64]}],
        "outputs": [{"name": "detections", "dtype": "float32", "shape": [1, "k", 6]}],
        "preprocess": PRE, "postprocess": POST,
        "golden": {"max_abs_diff": 1e-3, "min_label_agreement": 1.0},
    }  # fmt: skip
    return parse_manifest(json.loads(json.dumps(data)), Path("."))


def test_the_sdk_reads_a_graph_with_nms_inside_as_numpy_does(tmp_path: Path) -> None:
    model(tmp_path / "nms.onnx")
    session = ort.InferenceSession(str(tmp_path / "nms.onnx"), providers=["CPUExecutionProvider"])
    spec = find_task("object-detection")
    assert spec is not None
    pre, post = spec.processors(manifest(), lambda role: pytest.fail(role))
    removed_total, boxes_total = 0, 0
    for seed in range(12):
        image = blobs(seed)
        labels, scores, boxes, removed = reference(image)
        prepared = pre(image)
        np.testing.assert_allclose(prepared.tensors["image"][0], model_input(image), atol=1e-6)
        (rows,) = session.run(None, dict(prepared.tensors))
        assert rows.shape[0] == 1 and rows.shape[2] == 6
        result = post({"detections": rows}, prepared.context)(provenance=PROVENANCE)
        assert isinstance(result, ObjectDetection)
        assert [d.label for d in result.detections] == labels, seed
        np.testing.assert_allclose(result.scores, scores, atol=1e-5, err_msg=str(seed))
        np.testing.assert_allclose(result.boxes, boxes, atol=1e-3, err_msg=str(seed))
        assert (result.abstained is None) == bool(labels)
        removed_total, boxes_total = removed_total + removed, boxes_total + len(labels)
    # measured: 12 boxes over their thresholds removed by the graph's NMS, 68 reported
    assert removed_total >= 8 and boxes_total >= 40, (removed_total, boxes_total)


CELL = 16  # source pixels per model cell in the 128 x 128 bundle scenes


def squares(rng: np.random.Generator) -> tuple[np.ndarray, set[tuple[str, int, int, int, int]]]:
    """A light, noisy 128 x 128 image with 1-4 dark or red squares on whole cells (their boxes
    the cells themselves: no bluish cell, no overlap), and the squares' boxes."""
    image = np.clip(rng.normal(225, 8, (128, 128, 3)), 0, 255).astype(np.uint8)
    truth = set()
    for cell in rng.choice(64, int(rng.integers(1, 5)), replace=False):
        y, x = divmod(int(cell), 8)
        label = LABELS[int(rng.integers(0, 2))]
        image[y * CELL : (y + 1) * CELL, x * CELL : (x + 1) * CELL] = (
            (40, 40, 40) if label == "dark" else (115, 115, 255)
        )
        truth.add((label, x * CELL, y * CELL, (x + 1) * CELL, (y + 1) * CELL))
    return image, truth


def write_squares(folder: Path, n: int, seed: int, truths: bool = True) -> None:
    rng = np.random.default_rng(seed)
    images = folder / "images" if truths else folder
    images.mkdir(parents=True)
    rows: list[list[Any]] = [["image", "label", "x1", "y1", "x2", "y2"]]
    for i in range(n):
        image, truth = squares(rng)
        cv2.imwrite(str(images / f"s{i:02d}.png"), image)
        rows += [[f"s{i:02d}.png", *box] for box in sorted(truth)]
    if truths:
        with (folder / "boxes.csv").open("w", newline="") as f:
            csv.writer(f).writerows(rows)


def edgemed_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgemed.cli", *map(str, args)],
        capture_output=True, text=True, timeout=300, cwd=cwd, env=dict(os.environ),
    )  # fmt: skip


def build(work: Path, spec: dict[str, Any], onnx_file: str, out: str, *extra: str) -> Any:
    """``edgemed bundle build`` from the command line; the JSON report, or the process."""
    spec = {
        "id": "nms-inside", "version": "1.0.0", "task": "object-detection",
        "summary": "Dark and red squares (a made-up detector with NMS inside its graph)",
        "license": "MIT", "source": {"upstream": "made by " + Path(__file__).name},
        "preprocess": PRE, "postprocess": POST, "golden_count": 3, "openvino": False,
        "card": {"intended_use": "Test bundle: squares on synthetic images."}, **spec,
    }  # fmt: skip
    (work / f"{out}.json").write_text(json.dumps(spec))
    return edgemed_cli(
        "bundle", "build", f"{out}.json", "--onnx", onnx_file, "--evaluation", "eval",
        "--calibration", "calib", "--out", out, "--json", *extra, cwd=work,
    )  # fmt: skip


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nms-inside")
    model(root / "nms.onnx")
    model(root / "no-nms.onnx", nms=False)
    write_squares(root / "eval", 12, seed=1)
    write_squares(root / "calib", 12, seed=2, truths=False)
    return root


def found(result: object) -> set[tuple[str, int, int, int, int]]:
    assert isinstance(result, ObjectDetection)
    return {(d.label, *(round(v) for v in d.box)) for d in result.detections}  # type: ignore[misc]


def test_bundle_build_verify_and_load_a_graph_with_nms_inside(work: Path) -> None:
    built = build(work, {"quantization": "none"}, "nms.onnx", "fp32")
    assert built.returncode == 0, built.stderr
    report = json.loads(built.stdout)
    assert report["shipped_precision"] == "fp32" and report["fp32_map50"] == 1.0, report
    assert "fp32_map50_95" not in report  # only INT8 builds measure it (per_class)
    manifest = json.loads((work / "fp32" / "manifest.json").read_text())
    assert manifest["postprocess"]["layout"] == "detections"
    assert manifest["outputs"] == [{"name": "detections", "dtype": "float32", "shape": [1, "k", 6]}]
    verified = edgemed_cli("bundle", "verify", "fp32", "--json", cwd=work)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["golden"] == "passed"
    with edgemed.load(work / "fp32", backend="onnxruntime", threads=1) as pipe:
        image, truth = squares(np.random.default_rng(99))  # a scene the build never saw
        assert found(pipe(image)) == truth


def test_static_int8_of_a_graph_with_nms_inside_never_ships_wrong_boxes(work: Path) -> None:
    """ONNX Runtime's static quantiser puts one QDQ scale on the gathered rows (about 0.25:
    boxes in pixels and scores share it), so the INT8 graph's class ids and scores are not
    what they say: the layout's checks refuse them, and the builder treats that as INT8
    failing its gate (exit 11, nothing written; FP32 with --fp32-if-gate-fails) instead of a
    bundle with wrong boxes. Should the quantiser leave post-NMS nodes in float, the build
    ships INT8, and its boxes must then be right."""
    built = build(work, {}, "nms.onnx", "int8")
    if built.returncode:
        assert built.returncode == 11, built.stderr
        assert "INT8 refused: its outputs fail the task's checks" in built.stderr
        assert re.search(r"is not an index of the 2|is outside \[0, 1\]", built.stderr)
        assert not (work / "int8").exists()
        shipped = build(work, {}, "nms.onnx", "int8", "--fp32-if-gate-fails")
        assert shipped.returncode == 0, shipped.stderr
        manifest = json.loads((work / "int8" / "manifest.json").read_text())
        assert manifest["metrics"]["shipped_precision"] == "fp32"
        assert manifest["metrics"]["int8_refused"] == "ModelError"
    with edgemed.load(work / "int8", backend="onnxruntime", threads=1) as pipe:
        image, truth = squares(np.random.default_rng(99))
        assert found(pipe(image)) == truth


def test_the_same_network_without_nms_reports_map50_95_beside_map50(work: Path) -> None:
    """Cut before its NMS (layout ``boxes_scores``, the SDK's NMS at the graph's IoU): static
    INT8 builds, and the report and manifest carry ``fp32_map50_95`` and ``int8_map50_95``."""
    post = {**POST, "layout": "boxes_scores", "iou_threshold": NMS["iou"],
            "outputs": {"boxes": "boxes", "scores": "scores"}}  # fmt: skip
    built = build(work, {"postprocess": post}, "no-nms.onnx", "no-nms")
    assert built.returncode == 0, built.stderr
    report = json.loads(built.stdout)
    assert report["shipped_precision"] == "int8", report["gate"]
    assert report["fp32_map50"] == report["fp32_map50_95"] == 1.0, report  # boxes = cells
    # A sanity floor, not a gate: 0.892 on an AVX2 machine without VNNI (7-bit weights).
    assert 0.85 <= report["int8_map50_95"] <= report["int8_map50"], report
    metrics = json.loads((work / "no-nms" / "manifest.json").read_text())["metrics"]
    assert metrics["int8_map50_95"] == report["int8_map50_95"]
    card = (work / "no-nms" / "MODEL_CARD.md").read_text()
    assert f"| map50_95 | 1.0 | {report['int8_map50_95']} |" in card
