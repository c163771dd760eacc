"""Recognised screen texts -> vital-sign fields (pure Python, no model).

A monitor shows each parameter as a label ("HR", "SpO2", "NIBP", "RR", "Temp"/"T") with its
value beside or below it, in the same colour. The reader:

1. classifies every recognised box as a label (possibly with its value in the same box, e.g.
   "HR 72"), a value (``72``, ``120/80``, ``36.8``, optionally followed by a unit), a "no value"
   marker (``--``, ``---``, ``-?-``) or other text (units, clock, alarm banners);
2. pairs labels with value boxes greedily, cheapest first: a value must lie right of the
   label's left edge and not above its top, have the label's value shape (``sys/dia`` for NIBP,
   a number otherwise) and a physiologically plausible magnitude; the cost is the distance
   between box centres over the label height, tripled by a colour mismatch. Labels of
   parameters not reported (PR, Pulse, etCO2, ST...) take part so their numbers are never
   given to a reported parameter;
   A box with an unknown word of four or more letters (a misread label) also claims a number.
3. a label left without a value, or paired with a "no value" marker, gives None: the reader
   never guesses. Out-of-range numbers are never paired (ranges below).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "PLAUSIBLE",
    "Box",
    "Pairing",
    "classify_label",
    "pair_fields",
    "parse_value",
    "split_labels",
]

# Accepted display ranges (inclusive); a number outside is not paired with the parameter.
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "hr": (20, 300),
    "spo2": (50, 100),
    "nibp_systolic": (40, 300),
    "nibp_diastolic": (15, 200),
    "rr": (0, 80),
    "temperature": (25.0, 45.0),
}
# A label ends where letters end, or where a unit glued to it begins ("HRbpm", "SpO2%").
_END = r"(?=$|[^A-Z]|BPM|MMHG|RPM|BRPM)"
_LABELS: list[tuple[str, re.Pattern[str]]] = [
    ("spo2", re.compile(r"(SPO2|SP02|SPO|SPOZ|SAT)" + _END)),
    ("nibp", re.compile(r"(NIBP|NBP|BP)" + _END)),
    ("hr", re.compile(r"HR" + _END)),
    ("rr", re.compile(r"(RR|RESP|AWRR)" + _END)),
    ("temperature", re.compile(r"(TEMP|TMP|T[12]?)" + _END)),
    # Parameters the reader does not report: they still claim their numbers.
    ("other", re.compile(r"(PR|PULSE|ETCO2|ETC02|CO2|ST|BED|PVC|FICO2|IBP|ART|CVP)" + _END)),
]
# Labels start a new segment unless glued to letters before them ("199/80RESP" splits).
_ANY_LABEL = re.compile(r"(?<![A-Z])(?:" + "|".join(p.pattern for _, p in _LABELS) + ")")
_LEADING_UNIT = re.compile(r"^(?:BPM|BRPM|RPM|MMHG|/MIN|%|°C)(?:\s+|$)")
MIN_COLOUR_SIMILARITY = 0.9  # cosine of the label's and the value's mean BGR text colour
_UNITS = {"%", "BPM", "MMHG", "RPM", "/MIN", "°C", "C", "BRPM", "°F", "F"}
_WORD = re.compile(r"[A-Z]{4,}")
_UNIT = r"\s*(?:%|BPM|MMHG|RPM|/MIN|°C|°|C|BRPM)?\s*$"
_BP = re.compile(r"^(\d{2,3})\s*/\s*(\d{2,3})(?:\s*\(\s*\d{2,3}\s*\)?)?" + _UNIT)
_NUM = re.compile(r"^(-?\d{1,3}(?:\.\d{1,2})?)" + _UNIT)
_NONE = re.compile(r"^[-?_.\s]*-[-?_.\s]*$")


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().upper()


@dataclass(frozen=True)
class Box:
    """One recognised text box as the pairing sees it."""

    index: int
    text: str
    corners: npt.NDArray[np.float64]  # (4, 2) x, y
    colour: npt.NDArray[np.float64]  # unit BGR vector of the box's text pixels

    @property
    def centre(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.corners.mean(axis=0), dtype=np.float64)

    @property
    def height(self) -> float:
        return float(max(np.ptp(self.corners[:, 1]), 1.0))


def parse_value(text: str) -> tuple[float, ...] | None:
    """``"120/80"`` -> (120, 80); ``"36.8"`` -> (36.8,); ``"72 bpm"`` -> (72,); else None."""
    t = _norm(text)
    m = _BP.match(t)
    if m:
        return float(m.group(1)), float(m.group(2))
    m = _NUM.match(t)
    return (float(m.group(1)),) if m else None


def classify_label(text: str) -> tuple[str, str] | None:
    """(parameter, rest of the text after the label) when ``text`` starts with a label."""
    t = _norm(text)
    for name, pattern in _LABELS:
        m = pattern.match(t)
        if m:
            # A unit may sit between the label and the value: "HR bpm 72".
            return name, _LEADING_UNIT.sub("", t[m.end() :].strip(" :")).strip()
    return None


def split_labels(text: str) -> list[str]:
    """Cut a box's text before every label: ``"HR 109 RR 20"`` -> ``["HR 109", "RR 20"]``.

    Text before the first label stays a segment of its own (a value of a label elsewhere).
    """
    t = _norm(text)
    starts = [m.start() for m in _ANY_LABEL.finditer(t)]
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    bounds = [*starts, len(t)]
    return [t[a:b].strip() for a, b in itertools.pairwise(bounds) if t[a:b].strip()]


def _fits(name: str, value: tuple[float, ...]) -> bool:
    """Whether a parsed value has the shape and magnitude of parameter ``name``."""
    if name == "other":
        return True
    if name == "nibp":
        if len(value) != 2:
            return False
        s, d = value
        lo_s, hi_s = PLAUSIBLE["nibp_systolic"]
        lo_d, hi_d = PLAUSIBLE["nibp_diastolic"]
        return lo_s <= s <= hi_s and lo_d <= d <= hi_d and d < s
    if len(value) != 1:
        return False
    lo, hi = PLAUSIBLE[name]
    v = value[0]
    if name != "temperature" and v != int(v):
        return False  # only temperature is shown with decimals
    return lo <= v <= hi


@dataclass(frozen=True)
class Pairing:
    """A reported parameter's reading: its value (None: shown as missing) and boxes."""

    name: str
    value: tuple[float, ...] | None
    value_box: int | None
    label_box: int


def _cost(label: Box, value: Box) -> float | None:
    lx0 = float(label.corners[:, 0].min())
    ly0 = float(label.corners[:, 1].min())
    c = value.centre
    if c[0] < lx0 or c[1] < ly0 - 0.25 * label.height:
        return None
    similarity = float(np.dot(label.colour, value.colour))
    if similarity < MIN_COLOUR_SIMILARITY:
        return None  # a monitor draws a parameter's label and value in one colour
    distance = float(np.hypot(*(c - label.centre))) / label.height
    return distance * (1.0 + 3.0 * (1.0 - similarity))


def pair_fields(boxes: list[Box]) -> list[Pairing]:
    """Label/value pairing over one screen (see the module docstring)."""
    pairings: list[Pairing] = []
    labels: list[tuple[Box, str]] = []
    values: dict[int, tuple[float, ...] | None] = {}  # box index -> value (None: marker)
    for box in boxes:
        for segment in split_labels(box.text):
            label = classify_label(segment)
            if label is None:
                value = parse_value(segment)
                if value is not None:
                    values[box.index] = value
                elif _NONE.match(segment):
                    values[box.index] = None
                elif segment not in _UNITS and _WORD.search(segment):
                    labels.append((box, "other"))  # an unknown parameter's label, misread
                continue
            name, rest = label
            inline = parse_value(rest) if rest else None
            if inline is not None and _fits(name, inline):
                pairings.append(Pairing(name, inline, box.index, box.index))
            elif rest and _NONE.match(rest):
                pairings.append(Pairing(name, None, box.index, box.index))
            else:
                labels.append((box, name))
    by_index = {b.index: b for b in boxes}
    candidates: list[tuple[float, int, int]] = []
    for li, (label_box, name) in enumerate(labels):
        for vi, value in values.items():
            if value is not None and not _fits(name, value):
                continue
            cost = _cost(label_box, by_index[vi])
            if cost is not None:
                candidates.append((cost, li, vi))
    used_labels: set[int] = set()
    used_values: set[int] = set()
    for _, li, vi in sorted(candidates):
        if li in used_labels or vi in used_values:
            continue
        used_labels.add(li)
        used_values.add(vi)
        label_box, name = labels[li]
        pairings.append(Pairing(name, values[vi], vi, label_box.index))
    for li, (label_box, name) in enumerate(labels):
        if li not in used_labels:
            pairings.append(Pairing(name, None, None, label_box.index))
    return [p for p in pairings if p.name != "other"]
