"""Results of the bedside-monitor reader: vital signs read off a photo of a monitor screen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Provenance, timings_summary

__all__ = ["MONITOR_FIELDS", "MonitorReading", "News2Partial", "OcrText", "VitalReading"]

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
    """A value read off the screen, the text box it came from and the label it was paired with."""

    value: float | int
    unit: str
    source: OcrText  # the box holding the value
    label: OcrText | None  # the box holding the parameter label (None: label in the same box)

    @property
    def confidence(self) -> float:
        return self.source.confidence

    def body(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "unit": self.unit,
            "confidence": round(self.source.confidence, 4),
            "text": self.source.text,
            "box": [list(p) for p in self.source.box],
            "label": self.label.text if self.label is not None else None,
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

    @property
    def score(self) -> int:
        return sum(self.parameter_scores.values())

    def body(self) -> dict[str, Any]:
        return {
            "complete": False,
            "parameter_scores": dict(self.parameter_scores),
            "partial_score": self.score,
            "missing": list(self.missing),
            "assumed": list(self.assumed),
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
        }

    def summary(self) -> dict[str, Any]:
        return {
            **timings_summary(self.provenance),
            "fields": {k: self.value(k) for k in self.fields},
            "news2": self.news2["score"] if self.news2 else None,
            "news2_partial": self.news2_partial.body() if self.news2_partial else None,
            "texts": len(self.texts),
        }
