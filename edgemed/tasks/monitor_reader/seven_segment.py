"""Seven-segment digits checked against their segments: a pixel check (no model) on the
recogniser's reading where it is weakest.

PP-OCRv4 was never trained on seven-segment digits, and its misreads there are confident and
plausible, always a familiar digit with **more** segments than are lit: DSEG7's "7" (segments
a, b, c, f) read "9", "4" read "8", "5" read "9" ("157" read "159" at confidence > 0.98 by both
reads of the value). Each glyph of the value's crop is cut out (columns of ink, slant removed)
and the places of the seven segments looked at: each place is lit (at least LIT ink) or empty
(at most UNLIT), and the lit places must spell a digit. A glyph narrower than a third of its
height is a "1" (or the slash of a blood pressure, where one was read).

When every glyph spells a digit this way and, for one of them, the digit read has every lit
segment and more, on places that are empty, the value is withheld (``segments-disagree``):
that is the recogniser's way of misreading segments, and a digit that needs ink where the
screen has none is wrong whatever the font. Other differences give no opinion: ordinary fonts
light the places differently (a sans-serif "7" with its diagonal spells "2", a serif "1" with
flag and foot a "6"), and a reading that needs fewer segments than are lit is never refused
(curved strokes only add ink to the places). Where a place is neither lit nor empty, a glyph
spells no digit, or the glyphs cannot be matched one to one with what was read, the check
gives no opinion. It only ever withholds.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from .value_extent import brightest, text_ink

__all__ = ["glyph_segments", "segments_disagree"]

# Lit segments that spell each digit, as the DSEG fonts and monitors draw them: a (top),
# b (upper right), c (lower right), d (bottom), e (lower left), f (upper left), g (middle).
# "7" comes with and without f, "6" and "9" with and without their tails a and d.
SPELLS = {
    "abcdef": "0",
    "bc": "1",
    "abdeg": "2",
    "abcdg": "3",
    "bcfg": "4",
    "acdfg": "5",
    "acdefg": "6",
    "cdefg": "6",
    "abc": "7",
    "abcf": "7",
    "abcdefg": "8",
    "abcdfg": "9",
    "abcfg": "9",
}
# The segments each digit needs in its leanest form.
NEEDS = {
    digit: frozenset(sorted((lit for lit, d in SPELLS.items() if d == digit), key=len)[0])
    for digit in "0123456789"
}
# And in its fullest form.
FULL = {
    digit: frozenset().union(*(lit for lit, d in SPELLS.items() if d == digit)) for digit in NEEDS
}
# Where each segment lies in a glyph's box (fractions of its width and height: x0, x1, y0, y1).
REGIONS = {
    "a": (0.3, 0.7, 0.0, 0.16),
    "b": (0.72, 1.0, 0.18, 0.42),
    "c": (0.72, 1.0, 0.58, 0.82),
    "d": (0.3, 0.7, 0.84, 1.0),
    "e": (0.0, 0.28, 0.58, 0.82),
    "f": (0.0, 0.28, 0.18, 0.42),
    "g": (0.3, 0.7, 0.4, 0.6),
}
LIT = 0.2  # ink share of a segment's place at least this: the segment is lit
UNLIT = 0.03  # at most this: the segment is not there; between the two: no opinion
NARROW = 0.32  # of the digit height: a narrower glyph has no horizontal segment
# A narrow glyph reaching this near the digits' top and bottom is a "1" (segments b and c). A
# seven-segment "1" starts below the other digits' top segment and ends above the bottom one:
# DSEG7 Classic's, beside a "7", left 4 of 34 rows free above it (the "17" read "19" kept).
ONE_REACH = 0.2
MIN_DIGIT_HEIGHT = 16  # pixels: smaller digits' segment places are not resolved reliably
SHEARS = np.linspace(-0.3, 0.3, 13)  # slants tried (italic DSEG7 Classic, residual perspective)


def segments_disagree(crop: npt.NDArray[np.uint8], text: str) -> bool:
    """Whether a digit of ``text`` (the recogniser's reading of ``crop``) needs a segment
    whose place in its glyph is empty, every glyph spelling a digit. Glyphs are matched to the
    digits and slashes read, in order; decimal points make no glyph."""
    chars = [ch for ch in text if ch in NEEDS or ch == "/"]  # ASCII digits (full-width ones exist)
    glyphs = glyph_segments(crop)
    if glyphs is None or len(glyphs) != len(chars):
        return False
    needs_empty = False
    for ch, lit in zip(chars, glyphs, strict=True):
        if ch == "/":
            continue
        if lit is None or "".join(sorted(lit)) not in SPELLS:
            return False  # a glyph that spells no digit: not seven-segment, no opinion
        # The recogniser's way of misreading segments: every lit one seen, more added.
        added = lit < FULL[ch] and not NEEDS[ch] <= lit
        needs_empty = needs_empty or added
    return needs_empty


def glyph_segments(crop: npt.NDArray[np.uint8]) -> list[frozenset[str] | None] | None:
    """For each glyph of the crop's tallest line of ink, left to right, its lit segments
    (None: a place neither lit nor empty); None when the crop is too small or has no glyph."""
    grey = brightest(crop)
    if grey.shape[0] < MIN_DIGIT_HEIGHT or grey.shape[1] < 4:
        return None
    ink = _without_lines(text_ink(grey)[2])  # Otsu, the minority side: bright or dark text
    rows = _digit_rows(ink)
    if rows is None:
        return None
    top, bottom = rows
    height = bottom - top
    if height < MIN_DIGIT_HEIGHT:
        return None
    upright = _upright(ink[top:bottom])
    glyphs = [_lit(upright[:, x0:x1], height) for x0, x1 in _glyphs(upright, height)]
    return glyphs or None


def _without_lines(ink: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Ink without horizontal rules (a tile border or grid line crossing the crop)."""
    h, w = ink.shape
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    out: npt.NDArray[np.uint8] = ink.copy()
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_WIDTH] >= 0.6 * w and stats[i, cv2.CC_STAT_HEIGHT] <= 0.1 * h:
            out[labels == i] = 0
    return out


def _digit_rows(ink: npt.NDArray[np.uint8]) -> tuple[int, int] | None:
    """Rows of the tallest ink: a digit's segments closed vertically into the whole digit
    (the gaps between them are at most ~4 % of its height in the DSEG fonts)."""
    h = ink.shape[0]
    k = max(1, round(0.06 * h)) | 1
    closed = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, np.ones((k, 1), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    if n < 2:
        return None
    tallest = int(stats[1:, cv2.CC_STAT_HEIGHT].max())
    tall = [i for i in range(1, n) if stats[i, cv2.CC_STAT_HEIGHT] >= 0.8 * tallest]
    top = min(int(stats[i, cv2.CC_STAT_TOP]) for i in tall)
    bottom = max(int(stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT]) for i in tall)
    return top, bottom


def _upright(ink: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The ink sheared upright: the slant that leaves the fewest columns with ink."""
    h, w = ink.shape
    pad = int(np.ceil(max(abs(SHEARS)) * h)) + 1
    padded = cv2.copyMakeBorder(ink, 0, 0, pad, pad, cv2.BORDER_CONSTANT, value=0)
    best, best_cols = padded, np.inf
    for s in SHEARS:
        # x' = x + s * (y - h/2): a glyph leaning right (top to the right) is sheared back.
        m = np.array([[1.0, s, -s * h / 2], [0.0, 1.0, 0.0]], np.float32)
        sheared = cv2.warpAffine(padded, m, (w + 2 * pad, h), flags=cv2.INTER_NEAREST)
        cols = int((sheared.sum(axis=0) > 0).sum())
        if cols < best_cols:
            best, best_cols = sheared, cols
    return np.asarray(best, np.uint8)


def _glyphs(ink: npt.NDArray[np.uint8], height: int) -> list[tuple[int, int]]:
    """Column runs of the digits' ink above their lowest fifth (so a decimal point makes no
    glyph and joins no two), runs closer than a small gap joined (one digit's own segments)."""
    cols = np.flatnonzero(ink[: round(0.8 * height)].sum(axis=0) > 0)
    if len(cols) == 0:
        return []
    joined = max(1, round(0.05 * height))
    runs = [[int(cols[0]), int(cols[0]) + 1]]
    for x in cols[1:]:
        if x - runs[-1][1] <= joined:
            runs[-1][1] = int(x) + 1
        else:
            runs.append([int(x), int(x) + 1])
    return [(a, b) for a, b in runs]


def _lit(cell: npt.NDArray[np.uint8], height: int) -> frozenset[str] | None:
    """The glyph's lit segments, or None where a segment's place is neither lit nor empty."""
    h, w = cell.shape
    if w < NARROW * height:  # too narrow for a horizontal segment: a "1" if it is tall
        rows = np.flatnonzero(cell.any(axis=1))
        tall = len(rows) > 0 and rows[0] <= ONE_REACH * h and rows[-1] >= (1 - ONE_REACH) * h
        return frozenset("bc") if tall else None
    lit = []
    for name, (x0, x1, y0, y1) in REGIONS.items():
        region = cell[round(y0 * h) : max(round(y1 * h), round(y0 * h) + 1),
                      round(x0 * w) : max(round(x1 * w), round(x0 * w) + 1)]  # fmt: skip
        share = float(region.mean())
        if share >= LIT:
            lit.append(name)
        elif share > UNLIT:
            return None
    return frozenset(lit)
