"""Where two boxes stand relative to each other, for the pairing's safety rules.

* **Text between a label and its number.** A monitor draws a parameter's value next to its
  label; limits and units may stand between them, but never another parameter's text. A box
  whose centre lies on the way from the label to the number (within half the number's height
  of the line joining their centres, between 15 % and 85 % of the way), or whose box that part
  of the line passes through, is text between them: the number may belong to another label
  that was not read (a central-station row "Temp 37.2 NBP OFF RR 28" read with "NBP OFF RR"
  unreadable gave RR's 28 to Temp; a side column's SpO2 label read "YSp02%", a wide box whose
  centre lay off the line, gave its 94 to the HR label above, which showed no value).
* **Two numbers stacked.** Alarm limits are drawn as two small numbers, one over the other. A
  candidate value no more than twice its label's height with a number of comparable height
  right above or below it, overlapping it in columns, is one of such a pair (the value itself
  unread: a thin "7" the detector missed, its limits "25" over "8" taken for the value).
* **Another label on the value's rows.** A value stands on its own label's rows or below
  them; another label on the same side of it whose centre lies on the value's rows, where its
  own label's does not, may be the value's label.
* **A value on the label's rows.** A value wholly below its label while another number at
  least as tall stands on the label's rows, on the same side: that number may be the label's
  value, drawn higher than the label (a vertical list's HR 179, its centre above the HR label's
  top, so claimed by no label; the RR's 24 below, its own label unread, went to HR).
* **A number on a label's own box.** A label glued to a number in one box ("HR 50") may be
  the label and its low alarm limit, the value unread: a number whose box overlaps that box,
  whatever its colour (limits may be drawn in another tint than the label), says so.
* **Far below its label.** A value stands close under its label: on 600 development screens
  (tuning seeds 200000+, held-out-family seeds 5000000+, 300 each) no correctly paired
  value's top lay more than 4.5 label heights below its label's bottom (99.9th percentile
  4.2, 1,764 pairs). A number further down is another tile's value whose own label went
  unread (a widescreen RR label, its "-?-" not detected, took the SpO2's 80 from the tile
  below: 6.8 label heights). The limit, 6, lies between the two.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from .screen_text import Box

__all__ = [
    "not_its_own",
    "on_its_rows",
    "on_label_rows",
    "one_of_a_pair",
    "overlapping",
    "stacked",
    "text_between",
]

MIN_WAY, MAX_WAY = 0.15, 0.85  # of the way from the label's centre to the number's
WAY_SAMPLES = 33  # points tested along the way
MAX_ASIDE = 0.5  # of the number's height: how far from that line a box is still between
MIN_STACKED_HEIGHT = 0.6  # the smaller of two stacked numbers, relative to the larger
# Alarm limits are drawn about as tall as the label; a value in a column of tiles is drawn
# much taller, with the next tile's value close below it.
MAX_LIMIT_OVER_LABEL = 2.0
MAX_STACK_GAP = (
    0.2  # of the larger's height: limits are stacked tight; values of a column of tiles are not
)
MAX_GAP_BELOW_LABEL = 6.0  # label heights from the label's bottom to the value's top
MIN_OVERLAP = 0.2  # of the smaller box's area: two boxes sharing this much overlap
MIN_ROW_RIVAL = 0.8  # of the value's height: a number on the label's rows this tall rivals it


def text_between(label: Box, number: Box, others: Iterable[Box]) -> Box | None:
    """The first of ``others`` standing between ``label`` and ``number``, or None: its centre
    near the way from one to the other, or its box crossed by that way."""
    a, b = label.centre, number.centre
    way = b - a
    length = float(np.hypot(*way))
    if length < 1.0:
        return None
    unit = way / length
    for other in others:
        if other.index in (label.index, number.index):
            continue
        d = other.centre - a
        along = float(d @ unit) / length
        aside = abs(float(d[0] * unit[1] - d[1] * unit[0]))
        if MIN_WAY < along < MAX_WAY and aside <= MAX_ASIDE * number.height:
            return other
        if _crossed(other.corners, a + MIN_WAY * way, a + MAX_WAY * way):
            return other
    return None


def _crossed(
    quad: npt.NDArray[np.float64], p: npt.NDArray[np.float64], q: npt.NDArray[np.float64]
) -> bool:
    """Whether the segment p-q passes through the convex quadrilateral ``quad`` (tested at
    WAY_SAMPLES points: a box thinner than the spacing could be missed, text boxes are not)."""
    points = p + np.linspace(0.0, 1.0, WAY_SAMPLES)[:, None] * (q - p)
    edges = np.roll(quad, -1, axis=0) - quad  # (4, 2)
    rel = points[:, None, :] - quad[None, :, :]  # (n, 4, 2)
    cross = edges[None, :, 0] * rel[..., 1] - edges[None, :, 1] * rel[..., 0]
    inside = np.all(cross >= 0, axis=1) | np.all(cross <= 0, axis=1)
    return bool(inside.any())


def stacked(value: Box, other: Box) -> bool:
    """Whether ``other`` is drawn right above or below ``value`` at a comparable height."""
    hv, ho = value.height, other.height
    if min(hv, ho) < MIN_STACKED_HEIGHT * max(hv, ho):
        return False
    v0, v1 = value.corners[:, 0].min(), value.corners[:, 0].max()
    o0, o1 = other.corners[:, 0].min(), other.corners[:, 0].max()
    overlap = min(v1, o1) - max(v0, o0)
    if overlap < 0.5 * min(v1 - v0, o1 - o0):
        return False
    top_v, bottom_v = value.corners[:, 1].min(), value.corners[:, 1].max()
    top_o, bottom_o = other.corners[:, 1].min(), other.corners[:, 1].max()
    gap = max(top_o - bottom_v, top_v - bottom_o)
    # Detector boxes are padded (unclip), so two stacked numbers' boxes may overlap a little.
    return bool(-0.35 * max(hv, ho) <= gap <= MAX_STACK_GAP * max(hv, ho))


def not_its_own(
    label: Box,
    value: Box,
    blocking: Iterable[Box],
    numbers: Iterable[Box],
    labels: Iterable[Box] = (),
) -> str | None:
    """Why ``value`` may not be ``label``'s own value (text between them, another of the
    screen's ``labels`` on its rows, the value far below the label, or one of its ``numbers``
    stacked on it), or None."""
    between = text_between(label, value, blocking)
    if between is not None:
        return f"{between.text!r} stands between the label and {value.text!r}"
    beside = on_its_rows(label, value, labels)
    if beside is not None:
        return f"{value.text!r} stands on the rows of {beside.text!r}, not of {label.text!r}"
    rival = on_label_rows(label, value, numbers)
    if rival is not None:
        return f"{rival.text!r} stands on the rows of {label.text!r}, {value.text!r} below them"
    below = float(value.corners[:, 1].min() - label.corners[:, 1].max()) / label.height
    if below > MAX_GAP_BELOW_LABEL:
        return f"{value.text!r} stands {below:.1f} label heights below {label.text!r}"
    if value.height >= MAX_LIMIT_OVER_LABEL * label.height:
        return None  # drawn far larger than its label: a value, not an alarm limit
    on_top = [b for b in numbers if b.index != value.index and stacked(value, b)]
    if on_top:
        return f"{value.text!r} and {on_top[0].text!r} are stacked: alarm limits?"
    return None


def on_its_rows(label: Box, value: Box, labels: Iterable[Box]) -> Box | None:
    """Another label whose centre lies on ``value``'s rows, on the same side of it as
    ``label``, whose own centre does not: the value may be that label's. (A vertical list draws
    large values higher than their labels: the HR's "***" stood above the HR label, claimed by
    none, and the SpO2's 90, its centre above the SpO2 label's top, went to the HR label.)"""
    top, bottom = value.corners[:, 1].min(), value.corners[:, 1].max()
    x = value.centre[0]
    if top <= label.centre[1] <= bottom:
        return None
    left = label.centre[0] < x
    for other in labels:
        on_rows = top <= other.centre[1] <= bottom
        if other.index != label.index and on_rows and (other.centre[0] < x) == left:
            return other
    return None


def on_label_rows(label: Box, value: Box, numbers: Iterable[Box]) -> Box | None:
    """For ``value`` wholly below ``label``: another of ``numbers``, at least MIN_ROW_RIVAL of
    the value's height, whose rows hold the label's centre, on the value's side of it."""
    if value.corners[:, 1].min() <= label.corners[:, 1].max():
        return None
    right = value.centre[0] > label.centre[0]
    for other in numbers:
        if other.index == value.index or other.height < MIN_ROW_RIVAL * value.height:
            continue
        top, bottom = other.corners[:, 1].min(), other.corners[:, 1].max()
        if top <= label.centre[1] <= bottom and (other.centre[0] > label.centre[0]) == right:
            return other
    return None


def overlapping(box: Box, numbers: Iterable[Box]) -> Box | None:
    """One of ``numbers`` whose box overlaps ``box`` (upright extents) by at least MIN_OVERLAP
    of the smaller box's area."""
    x0, y0 = box.corners.min(axis=0)
    x1, y1 = box.corners.max(axis=0)
    for other in numbers:
        if other.index == box.index:
            continue
        ox0, oy0 = other.corners.min(axis=0)
        ox1, oy1 = other.corners.max(axis=0)
        shared = max(0.0, min(x1, ox1) - max(x0, ox0)) * max(0.0, min(y1, oy1) - max(y0, oy0))
        smaller = min((x1 - x0) * (y1 - y0), (ox1 - ox0) * (oy1 - oy0))
        if smaller > 0 and shared >= MIN_OVERLAP * smaller:
            return other
    return None


def one_of_a_pair(number: Box, value: Box, numbers: Iterable[Box]) -> bool:
    """Whether ``number``, smaller than ``value``, has another number of its size stacked on
    it (not the value): one of a pair of alarm limits."""
    return any(b.index not in (number.index, value.index) and stacked(number, b) for b in numbers)
