"""What ``edgemed bundle build`` needs to build image classifiers (``BuildSupport``).

Folders: calibration = image files (subfolders allowed); evaluation = one subfolder per
label, named as the label, holding that label's images. Files are read in sorted path order
(the same folders always give the same bundle); files of other suffixes are ignored, an image
file OpenCV cannot decode is an error naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ...errors import BuildError
from ...manifest import Manifest
from ...results import ImageClassification, Result
from ..spec import BuildSupport

__all__ = ["BUILD", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise BuildError(f"{folder}: no such folder")
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _read(path: Path) -> npt.NDArray[np.uint8]:
    from .preprocess import load_image  # OpenCV: loaded only when building

    return load_image(path)


def read_calibration(folder: Path) -> list[object]:
    return [_read(p) for p in _images(folder)]


def read_evaluation(folder: Path, manifest: Manifest) -> list[tuple[object, str]]:
    """(image, label) for every image in ``folder/<label>/``, labels in sorted order."""
    if not folder.is_dir():
        raise BuildError(f"{folder}: no such folder")
    known = set(manifest.postprocess.get("labels", ()))
    unknown = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in known)
    if unknown:
        raise BuildError(
            f"{folder}: subfolder(s) {unknown} are not labels of the model {sorted(known)}"
        )
    stray = sorted(
        p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if stray:
        raise BuildError(
            f"{folder}: images must sit in one subfolder per label (found {stray[:3]} at the top)"
        )
    return [
        (_read(path), label.name)
        for label in sorted(p for p in folder.iterdir() if p.is_dir())
        for path in _images(label)
    ]


def _classification(result: Result) -> ImageClassification:
    if not isinstance(result, ImageClassification):
        raise BuildError(f"expected an image classification, got {type(result).__name__}")
    return result


def decision(result: Result) -> str | None:
    return _classification(result).label


def margin(result: Result) -> float:
    top = _classification(result).top
    return top[0][1] - (top[1][1] if len(top) > 1 else 0.0)


def agreement(fp32: Sequence[Result], int8: Sequence[Result]) -> float:
    """Share of inputs where INT8 gives FP32's label (an abstention is a label too)."""
    return sum(decision(a) == decision(b) for a, b in zip(fp32, int8, strict=True)) / len(fp32)


def golden_order(results: Sequence[Result]) -> list[int]:
    """The clearest result of each label in turn, then the next clearest...: golden vectors
    cover every label and sit far from a decision boundary (an abstention never serves)."""
    groups: dict[str, list[int]] = {}
    for i, result in enumerate(results):
        label = decision(result)
        if label is not None:
            groups.setdefault(label, []).append(i)
    ranked = [
        sorted(idx, key=lambda i: (-margin(results[i]), i)) for _, idx in sorted(groups.items())
    ]
    order: list[int] = []
    for depth in range(max((len(g) for g in ranked), default=0)):
        order += [g[depth] for g in ranked if depth < len(g)]
    return order


def accuracy(results: Sequence[Result], truths: Sequence[Any]) -> float:
    """Share of inputs whose label is the true one (an abstention counts as wrong)."""
    hits = sum(bool(decision(r) == t) for r, t in zip(results, truths, strict=True))
    return hits / len(truths)


def golden_arrays(
    manifest: Manifest, inputs: Sequence[object], results: Sequence[Result]
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, npt.NDArray[Any]]]:
    """``image_<i>`` arrays, and ``scores`` (N, labels in the manifest's order): each result's
    top-k scores in their labels' columns (what the golden check compares); columns outside a
    result's top-k are not recorded (0), so its top-1 is still the row's largest."""
    rows = [_classification(r) for r in results]
    if any(r.multi_label for r in rows):
        raise BuildError(
            "multi-label bundles cannot be built yet (no multi-label evaluation format)"
        )
    column = {label: i for i, label in enumerate(manifest.postprocess["labels"])}
    scores = np.zeros((len(rows), len(column)), np.float32)
    for row, r in enumerate(rows):
        for label, score in r.top:
            scores[row, column[label]] = score
    images = {f"image_{i}": np.asarray(x) for i, x in enumerate(inputs)}
    return images, {"scores": scores}


BUILD = BuildSupport(
    read_calibration=read_calibration,
    read_evaluation=read_evaluation,
    agreement=agreement,
    golden_order=golden_order,
    metric_name="accuracy",
    metric=accuracy,
    golden_arrays=golden_arrays,
)
