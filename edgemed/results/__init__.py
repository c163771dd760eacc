"""Result types: frozen dataclasses that always carry their provenance (one module per task)."""

from __future__ import annotations

from .base import Provenance, Result, ResultBuilder, SignalWindow, Timings, timings_summary
from .eeg import SeizureProbability
from .sleep import SleepStages
from .tabular import TabularClassification, TabularRegression
from .text import EmbeddingResult, LabelScore

__all__ = [
    "EmbeddingResult",
    "LabelScore",
    "Provenance",
    "Result",
    "ResultBuilder",
    "SeizureProbability",
    "SignalWindow",
    "SleepStages",
    "TabularClassification",
    "TabularRegression",
    "Timings",
    "timings_summary",
]
