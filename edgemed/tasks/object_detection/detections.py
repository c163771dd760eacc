"""Layout ``detections``: a graph that already ran NMS gives final detections, one row each.

Read from one output (``[1, k, W]`` or ``[k, W]``, columns where the manifest's ``columns``
put them) or from separate ``boxes``, ``scores``, ``classes`` (and ``count``) outputs, into
:class:`Final`: boxes (k, 4) x1, y1, x2, y2 in pixels of the model's input, scores (k,) and
class indices (k,), padding rows (class -1 or score 0, or past ``count``) dropped. Anything
that would make a wrong box instead of none raises :class:`ModelError`: a non-finite value,
a class id that is not an integer index of the labels, a score outside [0, 1], a batch index
other than 0 (the SDK runs one image at a time).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ...errors import ModelError
from .config import Parsed
from .decode import PROBABILITY_SLACK, corners

__all__ = ["Final", "read_detections"]

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Final:
    """One image's detections as the graph gave them, padding dropped."""

    boxes: Floats  # (k, 4) xyxy, model-input pixels
    scores: Floats  # (k,) in [0, 1]
    classes: Ints  # (k,) indices of the labels


def _array(outputs: Mapping[str, npt.NDArray[Any]], name: str, ndim: int) -> npt.NDArray[Any]:
    """The output without its batch axis of 1: ``ndim`` axes (rows first)."""
    out = outputs.get(name)
    if out is None:
        raise ModelError(f"the model gave no output {name!r} (got {sorted(outputs)})")
    out = np.asarray(out)
    if out.ndim == ndim + 1 and out.shape[0] == 1:
        out = out[0]
    if out.ndim != ndim:
        want = "[1, k, W] or [k, W]" if ndim == 2 else "[1, k] or [k]"
        raise ModelError(f"output {name!r}: expected {want} detections, got shape {out.shape}")
    return out


def _columns(p: Parsed, outputs: Mapping[str, npt.NDArray[Any]]) -> npt.NDArray[np.float64]:
    """(k, 6 or 7): box, score, class (and batch) columns, from one output or several."""
    if "detections" in p.outputs:
        name = p.outputs["detections"][0]
        rows = _array(outputs, name, 2)
        col = p.columns
        width = max(i + (4 if key == "box" else 1) for key, i in col.items())
        if rows.shape[1] < width:
            raise ModelError(
                f"output {name!r}: rows of {rows.shape[1]} columns, the manifest's columns "
                f"{col} need {width}"
            )
        take = [*range(col["box"], col["box"] + 4), col["score"], col["class"]]
        take += [col["batch"]] if "batch" in col else []
        return np.asarray(rows[:, take], np.float64)
    (boxes_name,), (scores_name,) = p.outputs["boxes"], p.outputs["scores"]
    boxes = _array(outputs, boxes_name, 2)
    scores, classes = _array(outputs, scores_name, 1), _array(outputs, p.outputs["classes"][0], 1)
    if boxes.shape[1] != 4 or not len(boxes) == len(scores) == len(classes):
        raise ModelError(
            f"outputs {list(p.outputs.values())}: expected boxes [k, 4], scores [k] and "
            f"classes [k] of the same k, got {boxes.shape}, {scores.shape}, {classes.shape}"
        )
    rows = np.concatenate([boxes, scores[:, None], classes[:, None]], axis=1, dtype=np.float64)
    if "count" in p.outputs:
        rows = rows[: _count(outputs, p.outputs["count"][0], len(rows))]
    return rows


def _count(outputs: Mapping[str, npt.NDArray[Any]], name: str, k: int) -> int:
    """How many rows are real (EfficientNMS's ``num_detections``): one integer in 0..k."""
    given = outputs.get(name)
    count = np.asarray(given)
    if given is None or count.size != 1 or not np.issubdtype(count.dtype, np.integer):
        raise ModelError(f"output {name!r}: expected one integer row count, got {given!r}")
    n = int(count.reshape(()))
    if not 0 <= n <= k:
        raise ModelError(f"output {name!r}: {n} detections, but {k} rows")
    return n


def _check(rows: npt.NDArray[np.float64], n_labels: int, where: str) -> None:
    """The rows left after padding: integer class ids of the labels, scores in [0, 1] and, with
    a batch column, batch 0."""
    classes, scores = rows[:, 5], rows[:, 4]
    bad = (classes != np.round(classes)) | (classes < 0) | (classes >= n_labels)
    if bad.any():
        raise ModelError(
            f"{where}: class id {classes[bad][0]:g} is not an index of the {n_labels} labels "
            "(check the manifest's labels and columns against the model)"
        )
    out = (scores < -PROBABILITY_SLACK) | (scores > 1 + PROBABILITY_SLACK)
    if out.any():
        raise ModelError(
            f"{where}: score {scores[out][0]:.4g} is outside [0, 1] (layout 'detections' reads "
            "final probabilities; check the manifest's columns)"
        )
    if rows.shape[1] > 6 and (rows[:, 6] != 0).any():
        raise ModelError(f"{where}: batch index {rows[rows[:, 6] != 0, 6][0]:g}, expected 0")


def read_detections(
    p: Parsed, outputs: Mapping[str, npt.NDArray[Any]], size: tuple[int, int]
) -> Final:
    """One image's final detections; ``size`` is the model input's (height, width)."""
    rows = _columns(p, outputs)
    where = f"outputs {[n for names in p.outputs.values() for n in names]}"
    if not np.isfinite(rows).all():
        raise ModelError(f"{where}: non-finite values in the detections")
    rows = rows[(rows[:, 5] != -1) & (rows[:, 4] != 0)]  # padding: class -1 or score 0
    _check(rows, len(p.labels), where)
    boxes = corners(rows[:, :4].astype(np.float32), p.box_format, p.config.box_units, size)
    scores = np.ascontiguousarray(np.clip(rows[:, 4], 0.0, 1.0), np.float32)
    return Final(boxes, scores, rows[:, 5].astype(np.int64))
