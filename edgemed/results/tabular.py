"""Results of tabular models: a class probability with its decision, or a regressed value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Provenance, timings_summary

__all__ = ["TabularClassification", "TabularRegression"]


@dataclass(frozen=True, kw_only=True)
class TabularClassification:
    """A binary decision from one row of features.

    ``probability`` is the model's probability of ``positive_label`` (e.g. "malignant");
    ``label`` is ``positive_label`` when ``probability >= threshold``, else the other label.
    ``out_of_range`` names the features outside the range the model was trained on: the
    result is still computed, but the caller should treat it with extra caution.
    """

    label: str
    probability: float
    threshold: float
    labels: tuple[str, ...]
    positive_label: str
    out_of_range: tuple[str, ...]
    provenance: Provenance
    kind: str = "tabular-classification"

    def body(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "probability": round(self.probability, 6),
            "positive_label": self.positive_label,
            "threshold": self.threshold,
            "labels": list(self.labels),
            "out_of_range": list(self.out_of_range),
        }

    def summary(self) -> dict[str, Any]:
        return {
            **timings_summary(self.provenance),
            "label": self.label,
            f"p_{self.positive_label}": round(self.probability, 4),
            "threshold": self.threshold,
            "out_of_range": list(self.out_of_range),
        }


@dataclass(frozen=True, kw_only=True)
class TabularRegression:
    """A regressed value (``name`` in ``unit``) from one row of features; ``out_of_range``
    names the features outside the range the model was trained on."""

    value: float
    name: str
    unit: str
    out_of_range: tuple[str, ...]
    provenance: Provenance
    kind: str = "tabular-regression"

    def body(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "value": round(self.value, 6),
            "unit": self.unit,
            "out_of_range": list(self.out_of_range),
        }

    def summary(self) -> dict[str, Any]:
        return {
            **timings_summary(self.provenance),
            self.name: round(self.value, 3),
            "unit": self.unit,
            "out_of_range": list(self.out_of_range),
        }
