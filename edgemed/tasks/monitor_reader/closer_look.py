"""A closer look where a value's label should be but no text was found.

Monitors draw labels small beside large values: on a wide screen an "HR" or "SpO2" can be
7-9 pixels tall, below what the text detector resolves at the screen's scale (the screen is
at most 960 pixels on its longer side for the detector), so the value is found and its label
is not, and the field is lost (``not-shown``). Where a large number has no label text near it
(left of it and above it, in its own heights), that region is cut out, enlarged and run
through the detector again; the boxes found there that were not found before are read like
the others and join the screen. At most ``MAX_REGIONS`` regions per screen (the largest
numbers first), so a screen costs at most that many small detector runs more.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from .screen_text import classify_label, parse_value

__all__ = ["MAX_REGIONS", "SCALE", "label_regions", "new_boxes"]

SCALE = 2.5  # enlargement of a region: an 8-pixel label becomes a 20-pixel one
MAX_REGIONS = 4
# A region, in the value's heights: labels stand left of or above their value.
LEFT, ABOVE, RIGHT, BELOW = 4.0, 1.5, 0.5, 0.5
# Where its own label would stand (a label further away is usually the next tile's).
OWN_LEFT = 1.5
MIN_OVER_TALLEST = 0.5  # numbers this tall relative to the screen's tallest are values


def _bounds(pts: npt.NDArray[np.float32]) -> tuple[float, float, float, float]:
    return (
        float(pts[:, 0].min()),
        float(pts[:, 1].min()),
        float(pts[:, 0].max()),
        float(pts[:, 1].max()),
    )


def label_regions(
    boxes: Sequence[npt.NDArray[np.float32]], texts: Sequence[str], shape: tuple[int, ...]
) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) source-pixel regions to look at again: around each value-sized number
    with no label's centre where its own label would stand, largest values first. Regions are
    not merged: a merged row of them would be wider than the detector's input and be shrunk
    back (boxes two regions find are kept once, ``new_boxes``)."""
    h_img, w_img = shape[:2]
    numbers = [(b, t) for b, t in zip(boxes, texts, strict=True) if parse_value(t) is not None]
    labels = [_bounds(b) for b, t in zip(boxes, texts, strict=True) if classify_label(t)]
    tallest = max((_bounds(b)[3] - _bounds(b)[1] for b, _ in numbers), default=0.0)
    regions: list[list[float]] = []  # x0, y0, x1, y1
    for pts, _ in sorted(numbers, key=lambda n: -(_bounds(n[0])[3] - _bounds(n[0])[1])):
        x0, y0, x1, y1 = _bounds(pts)
        h = y1 - y0
        if h < MIN_OVER_TALLEST * tallest:
            break
        r = [max(0.0, x0 - LEFT * h), max(0.0, y0 - ABOVE * h),
             min(float(w_img), x1 + RIGHT * h), min(float(h_img), y1 + BELOW * h)]  # fmt: skip
        own = (x0 - OWN_LEFT * h, r[1], r[2], r[3])  # where its own label would stand
        if any(
            own[0] <= (a + c) / 2 <= own[2] and own[1] <= (b + d) / 2 <= own[3]
            for a, b, c, d in labels
        ):
            continue
        regions.append(r)
        if len(regions) >= MAX_REGIONS:
            break
    return [(int(a), int(b), int(np.ceil(c)), int(np.ceil(d))) for a, b, c, d in regions]


def enlarged(
    image: npt.NDArray[np.uint8], region: tuple[int, int, int, int]
) -> npt.NDArray[np.uint8]:
    x0, y0, x1, y1 = region
    crop = image[y0:y1, x0:x1]
    return np.asarray(
        cv2.resize(crop, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_CUBIC), np.uint8
    )


def new_boxes(
    found: Sequence[tuple[npt.NDArray[np.float32], float]],
    region: tuple[int, int, int, int],
    known: Sequence[npt.NDArray[np.float32]],
) -> list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], float]]:
    """(corners in the enlarged region, corners in the source, score) of each box ``found`` in
    the enlarged region whose centre no box of the screen (``known``) already covers."""
    x0, y0 = region[0], region[1]
    out = []
    for pts, score in found:
        source = (pts / SCALE + np.array([x0, y0], np.float32)).astype(np.float32)
        cx, cy = source.mean(axis=0)
        covered = any(
            cv2.pointPolygonTest(k.astype(np.float32), (float(cx), float(cy)), False) >= 0
            for k in known
        )
        if not covered:
            out.append((pts, source, score))
    return out
