"""Recognised screen texts -> vital-sign fields by the screen's structure (pure Python, no model).

A monitor shows each parameter as a small label ("HR", "SpO2", "NIBP", "RR", "Temp"/"T") and a
large value beside or below it, usually in the label's colour, often with two small alarm limits
(high above low, or ``high/low``) next to the value and a unit near the label or the value.
The first property of this module is **never a wrong value**: where the structure does not say
unambiguously which number is the parameter's value, the field is withheld with a reason.

1. Every recognised box is cut before each label it contains and its segments classified as a
   label (possibly with its value inline, ``HR 72``), a number (``72``, ``120/80``, ``36.8``,
   ``15.2/10.1``, optionally with a unit), a "no value" marker (``--``, ``-?-``, ``?``,
   ``***``, ``OFF``, ``STBY``), a unit (``°F``, ``kPa``...), digits that parse as no value
   ("2476"), or other text. Two labels read as one box keep their own parts of it. Labels of
   parameters not reported (PR, Pulse, etCO2, ST...) and unknown words take part, so their
   numbers are never given to a reported parameter.
2. Each number, marker, unit and unreadable digit string goes to the label it is nearest to
   (right of the label's left edge, not above its top, in a similar colour; rows weigh more
   than columns; distances in the box's own height); the runner-up label's distance is kept
   as the pairing *margin*.
3. Per label, the tallest number is the value candidate, and it must be drawn taller than its
   label (a label with only label-sized numbers, limits with the value unread, is withheld).
   Two smaller numbers drawn alike are the alarm limits (``alarm_limits`` = (low, high)),
   never the value. Another number of comparable size, a stray number beside the value, or an
   unreadable digit string as tall as it withholds the field.
4. A label and a number in one box ("HR 40") is read only when no other number of comparable
   size and no marker stands near the label: the detector glues labels to their low limit.
5. A one-number value far smaller than the screen's other values is withheld (a limit whose
   own value went unread, next to a misread, tiny label box).
6. Units: °F is converted to °C and kPa to mmHg (the reader's units); a unit that disagrees
   with the value's magnitude, or a temperature in the °F range with no unit, is withheld.
7. A parameter found twice with different values, or only with a marker, is withheld
   (``postprocess/monitor.read_fields``).

Each candidate carries the features the calibrated field confidence is computed from
(:mod:`edgemed.tasks.monitor_reader.field_confidence`).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

__all__ = [
    "PLAUSIBLE",
    "Box",
    "Candidate",
    "classify_label",
    "pair_fields",
    "parse_value",
    "split_labels",
]

# Accepted display ranges (inclusive) in the reader's units; outside, a number is not the value.
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "hr": (20, 300),
    "spo2": (50, 100),
    "nibp_systolic": (40, 300),
    "nibp_diastolic": (15, 200),
    "rr": (0, 80),
    "temperature": (25.0, 45.0),
}
TEMP_F = (77.0, 113.0)  # PLAUSIBLE temperature in °F
KPA = (2.0, 40.0)  # PLAUSIBLE NIBP in kPa
MMHG_PER_KPA = 7.50062
# A value is drawn taller than its label and than its alarm limits (measured ratios on the
# generator's tuning families: value/label >= 1.5, value/limit >= 1.7; the margins below leave
# room for other renderers while keeping a label-sized number from ever being the value).
MIN_VALUE_OVER_LABEL = 1.2
MAX_LIMIT_OVER_VALUE = 0.8  # a number at most this tall relative to the value is a limit
MAX_STRAY_OVER_VALUE = 0.4  # a number beside the value, not one of a pair of limits
MIN_VALUE_OVER_SCREEN = 0.6  # of the median height of the screen's other one-number values
MIN_INLINE_RIVAL = 0.45  # a number this tall beside a "label value" box makes it ambiguous
MIN_COLOUR_SIMILARITY = 0.9  # cosine of the label's and the value's mean BGR text colour

# A label ends where letters end, or where a unit glued to it begins ("HRbpm", "SpO2%").
_END = r"(?=$|[^A-Z]|BPM|MMHG|RPM|BRPM|KPA|[CF](?![A-Z]))"  # "TC": T with a degree sign lost
_LABELS: list[tuple[str, re.Pattern[str]]] = [
    ("spo2", re.compile(r"(SPO2|SP02|SPO|SPOZ|SAT)" + _END)),
    ("nibp", re.compile(r"(NIBP|NBP|BP)" + _END)),
    ("hr", re.compile(r"(ECG ?HR|HR)" + _END)),
    ("rr", re.compile(r"(AWRR|RR|RESP)" + _END)),
    ("temperature", re.compile(r"(TEMP|TMP|TEM|T[12]?)" + _END)),
    # Parameters the reader does not report: they still claim their numbers.
    ("other", re.compile(r"(PR|PULSE|ETCO2|ETC02|CO2|ST|BED|PVC|FICO2|IBP|ART|CVP)" + _END)),
]
# Labels start a new segment unless glued to letters before them ("199/80RESP" splits).
_ANY_LABEL = re.compile(r"(?<![A-Z])(?:" + "|".join(p.pattern for _, p in _LABELS) + ")")
_UNIT_WORDS = r"(?:%|BPM|BRPM|RPM|/MIN|MMHG|KPA|°C|°F|ºC|ºF|°|C|F)"
_LEADING_UNIT = re.compile(r"^(?:" + _UNIT_WORDS + r")(?:\s+|$)")
_UNIT_ONLY = re.compile(r"^\s*" + _UNIT_WORDS + r"\s*$")
_WORD = re.compile(r"[A-Z]{4,}")
_UNIT = r"\s*(" + _UNIT_WORDS + r")?\s*$"
_BP = re.compile(
    r"^(\d{1,3}(?:\.\d)?)\s*/\s*(\d{1,3}(?:\.\d)?)(?:\s*\(\s*[\d.]{2,5}\s*\)?)?" + _UNIT
)
_NUM = re.compile(r"^(-?\d{1,3}(?:\.\d{1,2})?)\*?" + _UNIT)  # "52*": a bell glyph after it
_MARKER = re.compile(r"^(?:[-?_.*★☆\s]*[-?*★☆][-?_.*★☆\s]*|OFF|STBY|STANDBY|---?\.-|N/?A)$")


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().upper().replace("º", "°")


def _unit_of(raw: str | None) -> str | None:
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
    parsed = _parse(_norm(text))
    return parsed[0] if parsed else None


def _parse(t: str) -> tuple[tuple[float, ...], str | None] | None:
    m = _BP.match(t)
    if m:
        return (float(m.group(1)), float(m.group(2))), _unit_of(m.group(3))
    m = _NUM.match(t)
    return ((float(m.group(1)),), _unit_of(m.group(2))) if m else None


def classify_label(text: str) -> tuple[str, str] | None:
    """(parameter, rest of the text after the label) when ``text`` starts with a label."""
    t = _norm(text)
    for name, pattern in _LABELS:
        m = pattern.match(t)
        if m:
            return name, t[m.end() :].strip(" :")
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


def _segments(box: Box) -> list[tuple[Box, str]]:
    """A box's label-cut segments, each with its own part of the box (by character position
    along the text line): two labels read as one box ("HR bpm SpO2") keep their places."""
    segments = split_labels(box.text)
    if len(segments) <= 1:
        return [(box, s) for s in segments]
    t = _norm(box.text)
    out, start = [], 0
    c = box.corners
    for segment in segments:
        a = t.index(segment, start)
        b = a + len(segment)
        start = b
        f0, f1 = a / max(len(t), 1), b / max(len(t), 1)
        top0, top1 = c[0] + (c[1] - c[0]) * f0, c[0] + (c[1] - c[0]) * f1
        bot0, bot1 = c[3] + (c[2] - c[3]) * f0, c[3] + (c[2] - c[3]) * f1
        corners = np.array([top0, top1, bot1, bot0], dtype=np.float64)
        out.append((replace(box, text=segment, corners=corners), segment))
    return out


@dataclass(frozen=True)
class Candidate:
    """What the structure says about one reported parameter, before the confidence gate."""

    name: str  # "hr", "spo2", "nibp", "rr", "temperature"
    value: tuple[float, ...] | None  # in the reader's units; None: withheld (see reason)
    reason: str | None  # why value is None: a code of edgemed.results.WITHHELD_REASONS
    detail: str  # what was seen, for people
    value_box: int | None = None
    label_box: int | None = None
    alarm_limits: tuple[float, float] | None = None  # (low, high) as drawn, reader's units
    unit_shown: str | None = None  # "°F", "kPa": the value was converted from it
    features: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Number:
    box: Box
    value: tuple[float, ...]
    unit: str | None
    decimals: bool


def _fits(name: str, value: tuple[float, ...]) -> bool:
    """Whether a value in the reader's units has the shape and magnitude of ``name``."""
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
    return lo <= value[0] <= hi


def _convert(
    name: str, num: _Number, unit: str | None
) -> tuple[tuple[float, ...] | None, str | None, str | None]:
    """(value in the reader's units or None, unit converted from, reason when None)."""
    v = num.value
    if name == "temperature" and len(v) == 1:
        in_c = PLAUSIBLE["temperature"][0] <= v[0] <= PLAUSIBLE["temperature"][1]
        in_f = TEMP_F[0] <= v[0] <= TEMP_F[1]
        if unit == "°F":
            if in_f:
                return (round((v[0] - 32) * 5 / 9, 1),), "°F", None
            return None, None, "unit-mismatch"
        if in_f:  # °C shown, or no unit, with a °F magnitude
            return None, None, "unit-mismatch" if unit == "°C" else "unit-unknown"
        return (v if in_c else None), None, (None if in_c else "implausible")
    if name == "nibp" and len(v) == 2:
        if unit == "kPa" or (num.decimals and unit is None):
            if unit == "kPa" and all(KPA[0] <= x <= KPA[1] for x in v):
                mm = (float(round(v[0] * MMHG_PER_KPA)), float(round(v[1] * MMHG_PER_KPA)))
                return (
                    (mm if _fits(name, mm) else None),
                    "kPa",
                    (None if _fits(name, mm) else "implausible"),
                )
            return None, None, "unit-mismatch" if unit == "kPa" else "unit-unknown"
        if num.decimals:
            return None, None, "implausible"
    elif name != "temperature" and num.decimals:
        return None, None, "implausible"  # only temperature (and kPa) is shown with decimals
    if unit in ("°F", "°C", "kPa") and name != "temperature":
        return None, None, "unit-mismatch"
    return (v if _fits(name, v) else None), None, (None if _fits(name, v) else "implausible")


def _cost(label: Box, other: Box) -> float | None:
    """Distance from a label to a box that may belong to it, in the box's heights (rows
    weighted double, colour mismatch tripled); None: it cannot belong to the label."""
    lx0 = float(label.corners[:, 0].min())
    ly0 = float(label.corners[:, 1].min())
    c = other.centre
    if c[0] < lx0 - 0.3 * label.height or c[1] < ly0 - 0.35 * label.height:
        return None
    similarity = float(np.dot(label.colour, other.colour))
    if similarity < MIN_COLOUR_SIMILARITY:
        return None  # a monitor draws a parameter's label and value in one colour
    dx, dy = c - label.centre
    # Rows matter more than columns: a value sits on its label's row or below it in its tile,
    # while the next tile's label is usually beside it.
    # In the box's own height: every label competing for one box is measured alike (a label
    # read with a small box must not lose its value to a big label further away).
    distance = float(np.hypot(dx, 2.0 * dy)) / other.height
    return distance * (1.0 + 3.0 * (1.0 - similarity))


def pair_fields(boxes: list[Box]) -> list[Candidate]:
    """Structure-based reading of one screen (see the module docstring): one candidate per
    label of a reported parameter found on the screen (a parameter may appear twice)."""
    labels: list[tuple[Box, str]] = []
    numbers: dict[int, _Number] = {}
    markers: dict[int, Box] = {}
    units: dict[int, tuple[Box, str]] = {}
    inline: list[Candidate] = []
    inline_of: dict[int, int] = {}  # label index -> its inline candidate
    label_units: dict[int, str] = {}
    unreadable: dict[int, Box] = {}
    for whole in boxes:
        for box, segment in _segments(whole):
            label = classify_label(segment)
            if label is None:
                parsed = _parse(segment)
                if parsed is not None:
                    numbers[box.index] = _Number(box, parsed[0], parsed[1], "." in segment)
                elif _MARKER.match(segment):
                    markers[box.index] = box
                elif _UNIT_ONLY.match(segment):
                    unit = _unit_of(segment.strip())
                    if unit is not None:
                        units[box.index] = (box, unit)
                elif any(ch.isdigit() for ch in segment):
                    unreadable[box.index] = box  # digits that parse as no value ("2476")
                elif _WORD.search(segment):
                    labels.append((box, "other"))  # an unknown parameter's label, misread
                continue
            name, rest = label
            unit_m = _LEADING_UNIT.match(rest)
            if unit_m:  # "Temp °F", "NIBP kPa 15.2/10.1"
                unit = _unit_of(unit_m.group(0).strip())
                if unit is not None:
                    label_units[len(labels)] = unit
                rest = rest[unit_m.end() :].strip()
            parsed = _parse(rest) if rest else None
            if parsed is not None and name != "other":
                # Value and label in one box: no structure to check beyond the text itself.
                num = _Number(box, parsed[0], parsed[1], "." in rest)
                unit = parsed[1] or label_units.get(len(labels))
                value, converted, reason = _convert(name, num, unit)
                inline_of[len(labels)] = len(inline)
                labels.append((box, name))  # still claims numbers: see below
                inline.append(
                    Candidate(
                        name,
                        value,
                        reason,
                        f"{box.text!r} in one box",
                        box.index,
                        box.index,
                        unit_shown=converted,
                        features=_features(box, box, 10.0, 2.0, 0.0, value, name, inline=True),
                    )
                )
                continue
            if rest and _MARKER.match(rest):
                inline.append(
                    Candidate(
                        name, None, "no-value", f"{box.text!r}: no value shown", None, box.index
                    )
                )
                continue
            labels.append((box, name))
    # 2. every number, marker and unit goes to its nearest label; keep the runner-up distance
    owned: dict[int, list[tuple[float, float, int]]] = {i: [] for i in range(len(labels))}
    for index, box in [
        *((i, n.box) for i, n in numbers.items()),
        *markers.items(),
        *((i, b) for i, (b, _) in units.items()),
        *unreadable.items(),
    ]:
        costs = sorted(
            (c, li)
            for li, (lb, _) in enumerate(labels)
            if lb.index != index and (c := _cost(lb, box)) is not None
        )
        if costs:
            runner_up = costs[1][0] if len(costs) > 1 else float("inf")
            owned[costs[0][1]].append((costs[0][0], runner_up, index))
    out = list(inline)
    for li, (label_box, name) in enumerate(labels):
        if li in inline_of:
            # "HR 40" may be a label glued to its low alarm limit by the detector, the value
            # (or the other limit) standing beside it: with another number of comparable size
            # near the label, the box's number is not known to be the value.
            beside = [
                (numbers[i].box if i in numbers else unreadable[i])
                for _, _, i in owned[li]
                if i in numbers or i in unreadable
            ]
            rival = [b for b in beside if b.height >= MIN_INLINE_RIVAL * label_box.height]
            rival += [markers[i] for _, _, i in owned[li] if i in markers]  # "RESP 10" + "STBY"
            if rival:
                glued = out[inline_of[li]]
                out[inline_of[li]] = Candidate(
                    glued.name,
                    None,
                    "ambiguous-pairing",
                    f"{label_box.text!r} holds a number and {rival[0].text!r} stands beside it: "
                    "either may be an alarm limit",
                    label_box=glued.label_box,
                )
            continue
        if name == "other":
            continue
        candidate = _read_label(
            name, label_box, owned[li], numbers, markers, units, label_units.get(li)
        )
        if candidate.value is not None and candidate.value_box is not None:
            value_height = numbers[candidate.value_box].box.height
            big = [
                unreadable[i]
                for _, _, i in owned[li]
                if i in unreadable and unreadable[i].height > MAX_LIMIT_OVER_VALUE * value_height
            ]
            if big:  # an unreadable number as tall as the value: it may be the real value
                candidate = Candidate(
                    name,
                    None,
                    "ambiguous-pairing",
                    f"{big[0].text!r}, unreadable, is as tall as the value",
                    label_box=label_box.index,
                    alarm_limits=candidate.alarm_limits,
                )
        out.append(candidate)
    return _small_for_this_screen(out, numbers)


def _small_for_this_screen(out: list[Candidate], numbers: dict[int, _Number]) -> list[Candidate]:
    """A one-number value drawn far smaller than the other values of the same screen is more
    likely an alarm limit whose own value went unread (or a misread label box) than a value:
    monitors draw their numeric values at one size per layout."""
    values = {
        i: numbers[c.value_box].box
        for i, c in enumerate(out)
        if c.value is not None
        and c.value_box in numbers
        and c.name != "nibp"
        and c.value_box != c.label_box
    }
    if len(values) < 3:
        return out
    for i, box in values.items():
        typical = float(np.median([b.height for j, b in values.items() if j != i]))
        if box.height < MIN_VALUE_OVER_SCREEN * typical:
            c = out[i]
            out[i] = Candidate(
                c.name,
                None,
                "only-small-numbers",
                f"{box.text!r} is small for a value on this screen "
                f"({box.height:.0f} px against {typical:.0f} px): an alarm limit?",
                label_box=c.label_box,
                alarm_limits=c.alarm_limits,
            )
    return out


def _read_label(
    name: str,
    label: Box,
    owned: list[tuple[float, float, int]],
    numbers: dict[int, _Number],
    markers: dict[int, Box],
    units: dict[int, tuple[Box, str]],
    label_unit: str | None,
) -> Candidate:
    own_numbers = [(c, r, numbers[i]) for c, r, i in owned if i in numbers]
    own_markers = [markers[i] for _, _, i in owned if i in markers]
    own_units = {units[i][1] for _, _, i in owned if i in units}
    if label_unit:
        own_units.add(label_unit)
    if not own_numbers:
        if own_markers:
            return Candidate(
                name, None, "no-value", f"{own_markers[0].text!r} shown", label_box=label.index
            )
        return Candidate(name, None, "no-value", "label without a value", label_box=label.index)
    own_numbers.sort(key=lambda x: -x[2].box.height)
    cost, runner_up, top = own_numbers[0]
    tallest = top.box.height
    rivals = [n for _, _, n in own_numbers[1:] if n.box.height > MAX_LIMIT_OVER_VALUE * tallest]
    small = [n for _, _, n in own_numbers[1:] if n.box.height <= MAX_LIMIT_OVER_VALUE * tallest]
    limits = _limits(name, small)
    if limits is None:
        # Numbers beside the value that are not a pair of limits: unless clearly small (a
        # distractor's digits), nothing says which number is the value.
        rivals += [n for n in small if n.box.height > MAX_STRAY_OVER_VALUE * tallest]
    if top.box.height < MIN_VALUE_OVER_LABEL * label.height:
        # Only label-sized numbers: alarm limits (or a distractor) with the value itself unread.
        only = _limits(name, [n for _, _, n in own_numbers])
        return Candidate(
            name,
            None,
            "only-small-numbers",
            "only numbers no taller than the label (alarm limits?) near it",
            alarm_limits=only or limits,
            label_box=label.index,
        )
    if rivals:
        return Candidate(
            name,
            None,
            "ambiguous-pairing",
            f"two numbers of the value's size near the label: {top.box.text!r}, "
            f"{rivals[0].box.text!r}",
            alarm_limits=limits,
            label_box=label.index,
        )
    if own_markers and any(m.height > MAX_LIMIT_OVER_VALUE * tallest for m in own_markers):
        return Candidate(
            name, None, "ambiguous-pairing", "a number and a no-value marker", label_box=label.index
        )
    unit = top.unit or (next(iter(own_units)) if len(own_units) == 1 else None)
    if len(own_units) > 1 and top.unit is None:
        return Candidate(
            name, None, "unit-unknown", f"units {sorted(own_units)} shown", label_box=label.index
        )
    value, converted, reason = _convert(name, top, unit)
    margin = runner_up / cost if cost > 0 else 10.0
    return Candidate(
        name,
        value,
        reason,
        f"{top.box.text!r} paired with {label.text!r}",
        top.box.index,
        label.index,
        alarm_limits=limits,
        unit_shown=converted,
        features=_features(
            top.box,
            label,
            min(margin, 10.0),
            top.box.height / label.height,
            len(small),
            value,
            name,
        ),
    )


def _limits(name: str, small: list[_Number]) -> tuple[float, float] | None:
    """Two small single numbers of the parameter's scale: (low, high); a ``hi/lo`` pair too."""
    if len(small) == 1 and len(small[0].value) == 2 and name != "nibp":
        hi, lo = small[0].value
        return (lo, hi) if lo < hi else None
    singles = [n for n in small if len(n.value) == 1]
    if len(singles) != 2 or len(small) != 2:
        return None
    a, b = singles
    if not 0.75 <= a.box.height / b.box.height <= 1.33:
        return None  # the two limits are drawn alike
    lo, hi = sorted((a.value[0], b.value[0]))
    return (lo, hi) if lo < hi else None


def _features(
    value_box: Box,
    label_box: Box,
    margin: float,
    size_ratio: float,
    n_small: float,
    value: tuple[float, ...] | None,
    name: str,
    *,
    inline: bool = False,
) -> dict[str, float]:
    """Inputs of the calibrated field confidence (postprocess/field_confidence.py)."""
    similarity = float(np.dot(label_box.colour, value_box.colour))
    typical = 1.0
    if value is not None and name in TYPICAL:
        lo, hi = TYPICAL[name]
        typical = float(all(lo <= v <= hi for v in value[:1]))
    chars = max(len(value_box.text.replace(" ", "")), 1)
    return {
        # Box width per character in box heights: a digit the recogniser dropped ("21" read
        # as "2", "134" as "34") leaves the box too wide for its text.
        "char_aspect": value_box.width / (value_box.height * chars),
        # One digit: only RR shows one legitimately, and a one-digit reading is what a lost
        # digit of a two-digit value looks like.
        "single_digit": float(value is not None and len(value) == 1 and value[0] < 10),
        "rec_mean": float(value_box.confidence),
        "rec_min": float(value_box.min_char_confidence),
        "margin": float(margin),
        "size_ratio": float(min(size_ratio, 6.0)),
        "colour": similarity,
        "typical": typical,
        "limits_seen": float(n_small > 0),
        "inline": float(inline),
        "agree": 1.0,  # set by the postprocessor: a second read of the value's crop agrees
    }


# Values outside these are possible but rare: a misread digit lands there more often than a
# patient does, so the confidence model weighs it.
TYPICAL: dict[str, tuple[float, float]] = {
    "hr": (40, 180),
    "spo2": (80, 100),
    "nibp": (70, 230),
    "rr": (6, 40),
    "temperature": (34.0, 41.5),
}
