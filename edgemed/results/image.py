"""Results of image classifiers: the best label(s) with their scores, or an abstention."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Provenance, timings_summary

__all__ = ["ImageClassification"]


@dataclass(frozen=True, kw_only=True)
class ImageClassification:
    """What an image classifier (task ``image-classification``) says about one image.

    ``top`` holds the manifest's ``top_k`` best (label, score) pairs, best first, whatever
    the decision. Scores are the final per-class scores (after softmax or sigmoid), in [0, 1].

    Single-label: ``label`` is the best label and ``score`` its score, ``positive`` is
    ``(label,)``. Multi-label: ``positive`` holds every label at or above its threshold, best
    first; ``label`` is the best of them (None: no label present) and ``score`` its score (the
    best score of all when no label is present).

    ``abstained`` says why no label is given where the model is not confident enough: the
    top score under ``min_confidence`` (single-label), or a label over its threshold but under
    ``min_confidence`` (multi-label). ``label`` is then None and ``positive`` empty: a label
    scored below ``min_confidence`` is never reported.
    """

    label: str | None
    score: float
    top: tuple[tuple[str, float], ...]
    positive: tuple[str, ...]
    multi_label: bool
    abstained: str | None
    provenance: Provenance
    kind: str = "image-classification"

    def body(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "score": round(self.score, 6),
            "top": [[label, round(score, 6)] for label, score in self.top],
            "positive": list(self.positive),
            "multi_label": self.multi_label,
            "abstained": self.abstained,
        }

    def summary(self) -> dict[str, Any]:
        return {
            **timings_summary(self.provenance),
            "label": self.label,
            "score": round(self.score, 4),
            "positive": list(self.positive),
            "top": {label: round(score, 4) for label, score in self.top},
            "abstained": self.abstained,
        }
