"""What one recognised text box says (pure Python, no model): its geometry (:class:`Box`), its
text cut before every label (``"HR 109 RR 20"`` -> ``"HR 109"``, ``"RR 20"``), and what each
segment is: a label (:func:`classify_label`), a number with an optional unit
(:func:`parse_number`), a "no value" marker (``MARKER``), a unit alone (``UNIT_ONLY``) or a word.

Which segment belongs to which vital sign is decided by the screen's structure in
:mod:`edgemed.tasks.monitor_reader.vitals_text`.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

__all__ = [
    "LEADING_UNIT",
    "MARKER",
    "UNIT_ONLY",
    "WORD",
    "Box",
    "classify_label",
    "parse_number",
    "parse_value",
    "segments",
    "split_labels",
    "unit_of",
    "unread_digits",
]

# A label ends where letters end, or where a unit glued to it begins ("HRbpm", "SpO2%").
_END = r"(?=$|[^A-Z]|BPM|MMHG|RPM|BRPM|KPA|[CF](?![A-Z]))"  # "TC": T with a degree sign lost
_LABELS: list[tuple[str, re.Pattern[str]]] = [
    ("spo2", re.compile(r"(SPO2|SP02|SPO|SPOZ|SAT)" + _END)),
    ("nibp", re.compile(r"(NIBP|NBP|BP)" + _END)),
    ("hr", re.compile(r"(ECG ?HR|HR)" + _END)),
    ("rr", re.compile(r"(AWRR|RR|RESP)" + _END)),
    ("temperature", re.compile(r"(TEMP|TMP|TEM|T[12I]?)" + _END)),  # "TI": a misread "T1"
    # Parameters the reader does not report: they still claim their numbers.
    ("other", re.compile(r"(PR|PULSE|ETCO2|ETC02|CO2|ST|BED|PVC|FICO2|IBP|ART|CVP)" + _END)),
]
# Labels start a new segment unless glued to letters before them ("199/80RESP" splits).
_ANY_LABEL = re.compile(r"(?<![A-Z])(?:" + "|".join(p.pattern for _, p in _LABELS) + ")")
_UNIT_WORDS = r"(?:%|BPM|BRPM|RPM|/MIN|MMHG|KPA|°C|°F|ºC|ºF|°|C|F)"
LEADING_UNIT = re.compile(r"^(?:" + _UNIT_WORDS + r")(?:\s+|$)")
UNIT_ONLY = re.compile(r"^\s*" + _UNIT_WORDS + r"\s*$")
WORD = re.compile(r"[A-Z]{4,}")
_UNIT = r"\s*(" + _UNIT_WORDS + r")?\s*$"
_BP = re.compile(
    r"^(\d{1,3}(?:\.\d)?)\s*/\s*(\d{1,3}(?:\.\d)?)(?:\s*\(\s*[\d.]{2,5}\s*\)?)?" + _UNIT
)
_NUM = re.compile(r"^(-?\d{1,3}(?:\.\d{1,2})?)\*?" + _UNIT)  # "52*": a bell glyph after it
# "---" is sometimes read as ".." or "__": punctuation alone never is a value.
MARKER = re.compile(
    r"^(?:[-?_.*★☆\s]*[-?*★☆][-?_.*★☆\s]*|[._\s]*[._][._\s]*[._][._\s]*|OFF|STBY|STANDBY|---?\.-|N/?A)$"
)
_MEAN_PRESSURE = re.compile(r"\(\s*\d{2,3}\s*\)")  # "NIBP (65)": the mean beside the label
# A marker glued to the alarm limit drawn beside it ("STBY 25"): still that tile's "no value";
# the number is never a value.
MARKER_AND_LIMIT = re.compile(r"^(?:OFF|STBY|STANDBY|-{2,3}|\*{2,3}|-\?-)\s+\d{1,3}(?:\.\d)?$")


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().upper().replace("º", "°")


def unit_of(raw: str | None) -> str | None:
    """The unit a matched unit word states the scale in ("°F", "°C", "kPa", "mmHg"), or None."""
    if not raw:
        return None
    u = raw.replace("º", "°")
    if u in ("°F", "F"):
        return "°F"
    if u in ("°C", "C", "°"):
        return "°C"
    if u == "KPA":
        return "kPa"
    if u == "MMHG":
        return "mmHg"
    return None  # %, bpm, rpm: say nothing about the scale


@dataclass(frozen=True)
class Box:
    """One recognised text box as the pairing sees it."""

    index: int
    text: str
    corners: npt.NDArray[np.float64]  # (4, 2) x, y clockwise from top-left
    colour: npt.NDArray[np.float64]  # unit BGR vector of the box's text pixels
    confidence: float = 1.0  # recognition: mean max-probability of the kept CTC steps
    min_char_confidence: float = 1.0  # recognition: the least sure character

    @property
    def centre(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.corners.mean(axis=0), dtype=np.float64)

    @property
    def height(self) -> float:
        """Mean of the left and right edge lengths (a tilted box is not taller)."""
        c = self.corners
        left = float(np.hypot(*(c[3] - c[0])))
        right = float(np.hypot(*(c[2] - c[1])))
        return max((left + right) / 2, 1.0)

    @property
    def width(self) -> float:
        """Mean of the top and bottom edge lengths."""
        c = self.corners
        return (float(np.hypot(*(c[1] - c[0]))) + float(np.hypot(*(c[2] - c[3])))) / 2


def parse_value(text: str) -> tuple[float, ...] | None:
    """``"120/80"`` -> (120, 80); ``"36.8"`` -> (36.8,); ``"72 bpm"`` -> (72,); else None."""
    parsed = parse_number(_norm(text))
    return parsed[0] if parsed else None


def parse_number(t: str) -> tuple[tuple[float, ...], str | None] | None:
    """(numbers, unit or None) of normalised text that is one number or a ``a/b`` pair."""
    m = _BP.match(t)
    if m:
        return (float(m.group(1)), float(m.group(2))), unit_of(m.group(3))
    m = _NUM.match(t)
    return ((float(m.group(1)),), unit_of(m.group(2))) if m else None


def unread_digits(rest: str) -> bool:
    """Whether a label's box holds digits after it that are not its value read whole ("HR 144
    4(": value and limits read as one box), a bracketed mean pressure aside ("NIBP (65)")."""
    return any(ch.isdigit() for ch in _MEAN_PRESSURE.sub("", rest))


def classify_label(text: str) -> tuple[str, str] | None:
    """(parameter, rest of the text after the label) when ``text`` starts with a label."""
    t = _norm(text)
    for name, pattern in _LABELS:
        m = pattern.match(t)
        if m:
            return name, t[m.end() :].strip(" :")
    return None


def label_spans(word: str) -> list[tuple[int, int]]:
    """(start, end) of each label in an upper-case word with no spaces ("153/115SP02" ->
    [(7, 11)]): where a glued box may be cut before and after a label, never inside it."""
    return [m.span() for m in _ANY_LABEL.finditer(word)]


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


def segments(box: Box) -> list[tuple[Box, str]]:
    """A box's label-cut segments, each with its own part of the box (by character position
    along the text line): two labels read as one box ("HR bpm SpO2") keep their places."""
    parts = split_labels(box.text)
    if len(parts) <= 1:
        return [(box, s) for s in parts]
    t = _norm(box.text)
    out, start = [], 0
    c = box.corners
    for segment in parts:
        a = t.index(segment, start)
        b = a + len(segment)
        start = b
        f0, f1 = a / max(len(t), 1), b / max(len(t), 1)
        top0, top1 = c[0] + (c[1] - c[0]) * f0, c[0] + (c[1] - c[0]) * f1
        bot0, bot1 = c[3] + (c[2] - c[3]) * f0, c[3] + (c[2] - c[3]) * f1
        corners = np.array([top0, top1, bot1, bot0], dtype=np.float64)
        out.append((replace(box, text=segment, corners=corners), segment))
    return out
