"""Whether two text boxes lie in different panels of a monitor screen (pixels only, no model).

Monitors draw each parameter in its own tile, often framed by lines. A number in the next tile
can be nearer to a label than that tile's own label is (a blank tile's label, a label the
detector missed), so pairing must never cross a tile's border: a line that runs across the
whole gap between the label and the number separates them. "Across" is measured as edges
(Canny) in nearly every column of the rows between them (or every row of the columns between
them), so a border tilted by the photo's perspective counts as long as it stays in the gap.
A dim border softened by blur has no strong edge (a 1-pixel grey line at 50 on a ground of 25,
blurred, stays under Canny's thresholds: a central-station SpO2's 85 went to the HR label of
the tile before it, whose "--" was not read). So a border is also found as a ridge: a line of
pixels brighter (on a dark screen; darker on a light one) than the ground on both sides in
nearly every row (column) of the gap, after a small blur across the line for its tilt.
The gap is taken between the boxes' text, not their padding: the detector pads each box by a
share of its height (DB unclip), and a tall value's padded box can reach across the border
(a side column's SpO2 "79", 88 px tall, boxed from 6 px above its tile's top border, went
to the HR label above when its own label was not read).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from .value_extent import brightest

__all__ = ["Panels"]

MIN_GAP = 20  # pixels: a shorter gap is not checked (one glyph could fill it)
MIN_COVER = 0.97  # of the gap's length crossed by edges: a border, not text or a waveform's gap
MAX_BREAK = 3  # pixels: the longest stretch of the gap that no edge crosses
PADDING = 0.12  # of a box's height: taken off each side, the detector's padding around text
RIDGE = 12  # grey levels: a ridge line stands out this much from the ground on both sides
RIDGE_SIDE = 4  # pixels beyond the tilt allowance where the ground beside a ridge is taken
TILT = 0.06  # of the gap's length: how far a border may drift sideways across it
GROUND = 0.1  # quantile of a line's pixels along the gap: most of the line must stand out


class Panels:
    """One screen's edges; ``apart(a, b)`` for box corners (4x2, source pixels)."""

    def __init__(self, image: npt.NDArray[np.uint8]) -> None:
        grey = brightest(image)
        self._grey = grey
        self._edges = cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 0), 40, 120)
        self._cache: dict[tuple[int, ...], bool] = {}

    def apart(self, a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> bool:
        """A border line across the gap between boxes ``a`` and ``b`` (above/below: a
        horizontal line over both boxes' columns; beside: a vertical one over their rows)."""
        ax0, ay0, ax1, ay1 = _text_extent(a)
        bx0, by0, bx1, by1 = _text_extent(b)
        key = tuple(round(v) for v in (ax0, ay0, ax1, ay1, bx0, by0, bx1, by1))
        if key not in self._cache:
            x0, x1 = min(ax0, bx0), max(ax1, bx1)
            y0, y1 = min(ay0, by0), max(ay1, by1)
            gap_y = (ay1, by0) if by0 > ay1 else (by1, ay0) if ay0 > by1 else None
            gap_x = (ax1, bx0) if bx0 > ax1 else (bx1, ax0) if ax0 > bx1 else None
            found = gap_y is not None and self._line(x0, gap_y[0], x1, gap_y[1], horizontal=True)
            found = found or (
                gap_x is not None and self._line(gap_x[0], y0, gap_x[1], y1, horizontal=False)
            )
            self._cache[key] = found
        return self._cache[key]

    def _line(self, x0: float, y0: float, x1: float, y1: float, *, horizontal: bool) -> bool:
        """Edges in (nearly) every column of the gap's rows (horizontal) or every row of its
        columns (vertical): a line crossing the gap, straight or tilted by the photo."""
        h, w = self._edges.shape
        c0, c1 = max(int(x0) + 1, 0), min(math.ceil(x1) - 1, w)
        r0, r1 = max(int(y0) + 1, 0), min(math.ceil(y1) - 1, h)
        if c1 - c0 < 2 or r1 - r0 < 2:
            return False
        region = self._edges[r0:r1, c0:c1] > 0
        crossed = np.asarray(region.any(axis=0) if horizontal else region.any(axis=1), bool)
        if len(crossed) < MIN_GAP:
            return False
        if float(crossed.mean()) >= MIN_COVER and _longest_false(crossed) <= MAX_BREAK:
            return True
        grey = self._grey[r0:r1, c0:c1]
        return _ridge(grey.T if horizontal else grey)


def _ridge(gap: npt.NDArray[np.uint8]) -> bool:
    """A line down the columns of ``gap`` (rows: along the line) standing RIDGE grey levels
    out from the ground on both sides in nearly every row, allowing TILT of drift. Columns
    within PADDING of the rows' length of either end are not looked at: the padding the gap
    still holds may hold a tall digit's stroke, which stands out on every row too."""
    rows, cols = gap.shape
    drift = max(1, math.ceil(TILT * rows))
    side = drift + RIDGE_SIDE
    edge = max(side, math.ceil(PADDING * rows))
    if cols < 2 * edge + 1:
        return False
    grey = gap.astype(np.float32)
    if float(np.median(grey)) > 127:
        grey = 255.0 - grey  # dark lines on a light screen
    # Each row's brightest pixel within the drift: a tilted line stays in one column.
    lifted = cv2.dilate(grey, np.ones((1, 2 * drift + 1), np.uint8))
    line = np.quantile(lifted, GROUND, axis=0)  # what nearly every row reaches in each column
    ground = np.median(grey, axis=0)
    at = np.arange(edge, cols - edge)
    return bool(
        np.any((line[at] - ground[at - side] >= RIDGE) & (line[at] - ground[at + side] >= RIDGE))
    )


def _text_extent(corners: npt.NDArray[np.float64]) -> tuple[float, float, float, float]:
    """x0, y0, x1, y1 of a box's corners less the detector's padding on every side."""
    x0, y0 = corners.min(axis=0)
    x1, y1 = corners.max(axis=0)
    pad = PADDING * float(y1 - y0)
    return float(x0 + pad), float(y0 + pad), float(x1 - pad), float(y1 - pad)


def _longest_false(flags: npt.NDArray[np.bool_]) -> int:
    longest = run = 0
    for f in flags:
        run = 0 if f else run + 1
        longest = max(longest, run)
    return longest
