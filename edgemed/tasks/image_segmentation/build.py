"""What ``edgemed bundle build`` needs to build segmentation models (``BuildSupport``).

Folders: calibration = image files (subfolders allowed). Evaluation = ``images/`` (image
files) and ``masks/`` holding, for each image, ``<same stem>.png``: a single-channel 8-bit
PNG of the same height and width whose pixel values are class indices (0 = ``labels[0]``,
the background; 1 = ``labels[1]``...), or 255 for pixels not to score (uncertain borders).
Files are read in sorted order; an image without its mask, a mask without its image, a mask
of another size or holding a value that is no class is an error naming the file.

Metric: ``mean_dice``, the Dice coefficient 2|P∩T| / (|P| + |T|) of each foreground class
over the whole evaluation set's pixels together, averaged over the foreground classes found
in the truths or the predictions. Agreement: the mean, over images, of the share of pixels
where INT8 gives FP32's class. Golden order: images showing a foreground class first, then
those with the fewest ambiguous pixels (margin under 0.1) first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ...errors import BuildError
from ...manifest import Manifest
from ...results import Result
from ...results.segmentation import ImageSegmentation
from ..build_folders import IMAGE_SUFFIXES, files_below
from ..spec import BuildSupport

__all__ = ["BUILD"]

NOT_SCORED = 255  # a truth mask's "do not score this pixel"
AMBIGUOUS = 0.1  # a pixel whose margin is under this is near a boundary


def read_calibration(folder: Path) -> list[object]:
    from ..image_input import read_images  # OpenCV: loaded only when building

    return list(read_images(folder))


def _read_mask(path: Path, shape: tuple[int, int], n: int) -> npt.NDArray[np.uint8]:
    import cv2

    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise BuildError(f"{path}: cannot read it as a PNG")
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise BuildError(
            f"{path}: a mask is a single-channel 8-bit PNG of class indices, got "
            f"{mask.dtype} {mask.shape}"
        )
    if mask.shape != shape:
        raise BuildError(f"{path}: mask {mask.shape} is not its image's size {shape}")
    bad = sorted(set(np.unique(mask).tolist()) - {*range(n), NOT_SCORED})
    if bad:
        raise BuildError(
            f"{path}: value(s) {bad[:5]} are not class indices 0..{n - 1} (or {NOT_SCORED}: "
            "not scored)"
        )
    return np.asarray(mask, np.uint8)


def read_evaluation(folder: Path, manifest: Manifest) -> list[tuple[object, Any]]:
    """(image, truth mask) for every image of ``folder/images/`` and its ``folder/masks/``
    PNG of the same stem."""
    from ..image_input import load_image  # OpenCV: loaded only when building

    images, masks = folder / "images", folder / "masks"
    for sub in (images, masks):
        if not sub.is_dir():
            raise BuildError(f"{folder}: expected folders images/ and masks/ ({sub.name}/ missing)")
    paths = files_below(images, IMAGE_SUFFIXES)
    stems = [p.relative_to(images).with_suffix("").as_posix() for p in paths]
    if len(set(stems)) != len(stems):
        twice = sorted({s for s in stems if stems.count(s) > 1})
        raise BuildError(f"{images}: several images share a stem: {twice[:3]}")
    found = {p.relative_to(masks).with_suffix("").as_posix() for p in masks.rglob("*.png")}
    if missing := [s for s in stems if s not in found]:
        raise BuildError(f"{masks}: no mask <stem>.png for image(s) {missing[:3]}")
    if stray := sorted(found - set(stems)):
        raise BuildError(f"{masks}: mask(s) {stray[:3]} have no image in {images}")
    n = len(manifest.postprocess.get("labels", ()))
    pairs: list[tuple[object, Any]] = []
    for path, stem in zip(paths, stems, strict=True):
        image = load_image(path)
        pairs.append((image, _read_mask(masks / f"{stem}.png", image.shape[:2], n)))
    return pairs


def _segmentation(result: Result) -> ImageSegmentation:
    if not isinstance(result, ImageSegmentation):
        raise BuildError(f"expected an image segmentation, got {type(result).__name__}")
    return result


def agreement(fp32: Sequence[Result], int8: Sequence[Result]) -> float:
    """The mean, over images, of the share of pixels where INT8 gives FP32's class."""
    shares = [
        float(np.mean(_segmentation(a).mask == _segmentation(b).mask))
        for a, b in zip(fp32, int8, strict=True)
    ]
    return float(np.mean(shares))


def mean_dice(results: Sequence[Result], truths: Sequence[Any]) -> float:
    """Dice of each foreground class over all pixels together (truth 255: not scored),
    averaged over the classes present in the truths or the predictions (1.0 if none is)."""
    both: dict[int, list[int]] = {}  # class -> [intersection, predicted, true]
    for result, truth in zip(results, truths, strict=True):
        mask = _segmentation(result).mask
        scored = truth != NOT_SCORED
        n = len(_segmentation(result).labels)
        pred, true = mask[scored], truth[scored]
        for c in range(1, n):
            p, t = pred == c, true == c
            counts = both.setdefault(c, [0, 0, 0])
            counts[0] += int(np.count_nonzero(p & t))
            counts[1] += int(np.count_nonzero(p))
            counts[2] += int(np.count_nonzero(t))
    dice = [2 * i / (p + t) for i, p, t in both.values() if p + t]
    return float(np.mean(dice)) if dice else 1.0


def golden_order(results: Sequence[Result]) -> list[int]:
    """Images showing a foreground class first, each group with the fewest ambiguous pixels
    first: golden vectors test the classes, far from any boundary a CPU's rounding can move."""

    def key(i: int) -> tuple[bool, float, int]:
        r = _segmentation(results[i])
        return (not any(r.pixels[1:]), float(np.mean(r.margin < AMBIGUOUS)), i)

    return sorted(range(len(results)), key=key)


def golden_arrays(
    manifest: Manifest, inputs: Sequence[object], results: Sequence[Result]
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, npt.NDArray[Any]]]:
    """``image_<i>``; and ``mask_<i>`` (uint8 classes), ``margin_<i>`` (float16) and
    ``mean_confidence`` [images, labels] (-1: class absent), as ``golden_check`` reads them."""
    rows = [_segmentation(r) for r in results]
    images = {f"image_{i}": np.asarray(x) for i, x in enumerate(inputs)}
    outputs: dict[str, npt.NDArray[Any]] = {}
    for i, r in enumerate(rows):
        outputs[f"mask_{i}"] = r.mask
        outputs[f"margin_{i}"] = r.margin.astype(np.float16)
    outputs["mean_confidence"] = np.array(
        [[-1.0 if c is None else c for c in r.mean_confidence] for r in rows], np.float32
    )
    return images, outputs


def golden_tolerance(precision: str, results: Sequence[Result]) -> dict[str, float]:
    """Per-pixel limits: a pixel's class may differ from the golden one on another runtime or
    CPU where its expected margin is within ``max_abs_diff``; of the others, at least
    ``min_label_agreement`` must agree. Measured, PP-OCRv4's detector on 16 scenes: FP32 on
    OpenVINO vs ONNX Runtime, every clear pixel agrees and scores differ by <= 1.1e-4; its
    INT8 QDQ graph, 99.7 % of clear pixels agree (the runtimes' INT8 kernels differ), mean
    confidences by <= 0.005."""
    if precision == "int8":
        return {"max_abs_diff": 0.05, "min_label_agreement": 0.99}
    return {"max_abs_diff": 1e-3, "min_label_agreement": 0.999}


BUILD = BuildSupport(
    read_calibration=read_calibration,
    read_evaluation=read_evaluation,
    agreement=agreement,
    golden_order=golden_order,
    golden_choice="images showing a foreground class first, each with the fewest ambiguous pixels (far from any boundary a CPU's rounding can move)",
    metric_name="mean_dice",
    metric=mean_dice,
    golden_arrays=golden_arrays,
    golden_tolerance=golden_tolerance,
)
