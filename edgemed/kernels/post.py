"""Model-output post-processing kernels (``csrc/src/post.cpp``).

Scores (:func:`softmax`, :func:`sigmoid`, :func:`topk`, :func:`argmax`), detection boxes
(:func:`nms`) and events in a 1-D score or biosignal trace (:func:`detect_events`). Inputs are
float32 and must be finite: NaN or infinity raises :class:`~edgemed.InputError` naming the
argument (a NaN score has no rank, and silently ordering it would hide a model fault). Strided
views are read in place; results are new arrays.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ._checks import native, require_dtype
from ._native import _kernels

__all__ = ["Events", "argmax", "detect_events", "nms", "sigmoid", "softmax", "topk"]

FloatArray = npt.NDArray[np.float32]
IndexArray = npt.NDArray[np.int64]


class Events(NamedTuple):
    """Detected events, one entry per event in time order; ``end`` is exclusive."""

    start: IndexArray
    end: IndexArray
    peak_index: IndexArray
    peak_value: FloatArray


def _float32(x: npt.ArrayLike, name: str, min_ndim: int = 0) -> npt.NDArray[Any]:
    arr = np.asarray(x)
    require_dtype(arr, name, np.float32)
    if arr.ndim < min_ndim:
        raise InputError(
            f"{name}: expected at least {min_ndim} dimension(s), got shape {arr.shape}"
        )
    return arr


def _rows(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """(..., n) -> (rows, n); a view whenever NumPy can express one (always for 2-D input)."""
    return arr.reshape(math.prod(arr.shape[:-1]), arr.shape[-1])


def softmax(x: npt.ArrayLike, axis: int = -1) -> FloatArray:
    """Softmax along ``axis`` (max-subtracted, so large logits do not overflow).

    Along the last axis the native kernel runs row by row (vectorised for contiguous rows).
    Along another axis of a C-contiguous array (class maps shaped (C, H, W), axis 0) it runs
    over blocks of pixels plane by plane, where rows gathered across planes would be read H * W
    floats apart; other layouts use NumPy's ufuncs over whole planes.
    """
    arr = _float32(x, "x", 1)
    if not -arr.ndim <= axis < arr.ndim:
        raise InputError(f"axis {axis} out of range for shape {arr.shape}")
    axis %= arr.ndim
    if axis != arr.ndim - 1:
        if not arr.size:
            return arr.astype(np.float32)
        if arr.flags.c_contiguous:  # (outer, classes, inner) planes, no copy
            planes = arr.reshape(math.prod(arr.shape[:axis]), arr.shape[axis], -1)
            return native(_kernels.softmax_planes, planes).reshape(arr.shape)
        return _softmax_planes(arr, axis)
    if arr.ndim == 2:  # (rows, classes): the usual case, no reshaping
        return native(_kernels.softmax, arr)
    return native(_kernels.softmax, _rows(arr)).reshape(arr.shape)


def _softmax_planes(arr: npt.NDArray[np.float32], axis: int) -> FloatArray:
    """Softmax along a non-last axis with one output array and no other temporaries of its
    size (scipy.special.softmax makes three)."""
    with np.errstate(invalid="ignore"):  # inf - inf: reported just below
        out: FloatArray = np.subtract(arr, arr.max(axis=axis, keepdims=True))
    if not np.isfinite(out.min()):  # NaN propagates, +inf gives inf - inf, -inf stays
        raise InputError("x: contains NaN or infinity")
    np.exp(out, out=out)
    out *= np.reciprocal(out.sum(axis=axis, keepdims=True))
    return out


def sigmoid(x: npt.ArrayLike) -> FloatArray:
    """Logistic function, elementwise; exact to float32 rounding on both tails."""
    arr = _float32(x, "x")
    return native(_kernels.sigmoid, arr.reshape(-1)).reshape(arr.shape)


def topk(x: npt.ArrayLike, k: int) -> tuple[FloatArray, IndexArray]:
    """The ``k`` largest values along the last axis and their indices, largest first.

    Equal values keep the lower index first. Returns arrays of shape ``x.shape[:-1] + (k,)``.
    """
    arr = _float32(x, "x", 1)
    values, index = native(_kernels.topk, _rows(arr), k)
    shape = (*arr.shape[:-1], k)
    return values.reshape(shape), index.reshape(shape)


def argmax(x: npt.ArrayLike) -> IndexArray:
    """Index of the maximum along the last axis, the first one on ties (as :func:`numpy.argmax`)."""
    arr = _float32(x, "x", 1)
    return native(_kernels.argmax, _rows(arr)).reshape(arr.shape[:-1])


def nms(
    boxes: npt.ArrayLike,
    scores: npt.ArrayLike,
    iou_threshold: float,
    *,
    score_threshold: float = -math.inf,
    max_detections: int | None = None,
) -> IndexArray:
    """Greedy non-maximum suppression; returns kept indices, highest score first.

    ``boxes`` is (n, 4) as x1, y1, x2, y2 (x1 <= x2, y1 <= y2); ``scores`` is (n,). Boxes with
    ``score > score_threshold`` are visited by descending score (equal scores: lower index
    first); a box is dropped if its IoU with an already kept box is ``> iou_threshold``. IoU of
    two zero-area boxes is 0. At most ``max_detections`` indices are returned.

    Same result as ``cv2.dnn.NMSBoxes(xywh, scores, score_threshold, iou_threshold)`` except that
    OpenCV takes (x, y, w, h), counts two empty boxes as overlapping (IoU 1), and its ``top_k``
    caps the candidates before suppression whereas ``max_detections`` caps the kept boxes.
    """
    b = _float32(boxes, "boxes")
    s = _float32(scores, "scores")
    if b.ndim == 2 and b.shape[1:] == (4,) and b.strides[1] != 4:
        b = np.ascontiguousarray(b)  # n x 4: the copy is negligible, the kernel reads rows
    if not 0.0 <= iou_threshold <= 1.0:
        raise InputError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    if math.isnan(score_threshold):
        raise InputError("score_threshold is NaN")
    limit = len(b) if max_detections is None else max_detections
    if limit < 0:
        raise InputError(f"max_detections must be >= 0, got {max_detections}")
    return native(_kernels.nms, b, s, iou_threshold, score_threshold, limit)


def detect_events(
    x: npt.ArrayLike, high: float, low: float, *, min_duration: int = 1, min_gap: int = 0
) -> Events:
    """Events of a 1-D float32 signal by hysteresis thresholding.

    An event starts at a sample ``>= high`` and ends before the first later sample ``< low``
    (``low <= high``; samples between low and high before the start do not belong to it). Events
    separated by fewer than ``min_gap`` samples (``next.start - prev.end``) are merged, then
    events shorter than ``min_duration`` samples are dropped. Each event reports its peak (the
    first maximum). An event still open at the end of ``x`` ends at ``len(x)``. NaN or infinity
    raises :class:`~edgemed.InputError`: a gap in the signal must be handled by the caller.
    """
    arr = _float32(x, "x")
    if not (math.isfinite(high) and math.isfinite(low)):
        raise InputError(f"high and low must be finite, got {high} and {low}")
    if min_duration < 0 or min_gap < 0:
        raise InputError(f"min_duration and min_gap must be >= 0, got {min_duration}, {min_gap}")
    return Events(*native(_kernels.detect_events, arr, high, low, min_duration, min_gap))
