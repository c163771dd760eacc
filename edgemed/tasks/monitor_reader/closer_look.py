"""A closer look where a value's label should be but no text was found.

Monitors draw labels small beside large values: on a wide screen an "HR" or "SpO2" can be
7-9 pixels tall, below what the text detector resolves at the screen's scale (the screen is
at most 960 pixels on its longer side for the detector), so the value is found and its label
is not, and the field is lost (``not-shown``). Where a large number has no label text near it
(left of it and above it, in its own heights), that region is cut out, enlarged and run
through the detector again; the boxes found there that were not found before are read like
the others and join the screen. At most ``MAX_REGIONS`` regions per screen (the largest
numbers first), so a screen costs at most that many small detector runs more.

A label of one or two letters ("T", "T1") is missed by the detector even enlarged (a DB
detector finds words, not lone glyphs). So the region is also searched for words of ink
(``ink_words``): glyph-sized connected components of the region's minority tone, grouped
into lines, each read by the recogniser. Only what reads as a label joins the screen: a probe
never adds a number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
import numpy.typing as npt

from .box_crops import crop_box
from .box_split import Recognised
from .screen_text import classify_label, parse_value

__all__ = [
    "MAX_PIXELS", "MAX_REGIONS", "SCALE", "ink_words", "label_regions", "look_closer", "new_boxes",
    "scale_for",
]  # fmt: skip

SCALE = 2.5  # enlargement of a region: an 8-pixel label becomes a 20-pixel one
MAX_PIXELS = 200_000  # of an enlarged region (the screen is at most 960 x 960 for the detector)
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
    values = [
        v for v in (_bounds(b) for b, _ in numbers) if v[3] - v[1] >= MIN_OVER_TALLEST * tallest
    ]
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
            own[0] <= (a + c) / 2 <= own[2]
            and own[1] <= (b + d) / 2 <= own[3]
            and not _beside_another(a, b, c, d, pts, values)
            for a, b, c, d in labels
        ):
            continue
        regions.append(r)
        if len(regions) >= MAX_REGIONS:
            break
    return [(int(a), int(b), int(np.ceil(c)), int(np.ceil(d))) for a, b, c, d in regions]


def _beside_another(
    a: float,
    b: float,
    c: float,
    d: float,
    pts: npt.NDArray[np.float32],
    values: list[tuple[float, float, float, float]],
) -> bool:
    """Whether the label (a, b, c, d) stands just left of another value, level with it: that
    value's label, not one above this value ("RESP 32" above "40.7" whose "T1" was missed)."""
    mine = _bounds(pts)
    cy = (b + d) / 2
    return any(
        v != mine and v[1] <= cy <= v[3] and c <= v[0] + 1 and v[0] - c <= 4 * (v[3] - v[1])
        for v in values
    )  # fmt: skip


def scale_for(region: tuple[int, int, int, int]) -> float:
    """SCALE, or less for a large region (a large value, whose label is larger too): the
    enlarged region holds at most MAX_PIXELS, so the extra detector runs stay a fraction of
    the screen's own."""
    x0, y0, x1, y1 = region
    area = max((x1 - x0) * (y1 - y0), 1)
    return float(min(SCALE, np.sqrt(MAX_PIXELS / area)))


def enlarged(
    image: npt.NDArray[np.uint8], region: tuple[int, int, int, int], scale: float = SCALE
) -> npt.NDArray[np.uint8]:
    x0, y0, x1, y1 = region
    crop = image[y0:y1, x0:x1]
    return np.asarray(
        cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC), np.uint8
    )


def new_boxes(
    found: Sequence[tuple[npt.NDArray[np.float32], float]],
    region: tuple[int, int, int, int],
    known: Sequence[npt.NDArray[np.float32]],
    scale: float = SCALE,
) -> list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], float]]:
    """(corners in the enlarged region, corners in the source, score) of each box ``found`` in
    the enlarged region whose centre no box of the screen (``known``) already covers."""
    x0, y0 = region[0], region[1]
    out = []
    for pts, score in found:
        source = (pts / scale + np.array([x0, y0], np.float32)).astype(np.float32)
        cx, cy = source.mean(axis=0)
        covered = any(
            cv2.pointPolygonTest(k.astype(np.float32), (float(cx), float(cy)), False) >= 0
            for k in known
        )
        if not covered and _share_covered(source, known) < 0.5:  # e.g. "HR60" cut in two
            out.append((pts, source, score))
    return out


def _share_covered(box: npt.NDArray[np.float32], known: Sequence[npt.NDArray[np.float32]]) -> float:
    """The share of ``box``'s bounding rectangle that the ``known`` boxes' rectangles cover
    (overlaps between known boxes counted twice: an upper bound)."""
    a0, b0, a1, b1 = _bounds(box)
    area = max((a1 - a0) * (b1 - b0), 1e-6)
    total = 0.0
    for k in known:
        c0, d0, c1, d1 = _bounds(k)
        total += max(0.0, min(a1, c1) - max(a0, c0)) * max(0.0, min(b1, d1) - max(b0, d0))
    return total / area


# Ink words: glyphs from 4 px up to this share of the value's height (labels are smaller than
# their value), at most this many words per region (those nearest the value first).
MAX_GLYPH_OVER_VALUE = 0.75
MAX_WORDS = 4


def ink_words(
    image: npt.NDArray[np.uint8],
    region: tuple[int, int, int, int],
    known: Sequence[npt.NDArray[np.float32]],
) -> list[npt.NDArray[np.float32]]:
    """Corners (source pixels, clockwise from top-left) of lines of glyph-sized ink in
    ``region`` that no ``known`` box covers: candidates for a label the detector missed. The
    value's height is read back from the region's size (``label_regions``)."""
    x0, y0, x1, y1 = region
    crop = image[y0:y1, x0:x1]
    if crop.size == 0 or min(crop.shape[:2]) < 8:
        return []
    value_h = (y1 - y0) / (1 + ABOVE + BELOW)
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    t, ink = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if float(np.median(gray)) > t:  # light background: the ink is the dark side
        ink = 255 - ink
    n, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    glyphs = []
    for x, y, w, h, area in stats[1:n]:
        if not 4 <= h <= MAX_GLYPH_OVER_VALUE * value_h or w > 2.5 * h or area < 0.12 * w * h:
            continue
        cx, cy = float(x0 + x + w / 2), float(y0 + y + h / 2)
        if any(cv2.pointPolygonTest(k.astype(np.float32), (cx, cy), False) >= 0 for k in known):
            continue
        glyphs.append((int(x), int(y), int(w), int(h)))
    words: list[list[int]] = []  # x0, y0, x1, y1 in crop pixels
    for x, y, w, h in sorted(glyphs):
        last = words[-1] if words else None
        if last is not None:
            overlap = min(last[3], y + h) - max(last[1], y)
            height = max(last[3] - last[1], h)
            if overlap >= 0.5 * min(last[3] - last[1], h) and x - last[2] <= 0.8 * height:
                last[:] = [last[0], min(last[1], y), max(last[2], x + w), max(last[3], y + h)]
                continue
        words.append([x, y, x + w, y + h])
    # Nearest the value first: it stands at the region's lower right (RIGHT, BELOW margins).
    ref = np.array([crop.shape[1] - (RIGHT + 1) * value_h, crop.shape[0] - (BELOW + 0.5) * value_h])
    words.sort(
        key=lambda b: float(np.hypot((b[0] + b[2]) / 2 - ref[0], (b[1] + b[3]) / 2 - ref[1]))
    )
    out = []
    for a, b, c, d in words[:MAX_WORDS]:
        # A margin as the detector's boxes have, and never narrower than tall: a lone "T"
        # would be taken for vertical text and turned (crop_box).
        py = 0.35 * (d - b)
        px = max(py, (1.2 * (d - b) - (c - a)) / 2)
        box = np.array(
            [[a - px, b - py], [c + px, b - py], [c + px, d + py], [a - px, d + py]], np.float32
        ) + np.array([x0, y0], np.float32)
        box[:, 0] = np.clip(box[:, 0], 0, image.shape[1] - 1)
        box[:, 1] = np.clip(box[:, 1], 0, image.shape[0] - 1)
        out.append(box)
    return out


Boxes = list[tuple[npt.NDArray[np.float32], float]]


def look_closer(
    image: npt.NDArray[np.uint8],
    boxes: Boxes,
    crops: list[npt.NDArray[np.uint8]],
    recognised: list[Recognised],
    detect: Callable[[npt.NDArray[np.uint8]], Boxes],
    recognise: Callable[[list[npt.NDArray[np.uint8]]], list[Recognised]],
    min_confidence: float,
) -> None:
    """Labels too small for the detector at the screen's scale, looked for again beside each
    large number that has none: the detector on the enlarged region, then words of ink there.
    What is found joins ``boxes``, ``crops`` and ``recognised`` (ink words only as labels)."""
    ok = [r.confidence >= min_confidence for r in recognised]
    kept = [b[0] for b, good in zip(boxes, ok, strict=True) if good]
    texts = [r.text for r, good in zip(recognised, ok, strict=True) if good]
    found: list[tuple[npt.NDArray[np.float32], float, npt.NDArray[np.uint8]]] = []
    probes: list[tuple[npt.NDArray[np.float32], float, npt.NDArray[np.uint8]]] = []
    for region in label_regions(kept, texts, image.shape):
        scale = scale_for(region)
        big = enlarged(image, region, scale)
        for inner, source, score in new_boxes(detect(big), region, kept, scale):
            found.append((source, score, crop_box(big, inner)))
            kept.append(source)  # found once, even where two regions overlap
        for source in ink_words(image, region, kept):
            probes.append((source, 0.0, crop_box(image, source)))
            kept.append(source)
    if not found and not probes:
        return
    read = recognise([crop for _, _, crop in found + probes])
    for i, ((source, score, crop), what) in enumerate(zip(found + probes, read, strict=True)):
        if i >= len(found) and not (
            what.confidence >= min_confidence and classify_label(what.text)
        ):
            continue  # a probe joins only as a confidently read label
        boxes.append((source, score))
        crops.append(crop)
        recognised.append(what)
