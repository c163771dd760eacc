"""OCR post-processing for PP-OCR models (``csrc/src/ocr.cpp``).

:func:`db_boxes` turns the text-detection probability map into quadrilaterals and
:func:`ctc_greedy_decode` turns recognition outputs into strings; both replicate rapidocr's
``DBPostProcess`` ('fast' score mode) and ``CTCLabelDecode``, so a bedside screen reader gets
the same answers as the reference pipeline without OpenCV, shapely or pyclipper at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ._checks import native, require_dtype, require_ndim
from ._native import _kernels

__all__ = ["ctc_greedy_decode", "db_boxes", "ppocr_charset"]


def ppocr_charset(characters: Sequence[str]) -> list[str]:
    """The class list of a PP-OCR recognition model from its character dictionary.

    As rapidocr's ``CTCLabelDecode``: class 0 is the CTC blank and a space is appended as the
    last class, so ``len(result) == len(characters) + 2`` classes.
    """
    return ["blank", *characters, " "]


def ctc_greedy_decode(
    probs: npt.ArrayLike, charset: Sequence[str], blank: int = 0
) -> list[tuple[str, float]]:
    """Best-path CTC decoding of ``probs`` (batch, steps, classes), float32 probabilities.

    Per item: the argmax class of each step (the first on ties), repeats merged, ``blank``
    dropped; ``charset[c]`` is the text of class ``c`` (see :func:`ppocr_charset`). The
    confidence is the mean max-probability of the kept steps, 0.0 for an empty string.
    """
    arr = np.asarray(probs)
    require_dtype(arr, "probs", np.float32)
    require_ndim(arr, "probs", (3,), "shape (batch, steps, classes)")
    if len(charset) != arr.shape[2]:
        raise InputError(
            f"charset: expected one entry per class ({arr.shape[2]}), got {len(charset)}"
        )
    ids, lengths, confidence = native(_kernels.ctc_greedy_ids, arr, blank)
    try:  # only the classes decoded are looked up: a 6,625-entry charset is not copied
        return [
            ("".join([charset[c] for c in row[:n]]), conf)
            for row, n, conf in zip(
                ids.tolist(), lengths.tolist(), confidence.tolist(), strict=True
            )
        ]
    except TypeError as exc:
        raise InputError(f"charset: expected a sequence of str ({exc})") from exc


def db_boxes(
    prob_map: npt.ArrayLike,
    *,
    dest_size: tuple[int, int],
    thresh: float = 0.3,
    box_thresh: float = 0.5,
    unclip_ratio: float = 1.6,
    max_candidates: int = 1000,
    min_size: float = 3.0,
    use_dilation: bool = True,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """Text quadrilaterals from a DB probability map (height, width), float32 in [0, 1].

    ``dest_size`` is the (height, width) of the original image the boxes are scaled to.
    Defaults are rapidocr's detector configuration. Returns ``boxes`` (n, 4, 2) int32 (x, y)
    corners in rapidocr's order (top-left, top-right, bottom-right, bottom-left of the
    minimum-area rectangle) and their mean-probability ``scores`` (n,).

    Differences from rapidocr: boxes come in raster order of each text region's first pixel
    (rapidocr: OpenCV's contour order), and a region with a hole gives one box, where
    ``cv2.findContours(RETR_LIST)`` also returns the hole's contour as a candidate. The unclip
    step grows the minimum-area rectangle by the offset distance on each side instead of
    offsetting a polygon with pyclipper, and corners are computed exactly where OpenCV's float32
    ``minAreaRect`` may land just below an integer (256.99998), which pyclipper then truncates
    one pixel lower: corners agree within 1 px of the probability map, times the scale to
    ``dest_size`` (measured in ``tests/unit/test_kernels_ocr.py``: <= 1 px on real images).
    """
    arr = np.asarray(prob_map)
    require_dtype(arr, "prob_map", np.float32)
    require_ndim(arr, "prob_map", (2,), "shape (height, width)")
    height, width = dest_size
    if height <= 0 or width <= 0:
        raise InputError(f"dest_size must be positive (height, width), got {dest_size}")
    if max_candidates < 0 or not (unclip_ratio >= 0 and min_size >= 0):
        raise InputError("max_candidates, unclip_ratio and min_size must be >= 0")
    args: tuple[Any, ...] = (thresh, box_thresh, unclip_ratio, max_candidates, min_size)
    return native(_kernels.db_boxes, arr, *args, use_dilation, width, height)
