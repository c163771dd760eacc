"""Ranges of an object detector's result (kind ``object-detection``): boxes inside the image,
scores in [0, 1] best first, and a reason exactly when there is no box."""

from __future__ import annotations

import math
from typing import Any

from .fields import ContractError, as_array, as_object, finite, integer

__all__ = ["MAX_DETECTIONS", "object_detection"]

MAX_DETECTIONS = 1000
_SLACK = 0.05  # box corners travel in tenths of a pixel: rounding never leaves the image by more


def _box(value: Any, where: str, width: int, height: int) -> None:
    if not (isinstance(value, list) and len(value) == 4):
        raise ContractError(f"{where}: must be [x1, y1, x2, y2]")
    x1, y1, x2, y2 = (finite(v, where) for v in value)
    if not (-_SLACK <= x1 <= x2 <= width + _SLACK and -_SLACK <= y1 <= y2 <= height + _SLACK):
        raise ContractError(
            f"{where}: [{x1:g}, {y1:g}, {x2:g}, {y2:g}] is not a box within the "
            f"{width} x {height} image (0 <= x1 <= x2 <= width, 0 <= y1 <= y2 <= height)"
        )


def object_detection(body: dict[str, Any]) -> None:
    where = "object-detection"
    width = integer(body, "width", where, 1)
    height = integer(body, "height", where, 1)
    detections = as_array(body.get("detections"), f"{where}.detections")
    if len(detections) > MAX_DETECTIONS:
        raise ContractError(f"{where}.detections: at most {MAX_DETECTIONS} boxes")
    previous = math.inf
    for i, d in enumerate(detections):
        at = f"{where}.detections[{i}]"
        as_object(d, at)
        label = d.get("label")
        if not (isinstance(label, str) and 0 < len(label) <= 256):
            raise ContractError(f"{at}.label: must be a name")
        score = finite(d.get("score"), f"{at}.score", 0.0, 1.0)
        if score > previous:
            raise ContractError(f"{where}.detections: must be best score first")
        previous = score
        _box(d.get("box"), f"{at}.box", width, height)
    if not isinstance(body.get("truncated"), bool):
        raise ContractError(f"{where}: truncated must be true or false")
    abstained = body.get("abstained")
    if abstained is not None and not (isinstance(abstained, str) and abstained):
        raise ContractError(f"{where}: abstained must be a reason or null")
    if (abstained is None) == (not detections):
        raise ContractError(f"{where}: abstained gives the reason exactly when no box is given")
