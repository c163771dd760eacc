"""edgemed: bedside AI on edge hardware, with every result synced durably to the fleet.

>>> import edgemed
>>> encoder = edgemed.load("clinical-text-minilm")
>>> result = encoder("chest pain radiating to the left arm")
>>> result.nearest[0].code, result.nearest[0].text  # ICD-10-CM code suggestions, best first
('R07.89', 'Other chest pain')

Not a medical device: see each model's MODEL_CARD.md for its intended use.
"""

from __future__ import annotations

from ._version import __version__
from .errors import (
    BackendError,
    BackendUnavailableError,
    BridgeError,
    EdgemedError,
    FrameError,
    GoldenMismatchError,
    InputError,
    IntegrityError,
    ManifestError,
    ModelError,
    OutboxFullError,
    PayloadError,
    SyncError,
)
from .manifest import Manifest
from .pipeline import Pipeline, load
from .preprocess.ecg import EcgRecording
from .preprocess.image import MonitorFrame
from .registry import list_models
from .results import (
    EmbeddingResult,
    LabelScore,
    MonitorReading,
    Provenance,
    Result,
    SeizureProbability,
    SignalWindow,
    SleepStages,
    TabularClassification,
    TabularRegression,
    Timings,
)

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "BridgeError",
    "EcgRecording",
    "EdgemedError",
    "EmbeddingResult",
    "FrameError",
    "GoldenMismatchError",
    "InputError",
    "IntegrityError",
    "LabelScore",
    "Manifest",
    "ManifestError",
    "ModelError",
    "MonitorFrame",
    "MonitorReading",
    "OutboxFullError",
    "PayloadError",
    "Pipeline",
    "Provenance",
    "Result",
    "SeizureProbability",
    "SignalWindow",
    "SleepStages",
    "SyncError",
    "TabularClassification",
    "TabularRegression",
    "Timings",
    "__version__",
    "list_models",
    "load",
]
