"""Results of the bedside-monitor reader: vital signs read off a photo of a monitor screen."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..contracts import news2_partial_bound
from .base import Provenance, timings_summary

__all__ = [
    "MONITOR_FIELDS",
    "WITHHELD_REASONS",
    "MonitorReading",
    "News2Partial",
    "OcrText",
    "VitalReading",
    "Withheld",
]

# Field name -> unit the value is reported in (the monitor's display convention).
MONITOR_FIELDS = {
    "hr": "/min",
    "spo2": "%",
    "nibp_systolic": "mmHg",
    "nibp_diastolic": "mmHg",
    "rr": "/min",
    "temperature": "°C",
}


@dataclass(frozen=True, kw_only=True)
class OcrText:
    """One detected text box: corners (x, y) in source pixels, clockwise from top-left."""

    text: str
    confidence: float  # recognition: mean max-probability of the kept CTC steps
    box: tuple[tuple[int, int], ...]
    box_score: float  # detection: mean DB probability inside the box

    def body(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "confidence": round(self.confidence, 4),
            "box": [list(p) for p in self.box],
            "box_score": round(self.box_score, 4),
        }


@dataclass(frozen=True, kw_only=True)
class VitalReading:
    """A value read off the screen, the text box it came from and the label it was paired with.

    ``confidence`` is the calibrated field confidence (recognition, pairing and plausibility
    combined, ``postprocess/field_confidence.py``); a field below the bundle's operating
    threshold is never a VitalReading but withheld. ``alarm_limits`` are the (low, high) limits
    drawn beside the value, never the value; ``unit_shown`` names the unit the screen used when
    the value was converted to ``unit`` (°F -> °C, kPa -> mmHg).
    """

    value: float | int
    unit: str
    source: OcrText  # the box holding the value
    label: OcrText | None  # the box holding the parameter label (None: label in the same box)
    confidence: float = 1.0
    alarm_limits: tuple[float, float] | None = None
    unit_shown: str | None = None

    @property
    def recognition_confidence(self) -> float:
        return self.source.confidence

    def body(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "unit": self.unit,
            "confidence": round(self.confidence, 4),
            "recognition_confidence": round(self.source.confidence, 4),
            "text": self.source.text,
            "box": [list(p) for p in self.source.box],
            "label": self.label.text if self.label is not None else None,
            "alarm_limits": list(self.alarm_limits) if self.alarm_limits else None,
            "unit_shown": self.unit_shown,
        }


# Why a field is None. A withheld field is never a guess: the reader saw something it could not
# turn into one certain value, or saw nothing.
WITHHELD_REASONS = {
    "not-shown": "no label of this parameter was read on the screen",
    "no-value": "the screen shows no value (--, ?, ***, OFF, STBY or blank)",
    "only-small-numbers": "only label-sized numbers (alarm limits?) beside the label",
    "ambiguous-pairing": "more than one number could be the value",
    "partial-number": "ink of the value's digit height beside the number read (a digit left out?)",
    "stacked-text": "the value's box holds two lines of text (stacked alarm limits?)",
    "segments-disagree": "a digit read needs a segment the screen shows empty (seven-segment)",
    "conflicting-readings": "the parameter was read twice with different values",
    "unit-unknown": "the value's unit could not be established",
    "unit-mismatch": "the unit shown disagrees with the value's magnitude",
    "implausible": "the number read is not a possible value of this parameter",
    "low-confidence": "the field confidence is below the operating threshold",
}


@dataclass(frozen=True, kw_only=True)
class Withheld:
    """Why a field is None, what was seen, and alarm limits read beside it (if any)."""

    reason: str  # a key of WITHHELD_REASONS
    detail: str
    alarm_limits: tuple[float, float] | None = None
    confidence: float | None = None  # for "low-confidence": the score that fell short

    def body(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "detail": self.detail[:200],
            "alarm_limits": list(self.alarm_limits) if self.alarm_limits else None,
            "confidence": round(self.confidence, 4) if self.confidence is not None else None,
        }


@dataclass(frozen=True, kw_only=True)
class News2Partial:
    """NEWS2 parameter scores that could be computed when some inputs were unknown.

    ``score`` is the sum over ``parameter_scores`` only: a lower bound of the real NEWS2,
    never to be read as the full score (``complete`` is always False).
    """

    parameter_scores: dict[str, int]
    missing: tuple[str, ...]
    assumed: tuple[str, ...]
    unscored: tuple[str, ...] = ()  # parameters without a score: missing ones, and SpO2 on
    # scale 2 when air/oxygen is unknown (defaults to ``missing``)

    @property
    def score(self) -> int:
        return sum(self.parameter_scores.values())

    @property
    def max_possible_score(self) -> int:
        """The highest NEWS2 the unscored parameters could still make it (each at its chart
        maximum: 3, air/oxygen 2)."""
        return news2_partial_bound(self.score, self.unscored or self.missing)[0]

    @property
    def escalation_possible(self) -> bool:
        """Whether the unknown parameters could put the patient at an escalation threshold
        (aggregate >= 5 or any single parameter scoring 3) that the known ones do not reach:
        the partial score must then not be read as reassurance."""
        return news2_partial_bound(self.score, self.unscored or self.missing)[1]

    def body(self) -> dict[str, Any]:
        return {
            "complete": False,
            "parameter_scores": dict(self.parameter_scores),
            "partial_score": self.score,
            "missing": list(self.missing),
            "assumed": list(self.assumed),
            "max_possible_score": self.max_possible_score,
            "escalation_possible": self.escalation_possible,
        }


@dataclass(frozen=True, kw_only=True, eq=False)
class MonitorReading:
    """Vital signs read off one monitor screen; a field the reader could not read is None.

    ``news2`` is the full NEWS2 body (``edgemed.kernels.News2.body()``) when every parameter
    is known: the five read from the screen plus consciousness and air/oxygen from the caller
    (``news2_assumed`` names those the caller let default to alert / room air). Otherwise
    ``news2`` is None and ``news2_partial`` holds the parameter scores that could be computed.
    Decision support only: edgemed is not a medical device; a clinician confirms every value.
    """

    fields: dict[str, VitalReading | None]
    texts: tuple[OcrText, ...]  # every recognised box, top to bottom
    news2: dict[str, Any] | None
    news2_partial: News2Partial | None
    news2_assumed: tuple[str, ...]
    provenance: Provenance
    withheld: dict[str, Withheld] = field(default_factory=dict)  # one per None field
    kind: str = "monitor-reading"

    def value(self, name: str) -> float | int | None:
        reading = self.fields[name]
        return None if reading is None else reading.value

    def body(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "fields": {k: (v.body() if v is not None else None) for k, v in self.fields.items()},
            "texts": [t.body() for t in self.texts],
            "news2": self.news2,
            "news2_partial": self.news2_partial.body() if self.news2_partial else None,
            "news2_assumed": list(self.news2_assumed),
            "withheld": {k: w.body() for k, w in self.withheld.items()},
        }

    def summary(self) -> dict[str, Any]:
        return {
            **timings_summary(self.provenance),
            "fields": {k: self.value(k) for k in self.fields},
            "withheld": {k: w.reason for k, w in self.withheld.items()},
            "news2": self.news2["score"] if self.news2 else None,
            "news2_partial": self.news2_partial.body() if self.news2_partial else None,
            "texts": len(self.texts),
        }
