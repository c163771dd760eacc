"""The model's outputs -> candidate boxes and class scores, whatever the layout declared.

Every layout ends in the same :class:`Candidates`: ``scores`` (M, C) float32 in [0, 1], one
column per label, and ``boxes(rows)``, the (k, 4) float32 corners x1, y1, x2, y2 in pixels of
the model's input of the candidates ``rows``: boxes are decoded only for the few candidates
whose scores clear a threshold (a PP-PicoDet head has 10,105 on an 800 x 608 input).
An output that breaks the manifest (missing, another shape, scores that are not
probabilities where the manifest says they are) raises :class:`ModelError`. Layout
``detections`` (NMS already in the graph) gives no candidates: ``detections.py`` reads it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ... import kernels
from ...errors import ModelError
from .config import Parsed

__all__ = ["PROBABILITY_SLACK", "Candidates", "corners", "decode"]

Floats = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Candidates:
    """Every candidate of one image: class scores, and the boxes of any of them on demand."""

    scores: Floats  # (M, C) in [0, 1]
    boxes: Callable[[Rows], Floats]  # candidate indices -> (k, 4) xyxy, model-input pixels


PROBABILITY_SLACK = 1e-4


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
            raw.min() >= -PROBABILITY_SLACK and raw.max() <= 1 + PROBABILITY_SLACK
        ):
            raise ModelError(
                f"output {name!r}: scores {raw.min():.4g}..{raw.max():.4g} are not probabilities "
                "(the manifest says scores 'probabilities'; logits need 'sigmoid' or 'softmax')"
            )
        probs = np.clip(raw, 0.0, 1.0)
    return np.ascontiguousarray(probs[:, 1:] if background else probs, np.float32)


def corners(b: Floats, fmt: str, units: str, size: tuple[int, int]) -> Floats:
    """(k, 4) box values in ``fmt`` and ``units`` -> x1 <= x2, y1 <= y2 in model pixels."""
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
    what = f"4 box values, {'objectness, ' * c.objectness}{classes} class scores"
    rows = _rows(_output(outputs, name), k, name, what)
    scores = _probabilities(rows[:, k - classes :], c.scores, c.background, name)
    if c.objectness:
        kind = "sigmoid" if c.scores == "sigmoid" else "probabilities"
        scores = scores * _probabilities(rows[:, 4:5], kind, False, name)
    return Candidates(scores, lambda r: corners(rows[r, :4], p.box_format, c.box_units, size))


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
    return Candidates(scores, lambda r: corners(boxes[r], p.box_format, c.box_units, size))


@dataclass(frozen=True, eq=False)
class _Grid:
    """Where each picodet candidate sits: its level's stride, its cell's column count and the
    index of its level's first candidate."""

    strides: npt.NDArray[np.float32]
    cols: npt.NDArray[np.int64]
    starts: npt.NDArray[np.int64]
    dist: Floats  # (M, 4 * bins) every level's distributions, in candidate order

    def boxes(self, r: Rows) -> Floats:
        level = np.searchsorted(self.starts, r, side="right") - 1
        cy, cx = np.divmod(r - self.starts[level], self.cols[level])
        stride = self.strides[level][:, None]
        bins = self.dist.shape[1] // 4
        weights = kernels.softmax(np.ascontiguousarray(self.dist[r].reshape(-1, bins)), axis=-1)
        distance = (weights @ np.arange(bins, dtype=np.float32)).reshape(-1, 4) * stride
        centre = (np.stack([cx, cy], axis=1).astype(np.float32) + 0.5) * stride
        xyxy = np.concatenate([centre - distance[:, :2], centre + distance[:, 2:]], axis=1)
        return np.ascontiguousarray(xyxy, np.float32)


def _picodet(
    p: Parsed, outputs: Mapping[str, npt.NDArray[Any]], size: tuple[int, int]
) -> Candidates:
    """Per stride: cell centres, minus/plus the expected distance of each side (a softmax over
    ``reg_max + 1`` bins, in stride units)."""
    c = p.config
    classes = len(p.labels) + c.background
    scores: list[Floats] = []
    dists: list[Floats] = []
    cols: list[int] = []
    starts: list[int] = []
    start = 0
    for stride, score_name, box_name in zip(
        c.strides, p.outputs["scores"], p.outputs["boxes"], strict=True
    ):
        rows, n_cols = math.ceil(size[0] / stride), math.ceil(size[1] / stride)
        raw, dist = _output(outputs, score_name), _output(outputs, box_name)
        bins = dists[0].shape[1] if dists else dist.shape[1]
        if raw.shape != (rows * n_cols, classes) or dist.shape != (rows * n_cols, bins) or bins % 4:
            raise ModelError(
                f"outputs {score_name!r}, {box_name!r} (stride {stride}): expected [1, "
                f"{rows * n_cols}, {classes}] scores and [1, {rows * n_cols}, 4 * (reg_max + 1)] "
                f"distributions (the same reg_max at every stride) for a {size[0]} x {size[1]} "
                f"input, got {raw.shape}, {dist.shape}"
            )
        scores.append(_probabilities(raw, c.scores, c.background, score_name))
        dists.append(dist)
        cols.append(n_cols)
        starts.append(start)
        start += rows * n_cols
    grid = _Grid(
        np.array(c.strides, np.float32), np.array(cols, np.int64), np.array(starts, np.int64),
        np.concatenate(dists),
    )  # fmt: skip
    return Candidates(np.ascontiguousarray(np.concatenate(scores), np.float32), grid.boxes)


def decode(p: Parsed, outputs: Mapping[str, npt.NDArray[Any]], size: tuple[int, int]) -> Candidates:
    """Every candidate of one image; ``size`` is the model input's (height, width)."""
    layouts = {"yolo": _yolo, "boxes_scores": _boxes_scores, "picodet": _picodet}
    layout = layouts[p.config.layout]  # not "detections": detections.py reads those
    return layout(p, outputs, size)
