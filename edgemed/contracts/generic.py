"""Ranges of the results of the generic tasks (image and signal classification, segmentation)."""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

from .fields import (
    ContractError,
    as_array,
    as_object,
    finite,
    integer,
    names_in,
    number,
)

# Where a segmentation result's pixel spacing came from (a DICOM attribute, or the caller).
SPACING_SOURCES = ("caller", "PixelSpacing", "ImagerPixelSpacing")


def signal_classification(body: dict[str, Any]) -> None:
    where = "signal-classification"
    top, previous = as_array(body.get("top"), f"{where}.top"), math.inf
    if not top:
        raise ContractError(f"{where}.top: must hold at least the best label")
    for i, pair in enumerate(top):
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ContractError(f"{where}.top[{i}]: must be [label, score]")
        score = finite(pair[1], f"{where}.top[{i}]", 0.0, 1.0)
        if score > previous:
            raise ContractError(f"{where}.top: must be best first")
        previous = score
    if len({pair[0] for pair in top}) != len(top):
        raise ContractError(f"{where}.top: labels repeat")
    if number(body, "score", where, 0.0, 1.0) != top[0][1]:
        raise ContractError(f"{where}: score must be the best label's")
    label, abstained = body.get("label"), body.get("abstained")
    if abstained is not None and not (isinstance(abstained, str) and abstained):
        raise ContractError(f"{where}: abstained must be a reason or null")
    if (label is None) == (abstained is None) or label not in (None, top[0][0]):
        raise ContractError(f"{where}: either the best-scored label or why it was withheld")
    if "window_start_s" in body or "window_end_s" in body:
        start = number(body, "window_start_s", where, 0.0)
        if number(body, "window_end_s", where, start) <= start:
            raise ContractError(f"{where}: a window must have a length")


def image_classification(body: dict[str, Any]) -> None:
    where = "image-classification"
    top = as_array(body.get("top"), f"{where}.top")
    if not top:
        raise ContractError(f"{where}.top: must hold at least the best label")
    scores: dict[str, float] = {}
    previous = math.inf
    for i, pair in enumerate(top):
        at = f"{where}.top[{i}]"
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ContractError(f"{at}: must be [label, score]")
        score = finite(pair[1], at, 0.0, 1.0)
        if pair[0] in scores:
            raise ContractError(f"{at}: label repeats")
        if score > previous:
            raise ContractError(f"{where}.top: must be best first")
        scores[pair[0]], previous = score, score
    number(body, "score", where, 0.0, 1.0)
    label, multi = body.get("label"), body.get("multi_label")
    if not isinstance(multi, bool):
        raise ContractError(f"{where}: multi_label must be true or false")
    if label is not None and not isinstance(label, str):
        raise ContractError(f"{where}: label must be a name or null")
    positive = as_array(body.get("positive"), f"{where}.positive")
    if len(names_in(positive, f"{where}.positive")) != len(positive):
        raise ContractError(f"{where}.positive: labels repeat")
    abstained = body.get("abstained")
    if abstained is not None and not (isinstance(abstained, str) and abstained):
        raise ContractError(f"{where}: abstained must be a reason or null")
    if abstained is not None and (label is not None or positive):
        raise ContractError(f"{where}: an abstention gives no label")
    if positive[:1] != ([] if label is None else [label]):
        raise ContractError(f"{where}: label must be the first positive label")
    if not multi:
        if len(positive) > 1:
            raise ContractError(f"{where}: a single-label result has at most one label")
        if abstained is None and label != top[0][0]:
            raise ContractError(f"{where}: a single-label result's label is its best score")


def image_segmentation(body: dict[str, Any]) -> None:
    where = "image-segmentation"
    labels = as_array(body.get("labels"), f"{where}.labels")
    if not 2 <= len(names_in(labels, f"{where}.labels")) == len(labels) <= 255:
        raise ContractError(f"{where}.labels: must be 2..255 distinct names")
    size = integer(body, "height", where, 1) * integer(body, "width", where, 1)
    spacing = body.get("pixel_spacing_mm")
    if spacing is not None and not (isinstance(spacing, list) and len(spacing) == 2):
        raise ContractError(f"{where}.pixel_spacing_mm: must be [row, col] or null")
    mm2 = 0.0 if spacing is None else math.prod(finite(v, where, 1e-300) for v in spacing)
    source = body.get("pixel_spacing_source")  # absent in bodies of edgemed <= the field's
    if (source is not None) and (spacing is None or source not in SPACING_SOURCES):
        raise ContractError(
            f"{where}.pixel_spacing_source: one of {list(SPACING_SOURCES)} with a spacing, "
            "else null"
        )
    classes = as_array(body.get("classes"), f"{where}.classes")
    if [c.get("label") if isinstance(c, dict) else None for c in classes] != labels:
        raise ContractError(f"{where}.classes: one object per label, in the labels' order")
    total = integer(body, "unseen_pixels", where, 0, size)
    for c in classes:
        at = f"{where}.classes[{c['label'][:40]}]"
        n = integer(c, "pixels", at, 0, size)
        total += n
        integer(c, "regions", at, 0, n)
        if (c.get("mean_confidence") is None) != (n == 0):
            raise ContractError(f"{at}: mean_confidence is null exactly when pixels is 0")
        if n:
            number(c, "mean_confidence", at, 0.0, 1.0)
        if (c.get("area_mm2") is None) != (spacing is None):
            raise ContractError(f"{at}: area_mm2 is null exactly when pixel_spacing_mm is")
        if spacing is not None and abs(number(c, "area_mm2", at) - n * mm2) > 1e-5 * n * mm2:
            raise ContractError(f"{at}: area_mm2 is not pixels x the pixel's area")
    if total != size:
        raise ContractError(f"{where}: class pixels and unseen_pixels must add up to the image")
    integer(body, "specks_removed", where, 0)
    if body.get("mask") is not None:
        _mask_runs(as_object(body["mask"], f"{where}.mask"), len(labels), body)


def _mask_runs(mask: dict[str, Any], n: int, body: dict[str, Any]) -> None:
    """A run-length-encoded class mask: (class, length) varint pairs covering its grid."""
    where, shape = "image-segmentation.mask", mask.get("shape")
    if not (
        mask.get("encoding") == "rle-varint" and isinstance(mask.get("b64"), str)
        and isinstance(shape, list) and len(shape) == 2 and all(type(d) is int for d in shape)
        and 1 <= shape[0] <= body["height"] and 1 <= shape[1] <= body["width"]
    ):  # fmt: skip
        raise ContractError(f"{where}: must be rle-varint, b64, shape [h, w] within the image")
    try:
        raw = base64.b64decode(mask["b64"], validate=True)
    except (binascii.Error, ValueError):
        raise ContractError(f"{where}: b64 is not base64") from None
    values, value, bits = [], 0, 0
    for byte in raw:
        value, bits = value | (byte & 0x7F) << bits, bits + 7
        if not byte & 0x80:
            values.append(value)
            value, bits = 0, 0
    if bits or len(values) % 2 or sum(values[1::2]) != shape[0] * shape[1]:
        raise ContractError(f"{where}: runs must cover its {shape[0]} x {shape[1]} grid")
    if any(v >= n and v != 255 for v in values[0::2]):
        raise ContractError(f"{where}: values must be class indices (or 255: unseen)")
