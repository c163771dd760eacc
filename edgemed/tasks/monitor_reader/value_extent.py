"""Whether a value's text box holds one whole number (pixels only, no model).

Two ways a legible, plausible number paired with the right label can still be a wrong value:

* **A digit left out.** The text detector can box part of a number and miss the rest: the thin
  "1" of a seven-segment "31" stands a digit's width from the "3" and may get no box, so the
  number read is "3". The value is refused (``partial-number``) when ink of the value's own
  digit height stands right beside its box, within one digit's width, on the same rows, and
  no other box that was read covers most of it. Smaller ink there is alarm limits, units or a
  bell glyph; ink crossing every row is a tile border, a grid line or a waveform; ink mostly
  inside another box that was read is that box's text (the next tile's value on a packed
  screen), and a stroke only partly inside one is not (a box misread over the middle of it).
* **A digit in the box but not read.** The recogniser can drop a digit it does not know (the
  "1" of an unfamiliar seven-segment font: "144" read as "44"). Every stroke of digit height
  in the value's crop must have a character emitted over it (the CTC step that emitted each
  character says where); a stroke with none refuses the value (``partial-number``).
* **A digit boxed on its own.** The detector can also box the left-out digit by itself (a
  seven-segment "21" boxed as "2" and "1" a digit's width apart): then the ink beside the value
  is inside a read box and the first check passes it. A number box of the value's height on
  the value's rows, half its height away or closer, with no tile border between, one of the
  two a lone digit, may be the rest of the same number: the value is refused
  (``partial-number``).
* **A number the frame cuts.** A photo taken at an angle can leave part of a value outside the
  picture: a tilted screen's "36.3" cut to "36" at the right edge was read as 36.0 (a second
  renderer's screens, seed 31000163 with ``--photo``). A value whose ink ends within EDGE of
  a digit's height of the image's left or right edge (closer than the gap between two digits)
  may have lost digits beyond it, one whose box reaches the top or bottom edge part of every
  digit: refused (``partial-number``). (Measured on the box instead of the ink, 0.3 digit
  heights withheld 8 % of the values of 100 tuning screens, the detector's padding included.)
* **Two lines in one box.** Stacked alarm limits ("30" over "10") boxed together are read by a
  one-line recogniser as a single short "number". The value is refused (``stacked-text``) when
  its box's ink falls into two bands of rows with an empty band between them.

Seven-segment digits are drawn as separate segments: for the digit test, ink is closed
vertically over a small gap first, so a digit's height is the digit's, not one segment's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["box_problem", "brightest", "ink_mask", "number_beside", "text_ink", "unread_ink"]

MIN_DIGIT = 0.6  # of the value's digit height: ink this tall beside the box may be a digit
MAX_DIGIT = 1.2
REACH = 0.9  # of the digit height: how far beside the box a left-out digit can stand
HAIRLINE = 0.04  # of the crop height: thinner strokes are lines, not digits
EMIT_REACH = 0.3  # of the digit height: a character emitted this near a stroke reads it
SEGMENT_GAP = 0.12  # of the box height: gaps between a digit's segments that are closed
# Of the ink's height: an empty band of rows this tall splits two lines (the gaps inside a
# seven-segment digit are at most 4 % of its height, measured on the DSEG fonts; the rows
# between stacked alarm limits are 6 % or more).
MIN_LINE_GAP = 0.06
MIN_LINE = 0.25  # of the ink's height: each of two lines is at least this tall
MOSTLY = 0.5  # of a stroke's pixels: a stroke this much inside another read box is its text
BEYOND = 0.25  # of the digit height: rows looked at above and below the box for a stroke
EDGE = 0.2  # of the digit height: value ink this near the image's side may be cut by it
SAME_HEIGHT = 0.8  # box height ratio (smaller / larger): a number of the value's own size
# Of the value box's height: the widest gap between two boxes of one number (boxes are padded,
# so a seven-segment "1" drawn at the right of its cell still leaves its box this close).
NUMBER_GAP = 0.5
SAME_ROWS = 0.6  # of the shorter box's height: rows two boxes share to stand on one line


def box_problem(
    image: npt.NDArray[np.uint8],
    pts: npt.NDArray[np.float32],
    others: Sequence[npt.NDArray[np.float32]] = (),
) -> str | None:
    """``"partial-number"``, ``"stacked-text"`` or None for the value box ``pts`` (4x2
    corners, source pixels); ``others``: the screen's other boxes that were read."""
    h_img, w_img = image.shape[:2]
    x0, y0 = np.floor(pts.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
    x0, y0 = max(int(x0), 0), max(int(y0), 0)
    x1, y1 = min(int(x1), w_img), min(int(y1), h_img)
    if y1 - y0 < 8 or x1 - x0 < 4:
        return None
    grey = brightest(image)
    threshold, bright_ink, raw = text_ink(grey[y0:y1, x0:x1])
    if _two_lines(raw):
        return "stacked-text"
    digit = _tallest(_closed(raw > 0, y1 - y0))
    if digit < 6:
        return None
    # The frame may cut the number: whole digits beyond a side edge its ink nearly reaches,
    # part of every digit beyond the top or bottom edge its box reaches.
    cols = np.flatnonzero(raw.any(axis=0))
    if min(x0 + cols[0], w_img - x0 - cols[-1] - 1) < EDGE * digit or min(y0, h_img - y1) < 1:
        return "partial-number"
    reach = round(REACH * digit)
    # Rows beyond the box's own: a tight box's digits fill its rows, and so does a "1" beside
    # it; a border or grid line goes on above and below.
    pad = round(BEYOND * digit)
    top, bottom = max(0, y0 - pad), min(h_img, y1 + pad)
    for lo, hi in ((max(0, x0 - reach), x0), (x1, min(w_img, x1 + reach))):
        if hi - lo < 2:
            continue
        band = grey[top:bottom, lo:hi]
        beside = band > threshold if bright_ink else band < threshold
        covered = np.zeros(band.shape, np.uint8)
        for other in others:
            shifted = np.round(other - np.array([lo, top], np.float32)).astype(np.int32)
            cv2.fillPoly(covered, [shifted], 1)
        if _has_digit(_closed(beside, y1 - y0), digit, covered):
            return "partial-number"
    return None


def number_beside(
    pts: npt.NDArray[np.float32],
    numbers: Sequence[npt.NDArray[np.float32]],
    apart: Callable[[npt.NDArray[np.float64], npt.NDArray[np.float64]], bool],
) -> bool:
    """A box read as a number (``numbers``, corners: the caller passes lone digits only, unless
    the value is one) of the value box's height, on its rows, within ``NUMBER_GAP`` of its
    height beside it and not across a tile border (``apart``): the two may be one number the
    detector boxed in pieces (seed 2600947: RR "21" read as "2")."""
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    height = float(y1 - y0)
    value = pts.astype(np.float64)
    for other in numbers:
        ox0, oy0 = other.min(axis=0)
        ox1, oy1 = other.max(axis=0)
        other_height = float(oy1 - oy0)
        if min(height, other_height) < SAME_HEIGHT * max(height, other_height):
            continue
        if min(y1, oy1) - max(y0, oy0) < SAME_ROWS * min(height, other_height):
            continue
        gap = float(max(ox0 - x1, x0 - ox1))
        if gap <= NUMBER_GAP * height and not apart(value, other.astype(np.float64)):
            return True
    return False


def unread_ink(crop: npt.NDArray[np.uint8], positions: Sequence[float]) -> str | None:
    """``"partial-number"`` when a stroke of digit height in the value's crop (as recognised)
    has no character emitted within ``EMIT_REACH`` digit heights of it; ``positions``: where
    each character was emitted, fractions of the crop's width."""
    h, w = crop.shape[:2]
    if h < 8 or w < 4 or not positions:
        return None
    mask = ink_mask(crop)
    digit = _tallest(mask)
    if digit < 6:
        return None
    reach = EMIT_REACH * digit
    xs = [p * w for p in positions]
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    for i in range(1, n):
        height = int(stats[i, cv2.CC_STAT_HEIGHT])
        left, width = int(stats[i, cv2.CC_STAT_LEFT]), int(stats[i, cv2.CC_STAT_WIDTH])
        # A tight crop's digits span all its rows, so a stroke crossing the crop may be a "1";
        # only hairlines (a tile border in the box) and ink smaller than a digit are passed.
        if height < MIN_DIGIT * digit or width <= max(2, HAIRLINE * h):
            continue
        if not any(left - reach <= x <= left + width + reach for x in xs):
            return "partial-number"
    return None


def ink_mask(crop: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """A text crop's ink (0/1), segmented digits closed vertically into whole digits."""
    return _closed(text_ink(brightest(crop))[2] > 0, crop.shape[0])


def brightest(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The brightest channel: a monitor's coloured text stands out in it on either ground.
    (Elementwise maxima of the three planes: the same values as ``max(axis=2)``, which NumPy
    reduces pixel by pixel over an axis of 3, ~10x slower.)"""
    if image.ndim != 3:
        return image
    out = np.maximum(image[..., 0], image[..., 1])
    for c in range(2, image.shape[2]):
        np.maximum(out, image[..., c], out=out)
    return out


def text_ink(grey: npt.NDArray[np.uint8]) -> tuple[float, bool, npt.NDArray[np.uint8]]:
    """Otsu threshold of a text box, whether its ink is the bright side (text is the minority
    of a text box's pixels), and the ink mask (0/1)."""
    threshold, ink = cv2.threshold(
        np.ascontiguousarray(grey), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU
    )
    bright_ink = float((ink > 0).mean()) < 0.5
    return float(threshold), bright_ink, ((ink if bright_ink else 255 - ink) > 0).astype(np.uint8)


def _closed(mask: npt.NDArray[np.bool_], box_height: int) -> npt.NDArray[np.uint8]:
    """Ink with vertical gaps up to SEGMENT_GAP of the box height filled (segmented digits)."""
    k = max(1, round(SEGMENT_GAP * box_height)) | 1
    kernel = np.ones((k, 1), np.uint8)
    return np.asarray(cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, kernel))


def _two_lines(mask: npt.NDArray[np.uint8]) -> bool:
    """Ink rows form two bands, each a real line of text, with an empty band between."""
    rows = np.flatnonzero(mask.sum(axis=1) >= max(2, 0.02 * mask.shape[1]))
    if len(rows) < 2:
        return False
    extent = int(rows[-1] - rows[0] + 1)
    gaps = np.diff(rows) - 1
    widest = int(gaps.argmax())
    if gaps[widest] < MIN_LINE_GAP * extent:
        return False
    upper = int(rows[widest] - rows[0] + 1)
    lower = int(rows[-1] - rows[widest + 1] + 1)
    return min(upper, lower) >= MIN_LINE * extent


def _tallest(mask: npt.NDArray[np.uint8]) -> int:
    """Height of the tallest ink component not spanning the whole box (a digit)."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    rows = mask.shape[0]
    heights = [int(stats[i, cv2.CC_STAT_HEIGHT]) for i in range(1, n)]
    heights = [h for h in heights if h < rows - 1] or heights
    return max(heights, default=0)


def _has_digit(mask: npt.NDArray[np.uint8], digit: int, covered: npt.NDArray[np.uint8]) -> bool:
    """A stroke of digit height in ``mask`` that is not mostly inside ``covered`` (other boxes
    that were read: ink inside one is its text). A stroke only partly inside one still counts:
    a misread box over the middle of a thin "1" ("17", confidence 0.51) must not hide it."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    rows = mask.shape[0]
    for i in range(1, n):
        top, h = int(stats[i, cv2.CC_STAT_TOP]), int(stats[i, cv2.CC_STAT_HEIGHT])
        w = int(stats[i, cv2.CC_STAT_WIDTH])
        if top == 0 and top + h >= rows:
            continue  # crosses every row looked at: a line, not a digit
        if MIN_DIGIT * digit <= h <= MAX_DIGIT * digit and w >= max(2, 0.05 * digit):
            stroke = labels == i
            if covered[stroke].mean() < MOSTLY:
                return True
    return False
