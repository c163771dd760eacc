"""Recognised screen texts -> vital-sign fields by the screen's structure (pure Python, no model).

A monitor shows each parameter as a small label ("HR", "SpO2", "NIBP", "RR", "Temp"/"T") and a
large value beside or below it, usually in the label's colour, often with two small alarm limits
(high above low, or ``high/low``) next to the value and a unit near the label or the value.
The first property of this module is **never a wrong value**: where the structure does not say
unambiguously which number is the parameter's value, the field is withheld with a reason.

1. Every recognised box is cut before each label it contains and its segments classified as a
   label (possibly with its value inline, ``HR 72``), a number (``72``, ``120/80``, ``36.8``,
   ``15.2/10.1``, optionally with a unit), a "no value" marker (``--``, ``-?-``, ``?``,
   ``***``, ``OFF``, ``STBY``, also glued to its alarm limit: ``STBY 25``), a unit (``°F``,
   ``kPa``...), digits that parse as no value ("2476"), or other text. A label whose box holds
   such digits ("HR 144 4(") is withheld. Two labels read as one box keep their own parts of
   it. Labels of parameters not reported (PR, etCO2...) and unknown words take part too.
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
(:mod:`edgemed.tasks.monitor_reader.field_confidence`). What a box's text says (labels, numbers,
units, markers) is read by :mod:`~edgemed.tasks.monitor_reader.screen_text`; value ranges and
unit conversion are in :mod:`~edgemed.tasks.monitor_reader.vital_values`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from .box_geometry import not_its_own, one_of_a_pair, overlapping
from .screen_text import (
    LEADING_UNIT,
    MARKER,
    MARKER_AND_LIMIT,
    UNIT_ONLY,
    WORD,
    Box,
    classify_label,
    parse_number,
    parse_value,
    segments,
    split_labels,
    unit_of,
    unread_digits,
)
from .vital_values import PLAUSIBLE, TYPICAL, Number, alarm_limits, convert

__all__ = [
    "PLAUSIBLE",
    "Box",
    "Candidate",
    "classify_label",
    "pair_fields",
    "parse_value",
    "split_labels",
]

# A value is drawn taller than its label and than its alarm limits (measured ratios on the
# generator's tuning families: value/label >= 1.5, value/limit >= 1.7; the margins below leave
# room for other renderers while keeping a label-sized number from ever being the value).
MIN_VALUE_OVER_LABEL = 1.2
MAX_LIMIT_OVER_VALUE = 0.8  # a number at most this tall relative to the value is a limit
MAX_STRAY_OVER_VALUE = 0.4  # a number beside the value, not one of a pair of limits
MIN_VALUE_OVER_SCREEN = 0.6  # of the median height of the screen's other one-number values
MIN_VALUE_OVER_OTHER = 0.4  # of the other's height, where the screen has only two such values
MIN_INLINE_RIVAL = 0.45  # a number this tall beside a "label value" box makes it ambiguous
MIN_COLOUR_SIMILARITY = 0.9  # cosine of the label's and the value's mean BGR text colour

# (cost to the nearest label, cost to the runner-up label, box index) of a box a label owns
_Owned = list[tuple[float, float, int]]
# Whether a panel border separates two boxes (corners, 4x2): edgemed...monitor_reader.panels
Apart = Callable[[npt.NDArray[np.float64], npt.NDArray[np.float64]], bool]


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


@dataclass
class _Screen:
    """Step 1: one screen's segments by kind (keyed by box index; labels by position)."""

    labels: list[tuple[Box, str]] = field(default_factory=list)
    numbers: dict[int, Number] = field(default_factory=dict)
    markers: dict[int, Box] = field(default_factory=dict)
    units: dict[int, tuple[Box, str]] = field(default_factory=dict)
    unreadable: dict[int, Box] = field(default_factory=dict)
    inline: list[Candidate] = field(default_factory=list)
    inline_of: dict[int, int] = field(default_factory=dict)  # label index -> inline candidate
    label_units: dict[int, str] = field(default_factory=dict)


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


def pair_fields(boxes: list[Box], apart: Apart | None = None) -> list[Candidate]:
    """Structure-based reading of one screen (see the module docstring): one candidate per
    label of a reported parameter found on the screen (a parameter may appear twice).
    ``apart(label, box)``: whether a panel border separates them (never paired)."""
    screen = _Screen()
    for whole in boxes:
        for box, segment in segments(whole):
            label = classify_label(segment)
            if label is None:
                _add_segment(screen, box, segment)
            else:
                _add_label(screen, box, *label)
    owned = _nearest_labels(screen, apart)
    out = list(screen.inline)
    for li, (label_box, name) in enumerate(screen.labels):
        if li in screen.inline_of:
            at = screen.inline_of[li]
            out[at] = _inline_checked(out[at], label_box, owned[li], screen)
            continue
        if name == "other":
            continue
        candidate = _read_label(
            name,
            label_box,
            owned[li],
            screen.numbers,
            screen.markers,
            screen.units,
            screen.label_units.get(li),
        )
        out.append(_unreadable_checked(candidate, label_box, owned[li], screen))
    return _small_for_this_screen(out, screen.numbers)


def _add_segment(screen: _Screen, box: Box, segment: str) -> None:
    """Step 1 for a segment that is no label: a number, marker, unit, unreadable digits or an
    unknown parameter's label."""
    parsed = parse_number(segment)
    if parsed is not None:
        screen.numbers[box.index] = Number(box, parsed[0], parsed[1], "." in segment)
    elif MARKER.match(segment) or MARKER_AND_LIMIT.match(segment):
        screen.markers[box.index] = box
    elif UNIT_ONLY.match(segment):
        unit = unit_of(segment.strip())
        if unit is not None:
            screen.units[box.index] = (box, unit)
    elif any(ch.isdigit() for ch in segment):
        screen.unreadable[box.index] = box  # digits that parse as no value ("2476")
    elif WORD.search(segment):
        screen.labels.append((box, "other"))  # an unknown parameter's label, misread


def _add_label(screen: _Screen, box: Box, name: str, rest: str) -> None:
    """Step 1 for a label segment; ``rest``: its text after the label (a unit, a value)."""
    unit_m = LEADING_UNIT.match(rest)
    label_unit = None
    if unit_m:  # "Temp °F", "NIBP kPa 15.2/10.1"
        label_unit = unit_of(unit_m.group(0).strip())
        rest = rest[unit_m.end() :].strip()
    parsed = parse_number(rest) if rest else None
    if parsed is not None and name != "other":
        # Value and label in one box: no structure to check beyond the text itself.
        num = Number(box, parsed[0], parsed[1], "." in rest)
        unit = parsed[1] or label_unit
        value, converted, reason = convert(name, num, unit)
        screen.inline_of[len(screen.labels)] = len(screen.inline)
        if label_unit is not None:
            screen.label_units[len(screen.labels)] = label_unit
        screen.labels.append((box, name))  # still claims numbers: see _inline_checked
        screen.inline.append(
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
        return
    # The unit belongs to this label only: recorded under its index as it is appended.
    if label_unit is not None:
        screen.label_units[len(screen.labels)] = label_unit
    unread = name != "other" and unread_digits(rest)  # "HR 144 4(" (step 1)
    if rest and (MARKER.match(rest) or unread):
        # "Sp02*" ("%" read "*"), "HR 144 4(": withheld, but the label still claims the numbers
        # nearest to it; released, its value went to the next label (seeds 2200887, ...).
        why = "its digits read as no value" if unread else "no value shown"
        reason = "ambiguous-pairing" if unread else "no-value"
        screen.inline_of[len(screen.labels)] = len(screen.inline)
        screen.inline.append(Candidate(name, None, reason, f"{box.text!r}: {why}", None, box.index))
    screen.labels.append((box, name))


def _nearest_labels(screen: _Screen, apart: Apart | None) -> dict[int, _Owned]:
    """Step 2: every number, marker and unit goes to its nearest label; the runner-up
    distance is kept. Label index -> what it owns."""
    owned: dict[int, _Owned] = {i: [] for i in range(len(screen.labels))}
    for index, box in [
        *((i, n.box) for i, n in screen.numbers.items()),
        *screen.markers.items(),
        *((i, b) for i, (b, _) in screen.units.items()),
        *screen.unreadable.items(),
    ]:
        costs = sorted(
            (c, li)
            for li, (lb, _) in enumerate(screen.labels)
            if lb.index != index
            and (c := _cost(lb, box)) is not None
            and (apart is None or not apart(lb.corners, box.corners))
        )
        if costs:
            runner_up = costs[1][0] if len(costs) > 1 else float("inf")
            owned[costs[0][1]].append((costs[0][0], runner_up, index))
    return owned


def _inline_checked(glued: Candidate, label_box: Box, owned: _Owned, screen: _Screen) -> Candidate:
    """Step 4: "HR 40" may be a label glued to its low alarm limit by the detector, the value
    (or the other limit) standing beside it: with another number of comparable size near the
    label, or on its box in any colour, the box's number is not known to be the value."""
    found = {**screen.unreadable, **{i: n.box for i, n in screen.numbers.items()}}
    beside = [found[i] for _, _, i in owned if i in found]
    beside += filter(None, [overlapping(label_box, (n.box for n in screen.numbers.values()))])
    rival = [b for b in beside if b.height >= MIN_INLINE_RIVAL * label_box.height]
    if glued.value is None:  # "Sp02*": a no-value marker glued to the label
        if not rival:
            return glued
        why = f"{glued.detail}, and {rival[0].text!r} stands beside it"
        return replace(glued, reason="ambiguous-pairing", detail=why)
    rival += [screen.markers[i] for _, _, i in owned if i in screen.markers]  # "RESP 10" + "STBY"
    if not rival:
        return glued
    return Candidate(
        glued.name,
        None,
        "ambiguous-pairing",
        f"{label_box.text!r} holds a number and {rival[0].text!r} stands beside it: "
        "either may be an alarm limit",
        label_box=glued.label_box,
    )


def _unreadable_checked(
    candidate: Candidate, label_box: Box, owned: _Owned, screen: _Screen
) -> Candidate:
    """Step 3: an unreadable number as tall as the value may be the real value; text between
    the label and the value, or a number stacked on the value, says it is not the label's
    (box_geometry.py)."""
    if candidate.value is None or candidate.value_box is None:
        return candidate
    value = screen.numbers[candidate.value_box].box
    limit = MAX_LIMIT_OVER_VALUE * value.height
    big = [screen.unreadable[i] for _, _, i in owned if i in screen.unreadable]
    big = [b for b in big if b.height > limit]
    why = f"{big[0].text!r}, unreadable, is as tall as the value" if big else None
    numbers = [n.box for n in screen.numbers.values()]
    labels = [b for b, _ in screen.labels]
    blocking = [*screen.unreadable.values(), *screen.markers.values(), *labels]
    blocking += [b for b in numbers if b.height > limit]
    why = why or not_its_own(label_box, value, blocking, numbers, labels)
    if why is None:
        return candidate
    return Candidate(
        candidate.name, None, "ambiguous-pairing", why,
        label_box=label_box.index, alarm_limits=candidate.alarm_limits,
    )  # fmt: skip


def _small_for_this_screen(out: list[Candidate], numbers: dict[int, Number]) -> list[Candidate]:
    """A one-number value drawn far smaller than the other values of the same screen is more
    likely an alarm limit whose own value went unread (or a misread label box) than a value:
    monitors draw their numeric values at one size per layout. With two values on the screen,
    only one far smaller (an HR's limit "130" beside an RR of four times its height)."""
    values = {
        i: numbers[c.value_box].box
        for i, c in enumerate(out)
        if c.value is not None
        and c.value_box in numbers
        and c.name != "nibp"
        and c.value_box != c.label_box
    }
    if len(values) < 2:
        return out
    least = MIN_VALUE_OVER_SCREEN if len(values) >= 3 else MIN_VALUE_OVER_OTHER
    for i, box in values.items():
        typical = float(np.median([b.height for j, b in values.items() if j != i]))
        if box.height < least * typical:
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
    owned: _Owned,
    numbers: dict[int, Number],
    markers: dict[int, Box],
    units: dict[int, tuple[Box, str]],
    label_unit: str | None,
) -> Candidate:
    """Step 3 for one label: its tallest number is the value unless the sizes, a marker or the
    units say otherwise."""
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
    small = [n for _, _, n in own_numbers[1:] if n.box.height <= MAX_LIMIT_OVER_VALUE * tallest]
    limits = alarm_limits(name, small)
    others = [n.box for n in numbers.values()]
    withheld = _withheld_by_size(name, label, own_numbers, own_markers, small, limits, others)
    if withheld is not None:
        return withheld
    unit = top.unit or (next(iter(own_units)) if len(own_units) == 1 else None)
    if len(own_units) > 1 and top.unit is None:
        return Candidate(
            name, None, "unit-unknown", f"units {sorted(own_units)} shown", label_box=label.index
        )
    value, converted, reason = convert(name, top, unit)
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


def _withheld_by_size(
    name: str,
    label: Box,
    own_numbers: list[tuple[float, float, Number]],
    own_markers: list[Box],
    small: list[Number],
    limits: tuple[float, float] | None,
    others: list[Box],
) -> Candidate | None:
    """Step 3's size rules (``own_numbers`` tallest first): a withheld candidate when the
    tallest number is not known to be the value, else None."""
    top = own_numbers[0][2]
    tallest = top.box.height
    rivals = [n for _, _, n in own_numbers[1:] if n.box.height > MAX_LIMIT_OVER_VALUE * tallest]
    if limits is None:
        # Numbers beside the value that are not a pair of limits: unless clearly small (a
        # distractor's digits), nothing says which number is the value.
        # A small number stacked on another of its size is one of a pair of limits, even with
        # the other limit given to another label (box_geometry.one_of_a_pair).
        rivals += [
            n for n in small
            if n.box.height > MAX_STRAY_OVER_VALUE * tallest
            and not one_of_a_pair(n.box, top.box, others)
        ]  # fmt: skip
    if top.box.height < MIN_VALUE_OVER_LABEL * label.height:
        # Only label-sized numbers: alarm limits (or a distractor) with the value itself unread.
        only = alarm_limits(name, [n for _, _, n in own_numbers])
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
    # A marker drawn larger than the label is a value's "no value" ("***" is drawn smaller
    # than digits of the same font, so the value's height alone misses it); alarm limits are
    # numbers, never markers.
    if any(  # "---" drawn at the value's size is thin: its width says its size
        m.height > MAX_LIMIT_OVER_VALUE * tallest
        or m.height >= MIN_VALUE_OVER_LABEL * label.height
        or m.width >= 0.6 * top.box.width
        for m in own_markers
    ):
        return Candidate(
            name, None, "ambiguous-pairing", "a number and a no-value marker", label_box=label.index
        )
    return None


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
