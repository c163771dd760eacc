"""What ``edgemed bundle build`` needs to build object detectors (``BuildSupport``).

Folders: calibration = image files (subfolders allowed). Evaluation = ``images/`` (image
files, subfolders allowed) and ``boxes.csv`` (a header ``image,label,x1,y1,x2,y2`` then one
row per true box: the image's path relative to ``images/`` (``/`` between folders), its
label, and its corners in that image's pixels, x to the right, y down, 0 <= x1 < x2 <=
width, 0 <= y1 < y2 <= height) or a COCO ``annotations.json`` (``truths.py``). An image
without a box holds no object (it measures false boxes); a row naming no image, a label the
model does not have, a value that is not a number or a box outside its image stops the
build, naming the row.

Metric ``map50``: mean average precision at IoU 0.5 over the labels present in the truths
(each label's area under its precision-recall curve, every reported box ranked by score; a
box matches an unmatched true box of its label with IoU >= 0.5), measured on what the result
reports (boxes at or above their thresholds), not on every candidate. Also reported, not gated:
``map50_95``, COCO's mAP@[.5:.95]: the mean over the IoU thresholds 0.50, 0.55, ..., 0.95 of
the same mean AP (the same all-point AP as ``map50``, not COCO's 101 recall points), in the
build report and manifest metrics as ``fp32_map50_95`` and ``int8_map50_95`` (through
``per_class``, which the builder calls when it evaluates INT8: a ``quantization: none`` build
has neither). Agreement: per image,
the share of boxes, FP32's and INT8's together, that have a partner in the other's result
(same label, IoU >= 0.5; 1 where both found nothing), averaged over the images. Golden order:
images with boxes first, those whose lowest box score is highest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ...errors import BuildError, ManifestError
from ...manifest import Manifest
from ...results import Result
from ...results.detection import ObjectDetection
from ..build_folders import IMAGE_SUFFIXES, files_below
from ..spec import BuildSupport
from .matching import Boxes, average_precision, match
from .truths import read_truths

__all__ = ["BUILD", "COCO_IOUS", "GATE_IOU", "map50", "map50_95"]

GATE_IOU = 0.5  # a box agrees with, or finds, another of its label overlapping it this much
# 0.50, 0.55, ..., 0.95, each the double nearest its decimal (an IoU of exactly 0.6 counts)
COCO_IOUS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def read_calibration(folder: Path) -> list[object]:
    from ..image_input import read_images  # OpenCV: loaded only when building

    return list(read_images(folder))


def read_evaluation(folder: Path, manifest: Manifest) -> list[tuple[object, Any]]:
    """(image, its true boxes) for every image of ``folder/images/``, in sorted order."""
    from ..image_input import load_image  # OpenCV: loaded only when building

    root = folder / "images"
    if not root.is_dir():
        raise BuildError(f"{folder}: expected images/ and boxes.csv (images/ missing)")
    paths = files_below(root, IMAGE_SUFFIXES)
    loaded = {p.relative_to(root).as_posix(): load_image(p) for p in paths}
    from .config import parse_postprocess

    try:  # the spec's section, before any image is matched against its labels
        labels = list(parse_postprocess(manifest).labels)
    except ManifestError as exc:
        raise BuildError(f"the build spec does not fit the task: {exc}") from exc
    sizes = {name: (int(im.shape[0]), int(im.shape[1])) for name, im in loaded.items()}
    truths = read_truths(folder, sizes, labels)
    pairs: list[tuple[object, Any]] = []
    for name, image in loaded.items():
        rows = truths[name]
        pairs.append((image, Boxes(
            np.array([b for _, b in rows], np.float32).reshape(-1, 4),
            np.array([c for c, _ in rows], np.int64),
            np.ones(len(rows), np.float32),
        )))  # fmt: skip
    return pairs


def _detection(result: Result) -> ObjectDetection:
    if not isinstance(result, ObjectDetection):
        raise BuildError(f"expected an object detection, got {type(result).__name__}")
    return result


def _boxes(result: Result) -> Boxes:
    r = _detection(result)
    return Boxes(r.boxes, r.classes, r.scores)


def agreement(fp32: Sequence[Result], int8: Sequence[Result]) -> float:
    """Mean over images of the share of boxes with a partner in the other result."""
    shares = []
    for a, b in zip(fp32, int8, strict=True):
        boxes_a, boxes_b = _boxes(a), _boxes(b)
        total = len(boxes_a) + len(boxes_b)
        matched = int(np.count_nonzero(match(boxes_a, boxes_b, GATE_IOU) >= 0))
        shares.append(1.0 if total == 0 else 2 * matched / total)
    return float(np.mean(shares))


def _ap(
    results: Sequence[Result], truths: Sequence[Any], min_iou: float = GATE_IOU
) -> dict[int, float]:
    n = len(_detection(results[0]).labels) if results else 0
    return average_precision([_boxes(r) for r in results], list(truths), n, min_iou)


def map50(results: Sequence[Result], truths: Sequence[Any]) -> float:
    """Mean AP at IoU 0.5 over the labels present in the truths (1.0 if none is: nothing to
    find, and every box found is then a false one only the agreement sees)."""
    ap = _ap(results, truths)
    return float(np.mean(list(ap.values()))) if ap else 1.0


def map50_95(results: Sequence[Result], truths: Sequence[Any]) -> float:
    """COCO's mAP@[.5:.95]: the mean over ``COCO_IOUS`` of the mean AP over the labels present
    (1.0 if none is, as ``map50``). A box at IoU 0.62 with its truth counts at 0.50-0.60."""
    maps = []
    for iou in COCO_IOUS:
        ap = _ap(results, truths, iou)
        maps.append(float(np.mean(list(ap.values()))) if ap else 1.0)
    return float(np.mean(maps))


def per_class(
    fp32: Sequence[Result], int8: Sequence[Result], truths: Sequence[Any]
) -> dict[str, float]:
    """``fp32_ap50[<label>]`` and ``int8_ap50[<label>]`` for the labels in the truths, and
    ``fp32_map50_95`` and ``int8_map50_95`` (the builder merges them into its metrics)."""
    if not fp32:
        return {}
    labels = _detection(fp32[0]).labels
    figures: dict[str, float] = {}
    for precision, results in (("fp32", fp32), ("int8", int8)):
        for c, value in _ap(results, truths).items():
            figures[f"{precision}_ap50[{labels[c]}]"] = value
        figures[f"{precision}_map50_95"] = map50_95(results, truths)
    return figures


def golden_order(results: Sequence[Result]) -> list[int]:
    """Images with boxes and not truncated first, those whose lowest box score is highest
    first: golden boxes stand clear of their thresholds, where another CPU's rounding cannot
    remove them."""

    def key(i: int) -> tuple[bool, float, int]:
        r = _detection(results[i])
        lowest = float(r.scores.min()) if len(r.scores) else 0.0
        return (not len(r.scores) or r.truncated, -lowest, i)

    return sorted(range(len(results)), key=key)


def golden_arrays(
    manifest: Manifest, inputs: Sequence[object], results: Sequence[Result]
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, npt.NDArray[Any]]]:
    """``image_<i>``; and ``boxes_<i>`` (n, 4) float32, ``scores_<i>`` and ``classes_<i>``, as
    ``golden_check`` reads them."""
    images = {f"image_{i}": np.asarray(x) for i, x in enumerate(inputs)}
    outputs: dict[str, npt.NDArray[Any]] = {}
    for i, result in enumerate(results):
        r = _detection(result)
        outputs[f"boxes_{i}"] = r.boxes.astype(np.float32)
        outputs[f"scores_{i}"] = r.scores.astype(np.float32)
        outputs[f"classes_{i}"] = r.classes.astype(np.int64)
    return images, outputs


def golden_tolerance(precision: str, results: Sequence[Result]) -> dict[str, float]:
    """Scores may differ by ``max_abs_diff`` across runtimes and CPUs; every box clearing its
    threshold by more must be found again (IoU >= 0.7, same label)."""
    if precision == "int8":
        return {"max_abs_diff": 0.05, "min_label_agreement": 1.0}
    return {"max_abs_diff": 1e-3, "min_label_agreement": 1.0}


BUILD = BuildSupport(
    read_calibration=read_calibration,
    read_evaluation=read_evaluation,
    agreement=agreement,
    golden_order=golden_order,
    golden_choice="the images with boxes whose lowest box score stands highest (no golden box near its threshold, where another CPU's rounding could remove it)",
    metric_name="map50",
    metric=map50,
    golden_arrays=golden_arrays,
    golden_tolerance=golden_tolerance,
    per_class=per_class,
)
