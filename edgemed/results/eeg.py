"""Results of EEG/iEEG models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Provenance, timings_summary

__all__ = ["SeizureProbability"]


@dataclass(frozen=True, kw_only=True)
class SeizureProbability:
    """Seizure probability of the newest reported stretch of one iEEG window.

    ``probability`` is the maximum of the model's per-0.5 s seizure probabilities over the
    evaluated columns of the reported segment ``[segment_start_s, segment_end_s)`` (seconds from
    the window's first sample; column centres); ``trace`` holds those values in order, ``None``
    where the signal was flat (not evaluated, never "no seizure"). ``seizure`` is
    ``probability >= threshold``. Not a medical device: a research model's output.
    """

    probability: float
    threshold: float
    seizure: bool
    segment_start_s: float
    segment_end_s: float
    trace: tuple[float | None, ...]
    evaluated_fraction: float  # share of the segment's 0.5 s columns with real signal
    provenance: Provenance
    kind: str = "seizure-probability"

    def body(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "probability": round(self.probability, 6),
            "threshold": self.threshold,
            "seizure": self.seizure,
            "segment_start_s": self.segment_start_s,
            "segment_end_s": self.segment_end_s,
            "trace_step_s": 0.5,
            "trace": [None if v is None else round(v, 5) for v in self.trace],
            "evaluated_fraction": round(self.evaluated_fraction, 4),
            **self._in_recording(),
        }

    def _in_recording(self) -> dict[str, Any]:
        """Where the segment lies in the whole streamed signal (seconds from its first
        sample), when the result came from Pipeline.stream; the segment itself is counted
        from the window's first sample."""
        w = self.provenance.window
        if w is None:
            return {}
        start = w.start_sample / w.sampling_rate_hz
        return {
            "window_start_s": round(start, 6),
            "recording_segment_s": [
                round(start + self.segment_start_s, 6),
                round(start + self.segment_end_s, 6),
            ],
        }

    def summary(self) -> dict[str, Any]:
        return {
            **timings_summary(self.provenance),
            "probability": round(self.probability, 4),
            "threshold": self.threshold,
            "seizure": self.seizure,
            "segment_s": [self.segment_start_s, self.segment_end_s],
            **self._in_recording(),
        }
