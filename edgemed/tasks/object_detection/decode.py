"""The model's outputs -> candidate boxes and class scores, whatever the layout declared.

Every layout ends in the same two arrays: ``boxes`` (M, 4) float32 corners x1, y1, x2, y2 in
pixels of the model's input, and ``scores`` (M, C) float32 in [0, 1], one column per label.
An output that breaks the manifest (missing, another shape, scores that are not
probabilities where the manifest says they are) raises :class:`ModelError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ... import kernels
from ...errors import ModelError
from .config import Parsed

__all__ = ["Candidates", "decode"]

Floats = npt.NDArray[np.float32]
Candidates = tuple[Floats, Floats]  # boxes (M, 4) xyxy in model-input pixels, scores (M, C)
_PROBABILITY_SLACK = 1e-4


def _output(outputs: Mapping[str, npt.NDArray[Any]], name: str) -> npt.NDArray[np.float32]:
    out = outputs.get(name)
    if out is None:
        raise ModelError(f"the model gave no output {name!r} (got {sorted(outputs)})")
    if out.ndim == 3 and out.shape[0] == 1:
        out = out[0]
    if out.ndim != 2:
        raise ModelError(f"output {name!r}: expected [1, rows, columns], got shape {out.shape}")
    return np.asarray(out, np.float32)


def _rows(out: npt.NDArray[np.float32], k: int, name: str, what: str) -> Floats:
    """(N, k) from (N, k) or (k, N): a detector's head may put either axis first."""
    if out.shape[1] == k:
        return out
    if out.shape[0] == k:
        return np.ascontiguousarray(out.T)
    raise ModelError(
        f"output {name!r}: expected [1, N, {k}] or [1, {k}, N] ({what}), got {out.shape}"
    )


def _probabilities(raw: Floats, kind: str, background: bool, name: str) -> Floats:
    """Class columns -> scores in [0, 1] (the background column dropped)."""
    if kind == "softmax":
        probs = kernels.softmax(np.ascontiguousarray(raw), axis=-1)
    elif kind == "sigmoid":
        probs = kernels.sigmoid(np.ascontiguousarray(raw))
    else:
        if raw.size and not (
            raw.min() >= -_PROBABILITY_SLACK and raw.max() <= 1 + _PROBABILITY_SLACK
        ):
            raise ModelError(
                f"output {name!r}: scores {raw.min():.4g}..{raw.max():.4g} are not probabilities "
                "(the manifest says scores 'probabilities'; logits need 'sigmoid' or 'softmax')"
            )
        probs = np.clip(raw, 0.0, 1.0)
    return np.ascontiguousarray(probs[:, 1:] if background else probs, np.float32)


def _corners(b: Floats, fmt: str, units: str, size: tuple[int, int]) -> Floats:
    if fmt == "cxcywh":
        half = b[:, 2:4] / 2
        b = np.concatenate([b[:, 0:2] - half, b[:, 0:2] + half], axis=1)
    elif fmt == "yxyx":
        b = b[:, [1, 0, 3, 2]]
    if units == "normalized":
        b = b * np.array([size[1], size[0], size[1], size[0]], np.float32)
    lo, hi = np.minimum(b[:, 0:2], b[:, 2:4]), np.maximum(b[:, 0:2], b[:, 2:4])
    return np.ascontiguousarray(np.concatenate([lo, hi], axis=1), np.float32)


def _yolo(p: Parsed, outputs: Mapping[str, npt.NDArray[Any]], size: tuple[int, int]) -> Candidates:
    name = p.outputs["output"][0]
    c = p.config
    classes = len(p.labels) + c.background
    k = 4 + int(c.objectness) + classes
    rows = _rows(
        _output(outputs, name),
        k,
        name,
        f"4 box values, {'objectness, ' * c.objectness}{classes} class scores",
    )
    scores = _probabilities(rows[:, k - classes :], c.scores, c.background, name)
    if c.objectness:
        objectness = _probabilities(
            rows[:, 4:5], "sigmoid" if c.scores == "sigmoid" else "probabilities", False, name
        )
        scores = scores * objectness
    return _corners(rows[:, :4], p.box_format, c.box_units, size), scores


def _boxes_scores(
    p: Parsed, outputs: Mapping[str, npt.NDArray[Any]], size: tuple[int, int]
) -> Candidates:
    c = p.config
    (box_name,), (score_name,) = p.outputs["boxes"], p.outputs["scores"]
    boxes = _rows(_output(outputs, box_name), 4, box_name, "x1, y1, x2, y2 or as box_format says")
    classes = len(p.labels) + c.background
    raw = _rows(_output(outputs, score_name), classes, score_name, f"{classes} class scores")
    if len(raw) != len(boxes):
        raise ModelError(
            f"{len(boxes)} boxes ({box_name!r}) but {len(raw)} score rows ({score_name!r})"
        )
    scores = _probabilities(raw, c.scores, c.background, score_name)
    return _corners(boxes, p.box_format, c.box_units, size), scores


def _picodet(
    p: Parsed, outputs: Mapping[str, npt.NDArray[Any]], size: tuple[int, int]
) -> Candidates:
    """Per stride: cell centres, minus/plus the expected distance of each side (a softmax over
    ``reg_max + 1`` bins, in stride units)."""
    c = p.config
    classes = len(p.labels) + c.background
    all_boxes, all_scores = [], []
    for stride, score_name, box_name in zip(
        c.strides, p.outputs["scores"], p.outputs["boxes"], strict=True
    ):
        rows, cols = math.ceil(size[0] / stride), math.ceil(size[1] / stride)
        raw = _output(outputs, score_name)
        dist = _output(outputs, box_name)
        if raw.shape != (rows * cols, classes) or dist.shape[0] != rows * cols or dist.shape[1] % 4:
            raise ModelError(
                f"outputs {score_name!r}, {box_name!r} (stride {stride}): expected [1, "
                f"{rows * cols}, {classes}] scores and [1, {rows * cols}, 4 * (reg_max + 1)] "
                f"distributions for a {size[0]} x {size[1]} input, got {raw.shape}, {dist.shape}"
            )
        bins = dist.shape[1] // 4
        weights = kernels.softmax(np.ascontiguousarray(dist.reshape(-1, bins)), axis=-1)
        distance = (weights @ np.arange(bins, dtype=np.float32)).reshape(-1, 4) * stride
        yy, xx = np.meshgrid(
            np.arange(rows, dtype=np.float32), np.arange(cols, dtype=np.float32), indexing="ij"
        )
        centre = np.stack([(xx.ravel() + 0.5) * stride, (yy.ravel() + 0.5) * stride], axis=1)
        all_boxes.append(
            np.concatenate([centre - distance[:, :2], centre + distance[:, 2:]], axis=1)
        )
        all_scores.append(_probabilities(raw, c.scores, c.background, score_name))
    return (
        np.ascontiguousarray(np.concatenate(all_boxes), np.float32),
        np.ascontiguousarray(np.concatenate(all_scores), np.float32),
    )


def decode(p: Parsed, outputs: Mapping[str, npt.NDArray[Any]], size: tuple[int, int]) -> Candidates:
    """Every candidate of one image; ``size`` is the model input's (height, width)."""
    layout = {"yolo": _yolo, "boxes_scores": _boxes_scores, "picodet": _picodet}[p.config.layout]
    return layout(p, outputs, size)
