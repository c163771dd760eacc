"""`edgemed bundle build` of an object detector through the command line, CI-sized: a small
network made here with a YOLO-style output, the evaluation folder's ``boxes.csv``, mAP@0.5 and
FP32-vs-INT8 box agreement in the report and the card, golden vectors checked at load, a
byte-identical rebuild, letterbox and rescale metamorphic checks, and bad inputs, folders and
specs refused with typed errors. The real detector (PP-PicoDet's layout network, with its
weights) is built in tests/integration/test_bundle_layout_detector.py (slow).

The network: one 8 x 8, stride-8 convolution over a 64 x 64 input gives each of the 64 grid
cells two logits, ``dark`` = 12 (0.5 - mean grey) and ``red`` = 12 (mean red - mean green
- 0.3), through a sigmoid; each cell's box is the cell itself (constant cx, cy, w, h). Its
output is ``[1, 4 + 2, 64]`` (YOLO's channels-first layout). Squares drawn on whole cells are
its truths, so FP32 finds every one (mAP 1).
"""

from __future__ import annotations

import csv
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
from edgemed.errors import InputError
from edgemed.results import ObjectDetection

onnx = pytest.importorskip("onnx")
LABELS = ["dark", "red"]
CELL = 16  # source pixels per grid cell in the 128 x 128 evaluation images (model: 8)
SPEC: dict[str, Any] = {
    "id": "squares",
    "version": "1.0.0",
    "task": "object-detection",
    "summary": "Dark and red squares (a made-up YOLO-layout test detector)",
    "license": "MIT",
    "source": {"upstream": "made by tests/integration/test_bundle_detection.py"},
    "preprocess": {
        "size": [64, 64], "fit": "letterbox", "interpolation": "area", "channel_order": "rgb",
        "layout": "nchw", "scale": 1 / 255, "mean": [0, 0, 0], "std": [1, 1, 1],
        "pad_value": 255,
    },
    "postprocess": {
        "labels": LABELS, "layout": "yolo", "box_format": "cxcywh", "scores": "probabilities",
        "score_threshold": 0.5, "thresholds": {"red": 0.6}, "iou_threshold": 0.5,
        "max_detections": 20,
    },
    "gate": {"min_agreement": 0.95, "max_metric_drop": 0.02},
    "golden_count": 3,
    "card": {"intended_use": "Test bundle: squares on synthetic images."},
}  # fmt: skip


def model(path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    k = 12.0
    w = np.zeros((2, 3, 8, 8), np.float32)
    w[0] = -k / (3 * 64)  # dark: 12 (0.5 - mean grey)
    w[1, 0], w[1, 1] = k / 64, -k / 64  # red: 12 (mean R - mean G - 0.3), input RGB
    bias = np.array([k * 0.5, -k * 0.3], np.float32)
    j, i = np.meshgrid(np.arange(8), np.arange(8))
    cells = np.stack([(j.ravel() + 0.5) * 8, (i.ravel() + 0.5) * 8, np.full(64, 8), np.full(64, 8)])
    nodes = [
        helper.make_node("Conv", ["image", "w", "b"], ["logits"], strides=[8, 8]),
        helper.make_node("Sigmoid", ["logits"], ["maps"]),
        helper.make_node("Reshape", ["maps", "shape"], ["scores"]),
        helper.make_node("Concat", ["cells", "scores"], ["output0"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "squares",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, 64])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b"),
         numpy_helper.from_array(np.array([1, 2, 64], np.int64), "shape"),
         numpy_helper.from_array(cells[None].astype(np.float32), "cells")],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def scene(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[str, int, int, int, int]]]:
    """A 128 x 128 light, noisy image with 1-4 squares on whole cells, and their boxes."""
    image = np.clip(rng.normal(225, 8, (128, 128, 3)), 0, 255).astype(np.uint8)
    boxes = []
    for cell in rng.choice(64, int(rng.integers(1, 5)), replace=False):
        y, x = divmod(int(cell), 8)
        label = LABELS[int(rng.integers(0, 2))]
        colour = (40, 40, 40) if label == "dark" else (115, 115, 255)  # BGR
        image[y * CELL : (y + 1) * CELL, x * CELL : (x + 1) * CELL] = colour
        boxes.append((label, x * CELL, y * CELL, (x + 1) * CELL, (y + 1) * CELL))
    return image, boxes


def write_scenes(folder: Path, n: int, seed: int, boxes: bool = True) -> None:
    rng = np.random.default_rng(seed)
    images = folder / "images" if boxes else folder
    images.mkdir(parents=True)
    rows: list[list[Any]] = [["image", "label", "x1", "y1", "x2", "y2"]]
    for i in range(n):
        image, drawn = scene(rng)
        cv2.imwrite(str(images / f"s{i:02d}.png"), image)
        rows += [[f"s{i:02d}.png", *box] for box in drawn]
    if boxes:
        with (folder / "boxes.csv").open("w", newline="") as f:
            csv.writer(f).writerows(rows)


def edgemed_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgemed.cli", *map(str, args)],
        capture_output=True, text=True, timeout=300, cwd=cwd, env=dict(os.environ),
    )  # fmt: skip


def build(work: Path, out: str, spec: str = "spec.json", evaluation: str = "eval") -> Any:
    return edgemed_cli(
        "bundle", "build", spec, "--onnx", "squares.onnx", "--evaluation", evaluation,
        "--calibration", "calib", "--out", out, "--json", cwd=work,
    )  # fmt: skip


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("detection")
    model(root / "squares.onnx")
    write_scenes(root / "eval", 12, seed=1)
    write_scenes(root / "calib", 12, seed=2, boxes=False)
    (root / "spec.json").write_text(json.dumps(SPEC))
    return root


@pytest.fixture(scope="module")
def built(work: Path) -> dict[str, Any]:
    proc = build(work, "squares")
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    report["path"] = str(work / report["path"])
    return report


@pytest.fixture(scope="module")
def pipe(built: dict[str, Any]) -> Any:
    with edgemed.load(Path(built["path"]), backend="onnxruntime", threads=1) as pipeline:
        yield pipeline  # the golden vectors were checked on load


def detect(pipe: Any, item: object) -> ObjectDetection:
    result = pipe(item)
    assert isinstance(result, ObjectDetection)
    check_result_body(result.kind, result.body())
    return result


def found(result: ObjectDetection) -> set[tuple[str, int, int, int, int]]:
    return {(d.label, *(round(v) for v in d.box)) for d in result.detections}  # type: ignore[misc]


def test_the_detector_builds_gates_and_serves(built: dict[str, Any], pipe: Any) -> None:
    manifest = json.loads((Path(built["path"]) / "manifest.json").read_text())
    assert manifest["task"] == "object-detection" and manifest["postprocess"]["layout"] == "yolo"
    assert built["eval_samples"] == 12 and built["calibration_samples"] == 12
    assert built["fp32_map50"] == 1.0 and built["shipped_precision"] == "int8", built["gate"]
    assert built["int8_map50"] >= 0.98 and built["fp32_int8_agreement"] >= 0.95
    assert built["fp32_ap50[dark]"] == 1.0 and built["fp32_ap50[red]"] == 1.0
    card = (Path(built["path"]) / "MODEL_CARD.md").read_text()
    assert f"| map50 | {built['fp32_map50']} | {built['int8_map50']} |" in card
    assert "whose lowest box score stands highest" in card  # how detection goldens are chosen
    assert pipe.check_golden() == []
    golden = np.load(Path(built["path"]) / "golden" / "outputs.npz")
    assert sorted(golden.files) == sorted(
        f"{k}_{i}" for k in ("boxes", "scores", "classes") for i in range(3)
    )
    image, truth = scene(np.random.default_rng(99))  # a scene the build never saw
    assert found(detect(pipe, image)) == set(truth)


def test_the_same_inputs_give_a_byte_identical_bundle(work: Path, built: dict[str, Any]) -> None:
    assert build(work, "again").returncode == 0
    first, again = Path(built["path"]), work / "again"
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_letterbox_and_rescale_map_boxes_back_to_the_input(pipe: Any) -> None:
    """Metamorphic: the scene's top 96 rows (letterboxed: 16 model rows of padding, one cell
    above and below) give the same boxes as the scene; the scene at twice the size gives
    every box at twice its corners."""
    image, truth = scene(np.random.default_rng(5))
    whole = found(detect(pipe, image))
    assert whole == set(truth)
    top = detect(pipe, np.ascontiguousarray(image[:96]))
    assert (top.height, top.width) == (96, 128)
    assert _alike(found(top), {b for b in whole if b[4] <= 96})
    large = detect(pipe, cv2.resize(image, (256, 256), interpolation=cv2.INTER_NEAREST))
    assert _alike(found(large), {(b[0], *(2 * v for v in b[1:])) for b in whole})


def _alike(
    got: set[tuple[str, int, int, int, int]], want: set[tuple[str, int, int, int, int]]
) -> bool:
    """The same boxes to a pixel: INT8 box regression rounds differently across CPUs (an AVX2
    machine without VNNI put a box edge 1 px lower at twice the size)."""
    if len(got) != len(want):
        return False
    left = sorted(got)
    return all(
        any(
            g[0] == w[0] and max(abs(a - b) for a, b in zip(g[1:], w[1:], strict=True)) <= 1
            for g in left
        )
        for w in want
    )


def test_nothing_found_is_an_empty_result_that_says_why(pipe: Any) -> None:
    blank = np.full((128, 128, 3), 225, np.uint8)
    result = detect(pipe, blank)
    assert result.detections == () and not result.truncated
    assert result.abstained is not None and result.abstained.startswith("no box reached")
    body = result.body()
    assert body["detections"] == [] and body["abstained"] == result.abstained
    assert len(json.dumps(body)) < 200


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (np.zeros((128, 128, 4), np.uint8), "shape"),
        (np.zeros((128, 128, 3), np.float32), "dtype uint8"),
        (np.full((128, 128, 3), np.nan, np.float32), "dtype uint8"),
        (np.zeros((0, 128, 3), np.uint8), "sides"),
        ("no-such-image.png", "not found"),
    ],
)
def test_bad_inputs_are_input_errors(pipe: Any, item: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        pipe(item)


def _spec_variant(work: Path, name: str, **post: Any) -> str:
    spec = json.loads(json.dumps(SPEC))
    spec["postprocess"].update(post)
    spec["postprocess"] = {k: v for k, v in spec["postprocess"].items() if v is not None}
    (work / name).write_text(json.dumps(spec))
    return name


def test_bad_specs_and_folders_exit_10_saying_why(work: Path) -> None:
    """One through the command line (exit status 10), the others through the Python API that
    the command calls (BuildError, the same message), which spares a process start each."""
    from edgemed.bundle import build_bundle, load_spec
    from edgemed.errors import BuildError

    proc = build(work, "x", _spec_variant(work, "ssd9.json", layout="ssd-v9"))
    assert proc.returncode == 10 and "'ssd-v9' is not one of" in proc.stderr, proc.stderr
    cases = [
        (_spec_variant(work, "nolabels.json", labels=None), "eval", "missing key 'labels'"),
        (_spec_variant(work, "three.json", labels=["dark", "red", "blue"]), "eval", "has no axis of 7"),
    ]  # fmt: skip
    missing = work / "eval-missing-label"
    shutil.copytree(work / "eval", missing)
    with (missing / "boxes.csv").open("a", newline="") as f:
        csv.writer(f).writerow(["s00.png", "green", 0, 0, 16, 16])
    cases.append(("spec.json", missing.name, "label 'green' is not one of"))
    outside = work / "eval-outside"
    shutil.copytree(work / "eval", outside)
    with (outside / "boxes.csv").open("a", newline="") as f:
        csv.writer(f).writerow(["s01.png", "dark", 100, 100, 140, 120])
    cases.append(("spec.json", outside.name, "is not within the 128 x 128 image"))
    (work / "eval-no-csv" / "images").mkdir(parents=True)
    cases.append(
        ("spec.json", "eval-no-csv", "one of boxes.csv or annotations.json (COCO), found neither")
    )
    for spec, evaluation, message in cases:
        with pytest.raises(BuildError) as info:
            build_bundle(
                load_spec(work / spec), work / "squares.onnx", evaluation=work / evaluation,
                calibration=work / "calib", out=work / "x",
            )  # fmt: skip
        assert message in str(info.value), (spec, str(info.value))
    assert not (work / "x").exists()
