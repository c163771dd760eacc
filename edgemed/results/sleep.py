"""Results of ECG sleep staging."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .base import Provenance, timings_summary

__all__ = ["SleepStages"]


@dataclass(frozen=True, kw_only=True, eq=False)
class SleepStages:
    """Per-epoch sleep stages of one recording, with the class probabilities.

    ``classes`` are the model's outputs in order (sleepecg's wake-rem-nrem classifier adds
    ``"undefined"``, the class of padded epochs in training); ``stages[i]`` is the most probable
    class of epoch ``i`` (starting ``i * epoch_seconds`` after the first sample) and
    ``probabilities[i]`` its row of class probabilities.
    """

    stages: tuple[str, ...]
    probabilities: npt.NDArray[np.float32] = field(repr=False)
    classes: tuple[str, ...]
    epoch_seconds: float
    counts: Mapping[str, int]
    n_beats: int
    invalid_rri: int
    metadata_given: tuple[str, ...]
    # units, amplitude, flat and clipped fractions, warnings (preprocess/quality.py)
    quality: Mapping[str, Any]
    provenance: Provenance
    kind: str = "sleep-stages"

    @property
    def n_epochs(self) -> int:
        return len(self.stages)

    def hypnogram(self) -> str:
        """One letter per epoch: the first letter of its class (u, w, r, n), upper-cased."""
        return "".join(s[0].upper() for s in self.stages)

    def body(self) -> dict[str, Any]:
        # float16 probabilities (|error| <= 2.5e-4) and one letter per epoch keep an 8 h night
        # (960 epochs) under 12 kB.
        probs = np.ascontiguousarray(self.probabilities, dtype="<f2")
        return {
            "kind": self.kind,
            "epoch_seconds": self.epoch_seconds,
            "n_epochs": self.n_epochs,
            "classes": list(self.classes),
            "hypnogram": self.hypnogram(),
            "counts": dict(self.counts),
            "probabilities": {
                "dtype": "float16",
                "shape": list(probs.shape),
                "b64": base64.b64encode(probs.tobytes()).decode(),
            },
            "n_beats": self.n_beats,
            "invalid_rri": self.invalid_rri,
            "metadata_given": list(self.metadata_given),
            "quality": dict(self.quality),
        }

    def summary(self) -> dict[str, Any]:
        minutes = {k: round(v * self.epoch_seconds / 60, 1) for k, v in self.counts.items()}
        return {
            **timings_summary(self.provenance),
            "n_epochs": self.n_epochs,
            "hypnogram": self.hypnogram(),
            "minutes": minutes,
            "n_beats": self.n_beats,
            "quality": dict(self.quality),
        }
