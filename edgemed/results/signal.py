"""Results of signal classifiers: one window's label with its score, or an abstention."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Provenance, timings_summary

__all__ = ["SignalClassification"]


@dataclass(frozen=True, kw_only=True)
class SignalClassification:
    """What a signal classifier (task ``signal-classification``) says about one window.

    ``top`` holds the manifest's ``top_k`` best (label, score) pairs, best first, whatever the
    decision; scores are the final per-class scores (after softmax or sigmoid), in [0, 1].
    ``label`` is the best label and ``score`` its score; ``abstained`` says why no label is
    given when the best score is under ``min_confidence`` (``label`` is then None).

    Results of ``Pipeline.stream`` carry their window in the provenance; the body then says
    where it lies in the streamed signal (``window_start_s``, ``window_end_s``: seconds from
    the stream's first sample, at the source's own rate).
    """

    label: str | None
    score: float
    top: tuple[tuple[str, float], ...]
    abstained: str | None
    provenance: Provenance
    kind: str = "signal-classification"

    def _window(self) -> dict[str, Any]:
        w = self.provenance.window
        if w is None:
            return {}
        start = w.start_sample / w.sampling_rate_hz
        return {
            "window_start_s": round(start, 6),
            "window_end_s": round(start + w.samples / w.sampling_rate_hz, 6),
        }

    def body(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "score": round(self.score, 6),
            "top": [[label, round(score, 6)] for label, score in self.top],
            "abstained": self.abstained,
            **self._window(),
        }

    def summary(self) -> dict[str, Any]:
        return {
            **timings_summary(self.provenance),
            "label": self.label,
            "score": round(self.score, 4),
            "top": {label: round(score, 4) for label, score in self.top},
            "abstained": self.abstained,
            **self._window(),
        }
