"""Task ``object-detection`` without a model: its manifest section, the outputs of a pretend
model in each declared layout turned into boxes in the input's pixels (stretch, letterbox),
thresholds per class, class-aware suppression, the caps, the empty result, the wire body and
its contract as the fleet checks it, and the build's metric and agreement. Built through the
command line: tests/integration/test_bundle_detection.py (CI-sized) and
test_bundle_layout_detector.py (the real PP-PicoDet layout network, slow).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgemed.contracts import ContractError, check_result_body
from edgemed.errors import ManifestError, ModelError, PayloadError
from edgemed.fleet.validation import PayloadValidator
from edgemed.manifest import Manifest, parse_manifest
from edgemed.results import ObjectDetection, Provenance, Timings
from edgemed.tasks import find_task
from edgemed.tasks.object_detection.build import BUILD, agreement
from edgemed.tasks.object_detection.matching import Boxes, average_precision

PRE: dict[str, Any] = {
    "size": [64, 64], "fit": "stretch", "interpolation": "bilinear", "channel_order": "bgr",
    "layout": "nchw", "scale": 1 / 255, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
}  # fmt: skip
LABELS = ["cat", "dog"]
YOLO_OUT = [{"name": "out", "dtype": "float32", "shape": [1, 6, "n"]}]


def manifest(
    post: dict[str, Any], outputs: list[dict[str, Any]] = YOLO_OUT, **pre: Any
) -> Manifest:
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
        "outputs": outputs,
        "preprocess": {**PRE, **pre},
        "postprocess": {"labels": LABELS, "layout": "yolo", **post},
        "golden": {"max_abs_diff": 1e-3, "min_label_agreement": 1.0},
    }  # fmt: skip
    return parse_manifest(json.loads(json.dumps(data)), Path("."))


PROVENANCE = Provenance(
    model_id="det-test", model_version="1.0.0", model_sha256="0" * 64, backend="onnxruntime",
    device="cpu", precision="fp32", input_sha256="0" * 64, input_kind="image",
    timings=Timings(preprocess_ms=1, inference_ms=1, postprocess_ms=1), edgemed_version="0",
    created_at=0.0,
)  # fmt: skip


def run(m: Manifest, image: np.ndarray, outputs: dict[str, np.ndarray]) -> ObjectDetection:
    spec = find_task("object-detection")
    assert spec is not None and spec.build is BUILD
    pre, post = spec.processors(m, lambda role: pytest.fail(f"no further model ({role})"))
    prepared = pre(image)
    result = post({k: v.astype(np.float32) for k, v in outputs.items()}, prepared.context)(
        provenance=PROVENANCE
    )
    assert isinstance(result, ObjectDetection)
    check_result_body(result.kind, result.body())
    return result


def yolo(rows: list[list[float]]) -> np.ndarray:
    """[1, 6, N] from rows (cx, cy, w, h, score cat, score dog) in model pixels."""
    return np.array(rows, np.float32).T[None]


def test_yolo_boxes_map_back_through_a_stretch() -> None:
    image = np.zeros((128, 256, 3), np.uint8)  # stretched to 64 x 64: x / 4, y / 2
    rows = [[32, 32, 16, 16, 0.9, 0.1], [8, 8, 4, 4, 0.2, 0.7], [50, 50, 4, 4, 0.3, 0.4]]
    result = run(manifest({}), image, {"out": yolo(rows)})
    assert [(d.label, round(d.score, 3)) for d in result.detections] == [("cat", 0.9), ("dog", 0.7)]
    np.testing.assert_allclose(result.boxes, [[96, 48, 160, 80], [24, 12, 40, 20]], atol=1e-4)
    assert result.abstained is None and not result.truncated
    assert result.counts() == {"cat": 1, "dog": 1} and len(result.of("dog")) == 1
    rows_first = run(manifest({}), image, {"out": yolo(rows)[0].T[None]})  # [1, N, 6]
    np.testing.assert_array_equal(rows_first.boxes, result.boxes)


def test_letterbox_padding_is_taken_off_and_boxes_in_it_vanish() -> None:
    image = np.zeros((32, 64, 3), np.uint8)  # letterboxed: rows 16..48 of 64
    rows = [[32, 32, 16, 16, 0.9, 0.0], [32, 4, 8, 6, 0.0, 0.95]]  # the second: in the padding
    result = run(manifest({}, fit="letterbox"), image, {"out": yolo(rows)})
    np.testing.assert_allclose(result.boxes, [[24, 8, 40, 24]], atol=1e-4)
    only_padding = run(manifest({}, fit="letterbox"), image, {"out": yolo(rows[1:])})
    assert only_padding.detections == ()
    assert (
        only_padding.abstained
        == "no box: the 1 that cleared their thresholds lie outside the image"
    )


def test_thresholds_per_class_and_suppression_per_class() -> None:
    rows = [
        [20, 20, 20, 20, 0.90, 0.0],
        [21, 21, 20, 20, 0.80, 0.0],  # same class, IoU 0.9
        [20, 20, 20, 20, 0.00, 0.85],  # the same place, the other class: kept
        [50, 50, 8, 8, 0.55, 0.0],  # under cat's own threshold 0.6
    ]
    image = np.zeros((64, 64, 3), np.uint8)
    result = run(manifest({"thresholds": {"cat": 0.6}}), image, {"out": yolo(rows)})
    assert [(d.label, round(d.score, 2)) for d in result.detections] == [
        ("cat", 0.9),
        ("dog", 0.85),
    ]
    agnostic = run(manifest({"class_agnostic": True}), image, {"out": yolo(rows)})
    assert [d.label for d in agnostic.detections] == ["cat", "cat"]  # dog suppressed by cat
    capped = run(manifest({"max_detections": 1, "max_candidates": 2}), image, {"out": yolo(rows)})
    assert capped.truncated and [d.score for d in capped.detections] == [pytest.approx(0.9)]


def test_nothing_over_a_threshold_is_an_empty_result_saying_the_best_candidate() -> None:
    rows = [[20, 20, 8, 8, 0.3, 0.45], [40, 40, 8, 8, 0.1, 0.2]]
    result = run(manifest({}), np.zeros((64, 64), np.uint8), {"out": yolo(rows)})
    assert result.detections == () and result.boxes.shape == (0, 4)
    assert (
        result.abstained
        == "no box reached its class's score threshold (best candidate: dog 0.450 < 0.5)"
    )
    assert result.body() == {
        "kind": "object-detection", "height": 64, "width": 64, "detections": [],
        "truncated": False, "abstained": result.abstained,
    }  # fmt: skip


def test_objectness_sigmoid_and_normalised_corners() -> None:
    out = [{"name": "out", "dtype": "float32", "shape": [1, "n", 7]}]
    post = {
        "objectness": True,
        "scores": "sigmoid",
        "box_format": "xyxy",
        "box_units": "normalized",
    }
    logit = float(np.log(0.9 / 0.1))
    rows = np.array([[0.25, 0.25, 0.5, 0.75, logit, logit, -9.0]], np.float32)[None]
    result = run(manifest(post, out), np.zeros((64, 64, 3), np.uint8), {"out": rows})
    assert result.scores[0] == pytest.approx(0.81, abs=1e-4)  # objectness x class
    np.testing.assert_allclose(result.boxes, [[16, 16, 32, 48]], atol=1e-4)


def test_boxes_and_scores_with_a_softmax_background_column() -> None:
    out = [
        {"name": "boxes", "dtype": "float32", "shape": [1, 2, 4]},
        {"name": "logits", "dtype": "float32", "shape": [1, 2, 3]},
    ]
    post = {"layout": "boxes_scores", "box_format": "yxyx", "scores": "softmax", "background": True,
            "outputs": {"boxes": "boxes", "scores": "logits"}}  # fmt: skip
    boxes = np.array([[[8, 4, 24, 36], [0, 0, 10, 10]]], np.float32)
    logits = np.array([[[0.0, 6.0, 0.0], [6.0, 0.0, 0.0]]], np.float32)  # the second: background
    result = run(
        manifest(post, out), np.zeros((64, 64, 3), np.uint8), {"boxes": boxes, "logits": logits}
    )
    assert [d.label for d in result.detections] == ["cat"]
    assert result.scores[0] == pytest.approx(np.exp(6) / (np.exp(6) + 2), abs=1e-5)
    np.testing.assert_allclose(result.boxes, [[4, 8, 36, 24]], atol=1e-4)


def test_picodet_distributions_decode_around_each_cell_centre() -> None:
    """Strides 16 and 32 on 64 x 64: 16 + 4 cells; one cell of stride 16 (row 1, column 2:
    centre (40, 24)) with each side's distribution peaked at bin 1 -> sides 16 pixels away."""
    outs = [{"name": n, "dtype": "float32", "shape": s} for n, s in
            (("s16", [1, 16, 2]), ("s32", [1, 4, 2]), ("d16", [1, 16, 32]), ("d32", [1, 4, 32]))]  # fmt: skip
    post = {"layout": "picodet", "strides": [16, 32]}
    s16, s32 = np.zeros((1, 16, 2)), np.zeros((1, 4, 2))
    s16[0, 1 * 4 + 2, 1] = 0.8
    d16, d32 = np.zeros((1, 16, 32)), np.zeros((1, 4, 32))
    d16[0, 6].reshape(4, 8)[:, 1] = 20.0  # softmax ~ one-hot at bin 1
    outputs = {"s16": s16, "s32": s32, "d16": d16, "d32": d32}
    result = run(manifest(post, outs), np.zeros((64, 64, 3), np.uint8), outputs)
    assert [d.label for d in result.detections] == ["dog"]
    np.testing.assert_allclose(result.boxes, [[24, 8, 56, 40]], atol=1e-3)


@pytest.mark.parametrize(
    ("post", "outputs", "message"),
    [
        ({"layout": "ssd-v9"}, YOLO_OUT, "'ssd-v9' is not one of"),
        ({"nms": 0.5}, YOLO_OUT, "unknown key(s) ['nms']"),
        ({"labels": []}, YOLO_OUT, "1..1000 distinct names"),
        ({"thresholds": {"horse": 0.5}}, YOLO_OUT, "thresholds.horse: not one of the labels"),
        ({"score_threshold": 1.5}, YOLO_OUT, "score_threshold: must be in [0, 1]"),
        (
            {"objectness": True},
            [{"name": "out", "dtype": "float32", "shape": [1, 6, 9]}],
            "has no axis of 7",
        ),
        (
            {"layout": "boxes_scores", "objectness": True},
            YOLO_OUT,
            "objectness: only for layout 'yolo'",
        ),
        ({"strides": [8]}, YOLO_OUT, "strides: only for layout 'picodet'"),
        ({"layout": "picodet", "strides": [8, 0]}, YOLO_OUT, "strides: expected 1..8 integer"),
        ({"layout": "boxes_scores"}, YOLO_OUT, "reads 2 output(s)"),
        ({"outputs": {"output": "nope"}}, YOLO_OUT, "['nope'] are not outputs"),
        ({"box_units": "inches"}, YOLO_OUT, "box_units: 'inches' is not one of"),
        ({"max_detections": 0}, YOLO_OUT, "max_detections: must be 1..1000"),
        ({}, [{"name": "out", "dtype": "int64", "shape": [1, 6, 9]}], "float32 or float16"),
    ],
)
def test_bad_sections_are_manifest_errors(
    post: dict[str, Any], outputs: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ManifestError) as info:
        run(manifest(post, outputs), np.zeros((8, 8, 3), np.uint8), {})
    assert message in str(info.value)


def test_outputs_that_break_the_manifest_are_model_errors() -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ModelError, match="no output 'out'"):
        run(manifest({}), image, {"other": yolo([[1, 1, 1, 1, 0.5, 0.5]])})
    with pytest.raises(ModelError, match=r"\[1, N, 6\] or \[1, 6, N\]"):
        run(manifest({}), image, {"out": np.zeros((1, 5, 9))})
    with pytest.raises(ModelError, match="are not probabilities"):
        run(manifest({}), image, {"out": yolo([[1, 1, 1, 1, 3.0, 0.5]])})


def body(**change: Any) -> dict[str, Any]:
    base = {
        "kind": "object-detection", "height": 100, "width": 200,
        "detections": [{"label": "cat", "score": 0.9, "box": [10.0, 20.0, 60.5, 99.9]},
                       {"label": "dog", "score": 0.7, "box": [0.0, 0.0, 200.0, 100.0]}],
        "truncated": False, "abstained": None,
    }  # fmt: skip
    return {**base, **change}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"detections": [{"label": "cat", "score": 1.2, "box": [0, 0, 1, 1]}]}, "score"),
        (
            {"detections": [{"label": "cat", "score": 0.5, "box": [0, 0, 201, 1]}]},
            "not a box within",
        ),
        ({"detections": [{"label": "cat", "score": 0.5, "box": [5, 0, 1, 1]}]}, "not a box within"),
        (
            {
                "detections": [
                    {"label": "a", "score": 0.5, "box": [0, 0, 1, 1]},
                    {"label": "b", "score": 0.6, "box": [0, 0, 1, 1]},
                ]
            },
            "best score first",
        ),
        ({"abstained": "why"}, "exactly when no box"),
        ({"detections": []}, "exactly when no box"),
        ({"truncated": 0}, "truncated must be"),
        ({"width": 0}, "width 0 is outside"),
    ],
)
def test_the_contract_refuses_bodies_out_of_range(change: dict[str, Any], message: str) -> None:
    check_result_body("object-detection", body())
    with pytest.raises(ContractError, match=message):
        check_result_body("object-detection", body(**change))


def test_the_fleet_accepts_a_detection_and_dead_letters_a_broken_one() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from payloads import result_payload

    validator = PayloadValidator()
    ok = validator.result(result_payload("dev-1", 1, body()), topic_device_id="dev-1")
    assert ok.kind == "object-detection" and ok.body["result"]["detections"][1]["label"] == "dog"
    bad = body(detections=[{"label": "cat", "score": 0.9, "box": [0, 0, 300, 10]}])
    with pytest.raises(PayloadError, match="not a box within"):
        validator.result(result_payload("dev-1", 2, bad), topic_device_id="dev-1")


def boxes(rows: list[tuple[int, float, float, float, float, float]]) -> Boxes:
    """(class, score, x1, y1, x2, y2) rows."""
    a = np.array(rows, np.float64).reshape(-1, 6)
    return Boxes(a[:, 2:].astype(np.float32), a[:, 0].astype(np.int64), a[:, 1].astype(np.float32))


def test_average_precision_and_agreement_on_known_cases() -> None:
    truth = [boxes([(0, 1, 0, 0, 10, 10), (1, 1, 20, 20, 30, 30)]), boxes([(0, 1, 0, 0, 10, 10)])]
    perfect = [
        boxes([(0, 0.9, 0, 0, 10, 10), (1, 0.8, 20, 20, 30, 31)]),
        boxes([(0, 0.7, 1, 0, 10, 10)]),
    ]
    assert average_precision(perfect, truth, 2, 0.5) == {0: 1.0, 1: 1.0}
    # class 0: a false box ranked first, then the two true ones: precision 1/2 at recall 1/2 and
    # 2/3 at recall 1 -> made monotone: 2/3 over the whole recall range
    with_false = [
        boxes([(0, 0.95, 40, 40, 50, 50), (0, 0.9, 0, 0, 10, 10)]),
        boxes([(0, 0.7, 0, 0, 10, 10)]),
    ]
    assert average_precision(with_false, truth, 2, 0.5)[0] == pytest.approx(2 / 3)
    assert average_precision(with_false, truth, 2, 0.5)[1] == 0.0  # never found
    assert 1 not in average_precision(perfect, [truth[1], truth[1]], 2, 0.5)  # absent: not scored

    def result(b: Boxes) -> ObjectDetection:
        return ObjectDetection(
            labels=("cat", "dog"), boxes=b.boxes, scores=b.scores, classes=b.classes, height=60,
            width=60, truncated=False, abstained=None if len(b) else "none", provenance=PROVENANCE,
        )  # fmt: skip

    a = [result(perfect[0]), result(boxes([]))]
    b = [result(boxes([(0, 0.9, 0, 0, 10, 10), (0, 0.6, 20, 20, 30, 30)])), result(boxes([]))]
    assert agreement(a, a) == 1.0
    assert agreement(a, b) == pytest.approx((2 * 1 / 4 + 1.0) / 2)  # one of four boxes paired


def test_concurrent_calls_keep_their_own_boxes() -> None:
    """One pre/postprocessor pair serves several threads: each input's boxes are its own."""
    from concurrent.futures import ThreadPoolExecutor

    spec = find_task("object-detection")
    assert spec is not None
    pre, post = spec.processors(manifest({}, fit="letterbox"), lambda role: pytest.fail(role))
    jobs = [
        (np.zeros((32 + 8 * i, 64, 3), np.uint8), yolo([[8 + 4 * i, 32, 8, 8, 0.9, 0.0]]))
        for i in range(8)
    ]

    def one(job: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        prepared = pre(job[0])
        return post({"out": job[1]}, prepared.context)(provenance=PROVENANCE).boxes  # type: ignore[no-any-return, attr-defined]

    alone = [one(job) for job in jobs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(one, jobs * 8))
    for i, boxes in enumerate(together):
        np.testing.assert_array_equal(boxes, alone[i % len(jobs)])
    assert len({float(b[0, 1]) for b in alone}) == len(jobs)  # each letterbox maps differently


def _folder(tmp_path: Path, truths: str, text: str) -> Path:
    import cv2

    (tmp_path / "images" / "sub").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((40, 60, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "images" / "sub" / "b.png"), np.zeros((30, 30, 3), np.uint8))
    (tmp_path / truths).write_text(text)
    return tmp_path


COCO: dict[str, Any] = {
    "images": [{"id": 1, "file_name": "a.png", "width": 60, "height": 40},
               {"id": 7, "file_name": "sub/b.png", "width": 30, "height": 30}],
    "categories": [{"id": 3, "name": "dog"}, {"id": 5, "name": "cat"}],
    "annotations": [{"id": 10, "image_id": 1, "category_id": 5, "bbox": [10, 5, 20, 10]},
                    {"id": 11, "image_id": 1, "category_id": 3, "bbox": [0, 0, 60, 40]}],
}  # fmt: skip


def test_the_evaluation_folder_reads_boxes_csv_or_coco_alike(tmp_path: Path) -> None:
    from edgemed.tasks.object_detection.build import read_evaluation

    rows = "image,label,x1,y1,x2,y2\na.png,cat,10,5,30,15\na.png,dog,0,0,60,40\n"
    from_csv = read_evaluation(_folder(tmp_path / "csv", "boxes.csv", rows), manifest({}))
    from_coco = read_evaluation(
        _folder(tmp_path / "coco", "annotations.json", json.dumps(COCO)), manifest({})
    )
    for (image_a, a), (image_b, b) in zip(from_csv, from_coco, strict=True):
        np.testing.assert_array_equal(image_a, image_b)  # type: ignore[arg-type]
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.classes, b.classes)
    assert [len(t) for _, t in from_csv] == [2, 0]  # sub/b.png: no object


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"annotations": [{"image_id": 1, "category_id": 5, "bbox": [0, 0, 5, 5], "iscrowd": 1}]},
         "crowd annotations"),
        ({"annotations": [{"image_id": 2, "category_id": 5, "bbox": [0, 0, 5, 5]}]}, "image_id 2"),
        ({"annotations": [{"image_id": 1, "category_id": 9, "bbox": [0, 0, 5, 5]}]},
         "category None is not one of"),
        ({"annotations": [{"image_id": 1, "category_id": 5, "bbox": [50, 0, 20, 5]}]},
         "is not within the 60 x 40 image"),
        ({"images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 60}]},
         "says 40 x 60, the file is 60 x 40"),
        ({"images": [{"id": 1, "file_name": "c.png", "width": 60, "height": 40}]}, "no image 'c.png'"),
    ],
)  # fmt: skip
def test_bad_coco_annotations_stop_the_build(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    from edgemed.errors import BuildError
    from edgemed.tasks.object_detection.build import read_evaluation

    folder = _folder(tmp_path, "annotations.json", json.dumps({**COCO, **change}))
    with pytest.raises(BuildError, match=message):
        read_evaluation(folder, manifest({}))
    (folder / "boxes.csv").write_text("image,label,x1,y1,x2,y2\n")
    with pytest.raises(BuildError, match=r"found \['boxes.csv', 'annotations.json'\]"):
        read_evaluation(folder, manifest({}))


def _result(b: Boxes) -> ObjectDetection:
    return ObjectDetection(
        labels=("cat", "dog"), boxes=b.boxes, scores=b.scores, classes=b.classes, height=60,
        width=60, truncated=False, abstained=None if len(b) else "none", provenance=PROVENANCE,
    )  # fmt: skip


def _results(found: list[Boxes]) -> list[ObjectDetection]:
    return [_result(b) for b in found]


def test_map50_95_averages_ap_over_the_ten_coco_iou_thresholds() -> None:
    from edgemed.tasks.object_detection.build import COCO_IOUS, map50, map50_95, per_class

    assert COCO_IOUS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    truth = [boxes([(0, 1, 0, 0, 10, 10)]), boxes([(0, 1, 20, 20, 30, 30)])]
    at_062 = [boxes([(0, 0.9, 0, 0, 10, 6.2)]), boxes([])]  # IoU 0.62: found at 0.50-0.60
    assert map50_95(_results(at_062), truth) == pytest.approx(0.5 * 3 / 10)
    one = [truth[0]]
    assert map50_95(_results([at_062[0]]), one) == pytest.approx(3 / 10)
    assert map50(_results([at_062[0]]), one) == 1.0
    # IoU 0.92 (found at 0.50-0.90) ranked above IoU 0.62: AP 1 at 0.50-0.60, 1/2 (recall
    # 1/2, precision 1) at 0.65-0.90, 0 at 0.95 -> (3 + 6 / 2) / 10
    good_first = [boxes([(0, 0.9, 0, 0, 10, 9.2)]), boxes([(0, 0.8, 20, 20, 30, 26.2)])]
    assert map50_95(_results(good_first), truth) == pytest.approx(0.6)
    # the same boxes, the IoU 0.62 one ranked first: at 0.65-0.90 precision 1/2 at recall 1/2
    bad_first = [boxes([(0, 0.7, 0, 0, 10, 9.2)]), boxes([(0, 0.8, 20, 20, 30, 26.2)])]
    assert map50_95(_results(bad_first), truth) == pytest.approx((3 + 6 / 4) / 10)
    perfect = _results([boxes([(0, 0.9, 0, 0, 10, 10)]), boxes([(0, 0.5, 20, 20, 30, 30)])])
    assert map50_95(perfect, truth) == 1.0
    figures = per_class(perfect, _results(good_first), truth)
    assert figures["fp32_map50_95"] == 1.0 and figures["int8_map50_95"] == pytest.approx(0.6)
    assert figures["fp32_ap50[cat]"] == 1.0 and "fp32_ap50[dog]" not in figures
