"""What ``edgemed bundle build`` needs to build object detectors (``BuildSupport``).

Folders: calibration = image files (subfolders allowed). Evaluation = ``images/`` (image
files, subfolders allowed) and ``boxes.csv``: a header ``image,label,x1,y1,x2,y2`` then one
row per true box: the image's path relative to ``images/`` (``/`` between folders), its
label, and its corners in that image's pixels (x to the right, y down, 0 <= x1 < x2 <=
width, 0 <= y1 < y2 <= height). An image without a row holds no object (it measures false
boxes); a row naming no image, a label the model does not have, a value that is not a number
or a box outside its image stops the build, naming the row.

Metric ``map50``: mean average precision at IoU 0.5 over the labels present in the truths
(each label's area under its precision-recall curve, every reported box ranked by score; a
box matches an unmatched true box of its label with IoU >= 0.5), measured on what the result
reports (boxes at or above their thresholds), not on every candidate. Agreement: per image,
the share of boxes, FP32's and INT8's together, that have a partner in the other's result
(same label, IoU >= 0.5; 1 where both found nothing), averaged over the images. Golden order:
images with boxes first, those whose lowest box score is highest first.
"""

from __future__ import annotations

import csv
import math
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

__all__ = ["BUILD", "GATE_IOU"]

GATE_IOU = 0.5  # a box agrees with, or finds, another of its label overlapping it this much
HEADER = ["image", "label", "x1", "y1", "x2", "y2"]


def read_calibration(folder: Path) -> list[object]:
    from ..image_input import read_images  # OpenCV: loaded only when building

    return list(read_images(folder))


def _rows(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise BuildError(f"{path.parent}: expected images/ and boxes.csv ({path.name} missing)")
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = [row for row in csv.reader(f) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BuildError(f"{path}: not a readable UTF-8 CSV file: {exc}") from exc
    if not rows or [c.strip() for c in rows[0]] != HEADER:
        raise BuildError(f"{path}: the header must be {','.join(HEADER)}")
    return rows[1:]


def _truths(
    path: Path, images: dict[str, tuple[int, int]], labels: list[str]
) -> dict[str, list[tuple[int, list[float]]]]:
    """image stem -> its true boxes (class, corners), checked row by row."""
    found: dict[str, list[tuple[int, list[float]]]] = {name: [] for name in images}
    for n, row in enumerate(_rows(path), start=2):
        where = f"{path} line {n}"
        if len(row) != len(HEADER):
            raise BuildError(f"{where}: expected {len(HEADER)} values, got {len(row)}")
        name, label = row[0].strip(), row[1].strip()
        if name not in images:
            raise BuildError(f"{where}: no image {name!r} in images/")
        if label not in labels:
            raise BuildError(f"{where}: label {label!r} is not one of the model's {labels[:12]}")
        try:
            box = [float(v) for v in row[2:]]
        except ValueError:
            raise BuildError(f"{where}: x1, y1, x2, y2 must be numbers, got {row[2:]}") from None
        h, w = images[name]
        x1, y1, x2, y2 = box
        if not (all(math.isfinite(v) for v in box) and 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
            raise BuildError(
                f"{where}: box {row[2:]} is not within the {w} x {h} image with x1 < x2, y1 < y2"
            )
        found[name].append((labels.index(label), box))
    return found


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
    truths = _truths(folder / "boxes.csv", sizes, labels)
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


def _ap(results: Sequence[Result], truths: Sequence[Any]) -> dict[int, float]:
    n = len(_detection(results[0]).labels) if results else 0
    return average_precision([_boxes(r) for r in results], list(truths), n, GATE_IOU)


def map50(results: Sequence[Result], truths: Sequence[Any]) -> float:
    """Mean AP at IoU 0.5 over the labels present in the truths (1.0 if none is: nothing to
    find, and every box found is then a false one only the agreement sees)."""
    ap = _ap(results, truths)
    return float(np.mean(list(ap.values()))) if ap else 1.0


def per_class(
    fp32: Sequence[Result], int8: Sequence[Result], truths: Sequence[Any]
) -> dict[str, float]:
    """``fp32_ap50[<label>]`` and ``int8_ap50[<label>]`` for the labels in the truths."""
    if not fp32:
        return {}
    labels = _detection(fp32[0]).labels
    figures: dict[str, float] = {}
    for precision, results in (("fp32", fp32), ("int8", int8)):
        for c, value in _ap(results, truths).items():
            figures[f"{precision}_ap50[{labels[c]}]"] = value
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
    metric_name="map50",
    metric=map50,
    golden_arrays=golden_arrays,
    golden_tolerance=golden_tolerance,
    per_class=per_class,
)
