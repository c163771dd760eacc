"""Result types: frozen dataclasses that always carry their provenance (one module per task)."""

from __future__ import annotations

from .base import (
    ModelUse,
    Provenance,
    Result,
    ResultBuilder,
    SignalWindow,
    Timings,
    deferred,
    finish_batch,
    timings_summary,
)
from .detection import ObjectDetection
from .eeg import SeizureProbability
from .image import ImageClassification
from .monitor import (
    MONITOR_FIELDS,
    WITHHELD_REASONS,
    MonitorReading,
    News2Partial,
    OcrText,
    VitalReading,
    Withheld,
)
from .segmentation import ImageSegmentation
from .signal import SignalClassification
from .sleep import SleepStages
from .tabular import (
    TabularClassification,
    TabularClassificationTable,
    TabularRegression,
    TabularRegressionTable,
    TabularTable,
)
from .text import EmbeddingResult, LabelScore

__all__ = [
    "MONITOR_FIELDS",
    "WITHHELD_REASONS",
    "EmbeddingResult",
    "ImageClassification",
    "ImageSegmentation",
    "LabelScore",
    "ModelUse",
    "MonitorReading",
    "News2Partial",
    "ObjectDetection",
    "OcrText",
    "Provenance",
    "Result",
    "ResultBuilder",
    "SeizureProbability",
    "SignalClassification",
    "SignalWindow",
    "SleepStages",
    "TabularClassification",
    "TabularClassificationTable",
    "TabularRegression",
    "TabularRegressionTable",
    "TabularTable",
    "Timings",
    "VitalReading",
    "Withheld",
    "deferred",
    "finish_batch",
    "timings_summary",
]
