"""Boxes against boxes: IoU, greedy same-class matching, and average precision, shared by the
INT8 gate (FP32 boxes against INT8 boxes), the user's metric (boxes against the truths) and
the golden check (boxes against the bundle's expected ones)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Boxes", "average_precision", "iou_matrix", "match"]

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class Boxes:
    """Boxes of one image: corners (n, 4) x1, y1, x2, y2, class indices (n,), scores (n,)
    (truths: all 1)."""

    boxes: Floats
    classes: npt.NDArray[np.int64]
    scores: Floats

    def __len__(self) -> int:
        return len(self.classes)


def iou_matrix(a: Floats, b: Floats) -> npt.NDArray[np.float64]:
    """IoU of every box of ``a`` (n, 4) with every box of ``b`` (m, 4): (n, m); 0 where a
    union is empty."""
    a64, b64 = np.asarray(a, np.float64)[:, None, :], np.asarray(b, np.float64)[None, :, :]
    w = np.clip(
        np.minimum(a64[..., 2], b64[..., 2]) - np.maximum(a64[..., 0], b64[..., 0]), 0, None
    )
    h = np.clip(
        np.minimum(a64[..., 3], b64[..., 3]) - np.maximum(a64[..., 1], b64[..., 1]), 0, None
    )
    inter = w * h
    area_a = (a64[..., 2] - a64[..., 0]) * (a64[..., 3] - a64[..., 1])
    area_b = (b64[..., 2] - b64[..., 0]) * (b64[..., 3] - b64[..., 1])
    union = area_a + area_b - inter
    return np.asarray(
        np.divide(inter, union, out=np.zeros_like(inter), where=union > 0), np.float64
    )


def match(found: Boxes, truth: Boxes, min_iou: float) -> npt.NDArray[np.int64]:
    """For each box of ``found``, best score first (ties: lower index), the index of the box
    of ``truth`` it matches, or -1: the unmatched box of the same class with the highest IoU,
    if that is at least ``min_iou`` (each box of ``truth`` matches at most once)."""
    pairs = np.full(len(found), -1, np.int64)
    if not len(found) or not len(truth):
        return pairs
    iou = iou_matrix(found.boxes, truth.boxes)
    iou[found.classes[:, None] != truth.classes[None, :]] = -1.0
    taken = np.zeros(len(truth), np.bool_)
    for i in np.lexsort((np.arange(len(found)), -found.scores)):
        row = np.where(taken, -1.0, iou[i])
        j = int(np.argmax(row))
        if row[j] >= min_iou:
            pairs[i], taken[j] = j, True
    return pairs


def average_precision(
    found: Sequence[Boxes], truths: Sequence[Boxes], n_classes: int, min_iou: float
) -> dict[int, float]:
    """Each class's average precision over the images (the area under its precision-recall
    curve, precision made monotone, every point interpolated, as PASCAL VOC from 2010 and
    COCO's per-threshold AP), for the classes present in the truths."""
    hits: dict[int, list[tuple[float, bool]]] = {c: [] for c in range(n_classes)}
    positives = np.zeros(n_classes, np.int64)
    for f, t in zip(found, truths, strict=True):
        np.add.at(positives, t.classes, 1)
        pairs = match(f, t, min_iou)
        for c, s, j in zip(f.classes.tolist(), f.scores.tolist(), pairs.tolist(), strict=True):
            hits[c].append((s, j >= 0))
    ap: dict[int, float] = {}
    for c in range(n_classes):
        if not positives[c]:
            continue
        ranked = sorted(hits[c], key=lambda h: -h[0])  # stable: ties keep image order
        tp = np.cumsum([h[1] for h in ranked], dtype=np.float64)
        if not len(tp):
            ap[c] = 0.0
            continue
        precision = tp / np.arange(1, len(tp) + 1)
        recall = tp / positives[c]
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        steps = np.diff(np.concatenate(([0.0], recall)))
        ap[c] = float(np.sum(steps * precision))
    return ap
