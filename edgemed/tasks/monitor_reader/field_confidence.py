"""Calibrated confidence of one monitor field: recognition, pairing and plausibility combined.

A logistic model over the features :func:`~edgemed.tasks.monitor_reader.vitals_text.pair_fields` keeps
for each candidate (recognition mean and least-sure character, pairing margin to the runner-up
label, value/label size ratio, colour agreement, whether the value is in the typical range,
whether alarm limits were seen, whether label and value shared one box, and whether a second
read of the value's crop, widened and softened, gives the same digits: seven-segment and thin
LCD digits that PP-OCR misreads are misread differently on the second crop), and the box's
width per character (a dropped digit leaves the box too wide for its text). Its weights and the
operating threshold live in the manifest (``postprocess.field_confidence``), fitted by
``models/recipes/monitor_reader.py`` on the tuning families of rendered screens only; the
threshold was chosen there to drive wrong values to zero first, then to read the most fields.
Below the threshold a field is withheld (reason ``low-confidence``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import ManifestError

__all__ = ["FEATURES", "FieldConfidence"]

FEATURES = (
    "rec_mean",
    "rec_min",
    "margin",
    "size_ratio",
    "colour",
    "typical",
    "limits_seen",
    "inline",
    "agree",
    "char_aspect",
    "single_digit",
)


def _transform(features: Mapping[str, float]) -> list[float]:
    """Model inputs: log-odds of the recognition scores, log of the ratios."""
    # Recognition probabilities saturate near 1 for confident misreads as much as for right
    # reads: clipping at 0.99 keeps them from outweighing every other sign.
    eps = 1e-2

    def logit(p: float) -> float:
        p = min(max(p, eps), 1 - eps)
        return math.log(p / (1 - p))

    return [
        logit(features["rec_mean"]),
        logit(features["rec_min"]),
        math.log(max(features["margin"], 1e-3)),
        math.log(max(features["size_ratio"], 1e-3)),
        features["colour"],
        features["typical"],
        features["limits_seen"],
        features["inline"],
        features["agree"],
        math.log(max(features["char_aspect"], 1e-3)),
        features["single_digit"],
    ]


@dataclass(frozen=True)
class FieldConfidence:
    """``P(value correct | features)`` and the threshold below which a field is withheld."""

    weights: tuple[float, ...]
    bias: float
    threshold: float

    @classmethod
    def from_manifest(cls, section: Any) -> FieldConfidence:
        where = "manifest.postprocess.field_confidence"
        if not isinstance(section, dict):
            raise ManifestError(f"{where}: an object with weights, bias, threshold is needed")
        weights = section.get("weights")
        if not isinstance(weights, dict) or set(weights) != set(FEATURES):
            raise ManifestError(f"{where}.weights: one number for each of {list(FEATURES)}")
        try:
            w = tuple(float(weights[f]) for f in FEATURES)
            bias, threshold = float(section["bias"]), float(section["threshold"])
        except (KeyError, TypeError, ValueError) as e:
            raise ManifestError(f"{where}: {e}") from None
        if not all(math.isfinite(x) for x in (*w, bias)) or not 0.0 <= threshold < 1.0:
            raise ManifestError(f"{where}: finite weights, threshold in [0, 1)")
        return cls(w, bias, threshold)

    def inputs(self, features: Mapping[str, float]) -> list[float]:
        return _transform(features)

    def __call__(self, features: Mapping[str, float]) -> float:
        z = self.bias + sum(w * x for w, x in zip(self.weights, _transform(features), strict=True))
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))
