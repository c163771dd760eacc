"""Cutting a detected text box that holds texts of different sizes into one box per text.

The DB detector boxes text that stands close together as one line: a label with its small
low alarm limit ("HR60"), a label with its large value ("SPO2 82"), or a value, the next
tile's label and its value ("40.8 SPO2 82"). One box has one height, so the pairing cannot
tell a limit from a value inside it, and withholds the field. Here the box's ink says where
each text is and how tall it is drawn: a box is cut between two tokens (words at spaces, or
letters and digits that meet, "HR|60") when they are drawn at clearly different heights or
stand far apart; each piece gets the corners of its own ink. The caller reads each piece
again and keeps the cut only when every piece is read as the text it was cut from.

Never cut: within a word or a number, or off a single character ("SpO2", "T1", "HR1"): a
subscript or a one-letter remainder is no evidence of two texts.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from .box_crops import crop_box, order_clockwise
from .screen_text import classify_label, label_spans, parse_value
from .value_extent import ink_mask

__all__ = ["Piece", "Recognised", "cut_mixed", "split_box"]

MIN_HEIGHT_RATIO = 1.3  # two texts whose ink heights differ this much are two texts
MIN_GAP = 0.8  # of the taller text's height: two texts this far apart are two texts
MIN_OFFSET = 0.4  # of the taller text's height: centres this far apart in rows: two lines
REACH = 0.35  # of the crop height: how far from an emitted character its ink may stand
_TOKEN = re.compile(r"[A-Z]+|[0-9.,/\-]+|[^\sA-Z0-9.,/\-]+")


class Recognised(NamedTuple):
    """One crop read: text, mean and least-sure character confidence, and where each
    character other than a space was emitted (fractions of the crop's width)."""

    text: str
    confidence: float
    least_sure: float
    positions: tuple[float, ...]


@dataclass(frozen=True)
class Piece:
    """One text of a cut box: its text and its corners in source pixels (clockwise from
    top-left)."""

    text: str
    corners: npt.NDArray[np.float32]


def _runs(word: str) -> list[tuple[int, int]]:
    """An upper-case word's runs: each label whole with its digits ("SPO2", "SP02", "T1"),
    and between labels, letters, numbers and other characters ("HR|60", "153/115|SP02")."""
    runs: list[tuple[int, int]] = []
    start = 0
    for a, b in [*label_spans(word), (len(word), len(word))]:
        runs += [(start + m.start(), start + m.end()) for m in _TOKEN.finditer(word[start:a])]
        if b > a:
            runs.append((a, b))
        start = b
    return runs


def _tokens(text: str) -> list[tuple[int, int]] | None:
    """(first, last) indices into the non-space characters of ``text`` of each token that
    may stand on its own: words split at spaces, then letters|digits where both sides keep at
    least two characters. None: no place to cut."""
    upper = text.upper()
    spans: list[tuple[int, int]] = []
    index = 0
    for word in upper.split():
        runs = _runs(word)
        merged: list[list[int]] = []
        for a, b in runs:
            if merged and (b - a < 2 or merged[-1][1] - merged[-1][0] < 2):
                merged[-1][1] = b  # a one-character run stays with its neighbour
            else:
                merged.append([a, b])
        spans += [(index + a, index + b - 1) for a, b in merged]
        index += len(word)
    return spans if len(spans) > 1 else None


def _extent(
    stats: npt.NDArray[np.int32], xs: list[float], reach: float
) -> tuple[int, int, int, int] | None:
    """Ink box (left, top, right, bottom) of the components whose columns reach the
    characters emitted at ``xs``; None: no ink there."""
    chosen = [s for s in stats if any(s[0] - reach <= x <= s[0] + s[2] + reach for x in xs)]
    if not chosen:
        return None
    left = min(int(s[0]) for s in chosen)
    top = min(int(s[1]) for s in chosen)
    right = max(int(s[0] + s[2]) for s in chosen)
    bottom = max(int(s[1] + s[3]) for s in chosen)
    return left, top, right, bottom


def _boxes(
    crop: npt.NDArray[np.uint8], xs: list[float], spans: list[tuple[int, int]]
) -> tuple[list[tuple[int, int, int, int]], list[float]] | None:
    """Each token's ink box (components given to the nearest token's characters), and the
    columns of hairlines crossing the whole crop (tile borders)."""
    h = crop.shape[0]
    mask = ink_mask(crop)
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    hairline = [bool(s[3] >= h - 1 and s[2] <= max(2, 0.04 * h)) for s in stats[1:]]
    comps = [s for s, line in zip(stats[1:], hairline, strict=True) if not line]
    lines = [s[0] + s[2] / 2 for s, line in zip(stats[1:], hairline, strict=True) if line]
    owner: dict[int, list[npt.NDArray[np.int32]]] = {i: [] for i in range(len(spans))}
    for s in comps:
        centre = s[0] + s[2] / 2
        near = [(min(abs(centre - xs[k]) for k in range(a, b + 1)), i)
                for i, (a, b) in enumerate(spans)]  # fmt: skip
        distance, i = min(near)
        if distance <= s[2] / 2 + REACH * h:
            owner[i].append(s)
    out = []
    for i, (a, b) in enumerate(spans):
        box = _extent(np.array(owner[i]).reshape(-1, 5), xs[a : b + 1], REACH * h)
        if box is None:
            return None
        out.append(box)
    return out, lines


def _cuts(
    boxes: list[tuple[int, int, int, int]], lines: list[float], labels: list[bool], glued: bool
) -> list[int]:
    """Indices i where tokens i and i+1 are two texts: size, distance, rows or a border
    between them, or a label after text (what precedes a label is never its value); with
    ``glued``, also a label before text (a label glued to its limit, its value beside)."""
    cuts = []
    for i, (a, b) in enumerate(itertools.pairwise(boxes)):
        if (labels[i + 1] and not labels[i]) or (glued and labels[i] and not labels[i + 1]):
            cuts.append(i)
            continue
        ha, hb = a[3] - a[1], b[3] - b[1]
        taller = max(ha, hb, 1)
        offset = abs((a[1] + a[3]) - (b[1] + b[3])) / 2
        if (
            taller / max(min(ha, hb), 1) >= MIN_HEIGHT_RATIO
            or b[0] - a[2] >= MIN_GAP * taller
            or offset >= MIN_OFFSET * taller
            or any(a[2] <= x <= b[0] for x in lines)
        ):
            cuts.append(i)
    return cuts


def split_box(
    text: str,
    positions: tuple[float, ...],
    crop: npt.NDArray[np.uint8],
    pts: npt.NDArray[np.float32],
    glued: bool = False,
) -> list[Piece] | None:
    """The pieces of a box that holds texts of different sizes, or None (keep it whole).
    ``positions``: where each non-space character was emitted, fractions of the crop width;
    ``pts``: the box's corners, which ``crop`` was warped from (upright, not rotated);
    ``glued``: a larger number stands beside the box, so a label in it is cut from what
    follows it ("HR60" beside "104": the label and its low limit)."""
    where = [i for i, c in enumerate(text) if not c.isspace()]  # non-space -> text index
    h, w = crop.shape[:2]
    if len(where) != len(positions) or h < 8 or w < h:
        return None
    spans = _tokens(text)
    if spans is None:
        return None
    xs = [p * w for p in positions]
    measured = _boxes(crop, xs, spans)
    if measured is None:
        return None
    boxes, lines = measured
    squeezed = "".join(text.split()).upper()
    labels = [classify_label(squeezed[a : b + 1]) is not None for a, b in spans]
    cuts = _cuts(boxes, lines, labels, glued)
    if not cuts:
        return None
    groups, start = [], 0
    for cut in [*cuts, len(spans) - 1]:
        groups.append((start, cut))
        start = cut + 1
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    back = cv2.getPerspectiveTransform(dst, pts.astype(np.float32))
    pieces = []
    for g0, g1 in groups:
        left, top, right, bottom = (
            min(boxes[k][0] for k in range(g0, g1 + 1)),
            min(boxes[k][1] for k in range(g0, g1 + 1)),
            max(boxes[k][2] for k in range(g0, g1 + 1)),
            max(boxes[k][3] for k in range(g0, g1 + 1)),
        )
        pad = 0.08 * (bottom - top) + 1  # the recogniser wants a margin round the glyphs
        rect = np.array([[left - pad, top - pad], [right + pad, top - pad],
                         [right + pad, bottom + pad], [left - pad, bottom + pad]], np.float32)  # fmt: skip
        rect[:, 0] = np.clip(rect[:, 0], 0, w)
        rect[:, 1] = np.clip(rect[:, 1], 0, h)
        corners = cv2.perspectiveTransform(rect[None], back)[0]
        piece_text = text[where[spans[g0][0]] : where[spans[g1][1]] + 1]
        pieces.append(Piece(piece_text, np.asarray(corners, np.float32)))
    return pieces


def cut_mixed(
    image: npt.NDArray[np.uint8],
    boxes: list[tuple[npt.NDArray[np.float32], float]],
    crops: list[npt.NDArray[np.uint8]],
    recognised: list[Recognised],
    recognise: Callable[[list[npt.NDArray[np.uint8]]], list[Recognised]],
    min_confidence: float,
) -> tuple[
    list[tuple[npt.NDArray[np.float32], float]], list[npt.NDArray[np.uint8]], list[Recognised]
]:
    """Boxes holding texts of different sizes cut into one box per text (box_split.py);
    a cut is kept only if every piece, read again on its own, says what it was cut
    from (one recogniser batch per screen)."""
    cuts = {}
    numbers = [
        pts for (pts, _), read in zip(boxes, recognised, strict=True)
        if read.confidence >= min_confidence and parse_value(read.text) is not None
    ]  # fmt: skip
    for i, ((pts, _), crop, read) in enumerate(zip(boxes, crops, recognised, strict=True)):
        if read.confidence >= min_confidence:
            pieces = split_box(read.text, read.positions, crop, pts, _beside_larger(pts, numbers))
            if pieces:
                cuts[i] = pieces
    if not cuts:
        return boxes, crops, recognised
    flat = [p for i in sorted(cuts) for p in cuts[i]]
    piece_crops = [crop_box(image, order_clockwise(p.corners)) for p in flat]
    reads = iter(zip(flat, piece_crops, recognise(piece_crops), strict=True))
    out_boxes, out_crops, out_reads = [], [], []
    for i, (box, crop, read) in enumerate(zip(boxes, crops, recognised, strict=True)):
        mine = [next(reads) for _ in cuts.get(i, ())]
        same = [
            _same_text(p.text, again.text) and again.confidence >= min_confidence
            for p, _, again in mine
        ]
        # A dash or star marker cut off a number ("77 --": the next tile's no-value) is
        # misread alone, without the digits' context: it keeps the text it was cut from
        # when every other piece re-reads. A marker only ever withholds a field.
        dashes = [_PUNCTUATION_MARKER.match(p.text) is not None for p, _, _ in mine]
        if mine and any(same) and all(a or b for a, b in zip(same, dashes, strict=True)):
            out_boxes += [(order_clockwise(p.corners), box[1]) for p, _, _ in mine]
            out_crops += [c for _, c, _ in mine]
            out_reads += [
                again if ok else _as_cut(p.text, read)
                for (p, _, again), ok in zip(mine, same, strict=True)
            ]
        else:
            out_boxes.append(box)
            out_crops.append(crop)
            out_reads.append(read)
    return out_boxes, out_crops, out_reads


def _beside_larger(pts: npt.NDArray[np.float32], numbers: list[npt.NDArray[np.float32]]) -> bool:
    """Whether a number box at least 1.3 times as tall as ``pts`` stands right of it or below
    it, within a few of its heights (where a label's value is drawn)."""
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    h = max(float(y1 - y0), 1.0)
    for other in numbers:
        (a, b), (c, d) = other.min(axis=0), other.max(axis=0)
        cx, cy = (a + c) / 2, (b + d) / 2
        if d - b >= MIN_HEIGHT_RATIO * h and x0 <= cx <= x1 + 6 * h and y0 - h <= cy <= y1 + 4 * h:
            return True
    return False


_PUNCTUATION_MARKER = re.compile(r"^[-?*.]{2,}$")


def _as_cut(text: str, whole: Recognised) -> Recognised:
    """A piece's reading taken from the whole box's: its text, the box's confidences, its
    characters evenly across the piece."""
    n = len(text)
    return Recognised(
        text, whole.confidence, whole.least_sure, tuple((k + 0.5) / n for k in range(n))
    )


def _same_text(a: str, b: str) -> bool:
    return "".join(a.upper().split()) == "".join(b.upper().split())
