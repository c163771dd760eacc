"""Layout ``detections`` (NMS already in the graph) without a model: final rows in one tensor
(``[1, k, 6]``, ``[k, 6]``, 7 columns with a batch index in any declared order) or in
separate boxes / scores / classes / count outputs, turned into boxes in the input's pixels
(letterbox, clipping), thresholded per class, padding dropped, never suppressed again; and
what cannot be honoured refused: manifest keys (ManifestError) and broken rows (ModelError).
Through ONNX Runtime with a real NonMaxSuppression op: test_object_detection_nms_graph.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgemed.contracts import check_result_body
from edgemed.errors import ManifestError, ModelError
from edgemed.manifest import Manifest, parse_manifest
from edgemed.results import ObjectDetection, Provenance, Timings
from edgemed.tasks import find_task

PRE: dict[str, Any] = {
    "size": [64, 64], "fit": "letterbox", "interpolation": "bilinear", "channel_order": "bgr",
    "layout": "nchw", "scale": 1 / 255, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
}  # fmt: skip
ONE = [{"name": "dets", "dtype": "float32", "shape": [1, "k", 6]}]
PROVENANCE = Provenance(
    model_id="det-test", model_version="1.0.0", model_sha256="0" * 64, backend="onnxruntime",
    device="cpu", precision="fp32", input_sha256="0" * 64, input_kind="image",
    timings=Timings(preprocess_ms=1, inference_ms=1, postprocess_ms=1), edgemed_version="0",
    created_at=0.0,
)  # fmt: skip


def manifest(post: dict[str, Any], outputs: list[dict[str, Any]] = ONE) -> Manifest:
    data = {
        "schema": "edgemed.manifest/1", "id": "det-test", "version": "1.0.0",
        "task": "object-detection", "summary": "test", "license": "MIT", "medical_device": False,
        "source": {"package": "tests", "upstream": "none", "recipe": "none"},
        "artifacts": {
            role: {"path": f"{role}.bin", "sha256": "0" * 64}
            for role in ("model", "golden_inputs", "golden_outputs", "model_card")
        },
        "backends": ["onnxruntime"],
        "inputs": [{"name": "x", "dtype": "float32", "shape": [1, 3, 64, 64]}],
        "outputs": outputs, "preprocess": PRE,
        "postprocess": {"labels": ["cat", "dog"], "layout": "detections", **post},
        "golden": {"max_abs_diff": 1e-3, "min_label_agreement": 1.0},
    }  # fmt: skip
    return parse_manifest(json.loads(json.dumps(data)), Path("."))


def run(m: Manifest, image: np.ndarray, outputs: dict[str, Any]) -> ObjectDetection:
    spec = find_task("object-detection")
    assert spec is not None
    pre, post = spec.processors(m, lambda role: pytest.fail(f"no further model ({role})"))
    result = post(outputs, pre(image).context)(provenance=PROVENANCE)
    assert isinstance(result, ObjectDetection)
    check_result_body(result.kind, result.body())
    return result


WIDE = np.zeros((32, 64, 3), np.uint8)  # letterboxed: scale 1, rows 16..48 of the model's 64
ROWS = [  # x1, y1, x2, y2 (model pixels), score, class
    [8, 20, 24, 40, 0.90, 0],
    [9, 20, 25, 40, 0.80, 0],  # IoU 0.88 with the first, same class: kept (no NMS again)
    [40, 16, 70, 30, 0.70, 1],  # past the right edge: clipped to x 64
    [30, 30, 40, 40, 0.55, 0],  # under cat's own threshold 0.6
    [0, 0, 0, 0, 0.0, 0],  # padding: score 0
    [5, 5, 9, 9, 0.99, -1],  # padding: class -1
    [30, 0, 40, 10, 0.95, 1],  # wholly in the letterbox padding: vanishes
]


def test_final_rows_are_thresholded_mapped_and_clipped_but_not_suppressed() -> None:
    rows = np.array(ROWS, np.float32)
    result = run(manifest({"thresholds": {"cat": 0.6}}), WIDE, {"dets": rows[None]})
    assert [(d.label, round(d.score, 2)) for d in result.detections] == [
        ("cat", 0.9), ("cat", 0.8), ("dog", 0.7),
    ]  # fmt: skip
    np.testing.assert_allclose(result.boxes, [[8, 4, 24, 24], [9, 4, 25, 24], [40, 0, 64, 14]])
    assert result.abstained is None and not result.truncated
    flat = run(manifest({"thresholds": {"cat": 0.6}}), WIDE, {"dets": rows})  # [k, 6]
    np.testing.assert_array_equal(flat.boxes, result.boxes)
    capped = run(manifest({"max_detections": 2}), WIDE, {"dets": rows[None]})
    assert capped.truncated and [d.score for d in capped.detections] == pytest.approx([0.9, 0.8])


def test_declared_columns_batch_index_and_normalised_centre_boxes() -> None:
    """ONNX NonMaxSuppression then gathers: [batch, cx, cy, w, h, class, score], 0..1 units."""
    out = [{"name": "dets", "dtype": "float32", "shape": ["k", 7]}]
    post = {"columns": {"batch": 0, "box": 1, "class": 5, "score": 6}, "box_format": "cxcywh",
            "box_units": "normalized"}  # fmt: skip
    rows = np.array([[0, 0.25, 0.5, 0.25, 0.125, 1, 0.75], [0, 0.5, 0.5, 0.1, 0.1, -1, 0]])
    result = run(manifest(post, out), np.zeros((64, 64, 3), np.uint8), {"dets": rows})
    assert [d.label for d in result.detections] == ["dog"]
    np.testing.assert_allclose(result.boxes, [[8, 28, 24, 36]], atol=1e-5)


def test_separate_outputs_with_a_count_read_only_the_counted_rows() -> None:
    out = [
        {"name": "num", "dtype": "int32", "shape": [1, 1]},
        {"name": "boxes", "dtype": "float32", "shape": [1, 3, 4]},
        {"name": "scores", "dtype": "float32", "shape": [1, 3]},
        {"name": "labels", "dtype": "int64", "shape": [1, 3]},
    ]
    post = {"outputs": {"count": "num", "boxes": "boxes", "scores": "scores",
                        "classes": "labels"}}  # fmt: skip
    outputs = {
        "num": np.array([[2]], np.int32),
        "boxes": np.array([[[0, 16, 10, 26], [20, 20, 30, 30], [1, 1, 2, 2]]], np.float32),
        "scores": np.array([[0.6, 0.9, 0.8]], np.float32),
        "labels": np.array([[1, 0, 5]], np.int64),  # the third: past the count, never read
    }
    result = run(manifest(post, out), WIDE, outputs)
    assert [(d.label, round(d.score, 2)) for d in result.detections] == [("cat", 0.9), ("dog", 0.6)]
    np.testing.assert_allclose(result.boxes, [[20, 4, 30, 14], [0, 0, 10, 10]])
    with pytest.raises(ModelError, match="class id 5 is not an index"):
        run(manifest(post, out), WIDE, {**outputs, "num": np.array([[3]], np.int32)})
    with pytest.raises(ModelError, match="4 detections, but 3 rows"):
        run(manifest(post, out), WIDE, {**outputs, "num": np.array([4], np.int64)})


def test_no_box_says_why() -> None:
    empty = run(manifest({}), WIDE, {"dets": np.zeros((1, 0, 6), np.float32)})
    assert empty.detections == () and empty.abstained == "no box: the model gave no detections"
    low = np.array([[[1, 20, 9, 30, 0.3, 0], [1, 20, 9, 30, 0.45, 1]]], np.float32)
    assert run(manifest({}), WIDE, {"dets": low}).abstained == (
        "no box reached its class's score threshold (best detection: dog 0.450 < 0.5)"
    )
    padding_only = np.array([[[30, 0, 40, 10, 0.95, 1]]], np.float32)
    assert run(manifest({}), WIDE, {"dets": padding_only}).abstained == (
        "no box: the 1 that cleared their thresholds lie outside the image"
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ([1, 20, 9, np.nan, 0.9, 0], "non-finite values"),
        ([1, 20, 9, 30, np.inf, 0], "non-finite values"),
        ([1, 20, 9, 30, 0.9, 2], "class id 2 is not an index of the 2 labels"),
        ([1, 20, 9, 30, 0.9, -3], "class id -3 is not an index"),
        ([1, 20, 9, 30, 0.9, 0.5], "class id 0.5 is not an index"),
        ([1, 20, 9, 30, 1.5, 0], "score 1.5 is outside [0, 1]"),
        ([1, 20, 9, 30, -0.2, 1], "score -0.2 is outside [0, 1]"),
    ],
)
def test_rows_that_would_give_a_wrong_box_are_model_errors(row: list[float], message: str) -> None:
    good = [2, 20, 9, 30, 0.8, 1]
    with pytest.raises(ModelError) as info:
        run(manifest({}), WIDE, {"dets": np.array([[good, row]], np.float32)})
    assert message in str(info.value)
    assert not isinstance(info.value, ManifestError)


def test_broken_outputs_are_model_errors() -> None:
    batch = [{"name": "dets", "dtype": "float32", "shape": ["k", 7]}]
    post = {"columns": {"batch": 6, "box": 0, "score": 4, "class": 5}}
    with pytest.raises(ModelError, match="batch index 1, expected 0"):
        run(manifest(post, batch), WIDE, {"dets": np.array([[1, 20, 9, 30, 0.8, 1, 1]])})
    with pytest.raises(ModelError, match="rows of 5 columns, the manifest's columns"):
        run(manifest({}), WIDE, {"dets": np.zeros((1, 3, 5), np.float32)})
    with pytest.raises(ModelError, match=r"expected \[1, k, W\] or \[k, W\]"):
        run(manifest({}), WIDE, {"dets": np.zeros((2, 3, 6), np.float32)})
    with pytest.raises(ModelError, match="no output 'dets'"):
        run(manifest({}), WIDE, {"other": np.zeros((1, 3, 6), np.float32)})


SEPARATE = [{"name": n, "dtype": "float32", "shape": [1, "k", 4] if n == "b" else [1, "k"]}
            for n in ("b", "s", "c")]  # fmt: skip


@pytest.mark.parametrize(
    ("post", "outputs", "message"),
    [
        ({"iou_threshold": 0.5}, ONE, "iou_threshold: layout 'detections' is after the graph's"),
        ({"class_agnostic": True}, ONE, "class_agnostic: layout 'detections' is after"),
        ({"scores": "sigmoid"}, ONE, "reads final scores"),
        ({"background": True}, ONE, "reads final scores"),
        ({"columns": {"box": 0, "score": 2, "class": 5}}, ONE, "overlap (the box spans 4"),
        ({"columns": {"box": 0, "score": 4}}, ONE, "columns: expected {'box': i"),
        ({"columns": {"box": 0, "score": 4, "class": 5, "id": 6}}, ONE, "columns: expected"),
        ({"columns": {"box": 0, "score": 4, "class": -5}}, ONE, "integers 0..1023"),
        ({"columns": {"box": 1, "score": 5, "class": 6}}, ONE, "at least 7 columns"),
        ({}, [{"name": "dets", "dtype": "float32", "shape": [1, "k", 6, 1]}], "is not [1, k, W]"),
        ({}, [{"name": "dets", "dtype": "int64", "shape": [1, "k", 6]}], "float32 or float16"),
        ({}, SEPARATE, "reads 1 output(s)"),
        ({"outputs": {"boxes": "b", "scores": "s"}}, SEPARATE, "or ['boxes', 'classes', 'sco"),
        ({"outputs": {"boxes": "b", "scores": "s", "classes": "c"},
          "columns": {"box": 0, "score": 4, "class": 5}}, SEPARATE, "columns: only for layout"),
        ({"layout": "yolo", "columns": {"box": 0, "score": 4, "class": 5}},
         [{"name": "dets", "dtype": "float32", "shape": [1, 6, "n"]}], "columns: only for"),
    ],
)  # fmt: skip
def test_bad_sections_are_manifest_errors(
    post: dict[str, Any], outputs: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ManifestError) as info:
        run(manifest(post, outputs), WIDE, {})
    assert message in str(info.value)
