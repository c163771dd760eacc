"""Result types: frozen dataclasses that always carry their provenance (one module per task)."""

from __future__ import annotations

from .base import Provenance, Result, ResultBuilder, SignalWindow, Timings, timings_summary
from .eeg import SeizureProbability
from .text import EmbeddingResult, LabelScore

__all__ = [
    "EmbeddingResult",
    "LabelScore",
    "Provenance",
    "Result",
    "ResultBuilder",
    "SeizureProbability",
    "SignalWindow",
    "Timings",
    "timings_summary",
]
