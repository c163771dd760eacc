"""edgemed: bedside AI on edge hardware, with every result synced durably to the fleet.

>>> import edgemed
>>> encoder = edgemed.load("clinical-text-minilm")
>>> result = encoder("chest pain radiating to the left arm")
>>> result.nearest[0].code, result.nearest[0].text  # ICD-10-CM code suggestions, best first
('R07.89', 'Other chest pain')

Not a medical device: see each model's MODEL_CARD.md for its intended use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

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
    MissingDependencyError,
    ModelError,
    OutboxFullError,
    PayloadError,
    RollbackError,
    SignatureError,
    SyncError,
    TrustPolicyError,
)

if TYPE_CHECKING:
    from .manifest import Manifest
    from .pipeline import Pipeline, load
    from .registry import list_models
    from .results import (
        EmbeddingResult,
        ImageClassification,
        ImageSegmentation,
        LabelScore,
        MonitorReading,
        ObjectDetection,
        Provenance,
        Result,
        SeizureProbability,
        SignalClassification,
        SignalWindow,
        SleepStages,
        TabularClassification,
        TabularClassificationTable,
        TabularRegression,
        TabularRegressionTable,
        Timings,
    )
    from .tasks.ecg_sleep_staging.preprocess import EcgRecording
    from .tasks.monitor_reader.preprocess import MonitorFrame
    from .tasks.text_embedding.preprocess import TextQuery
    from .trust import TrustPolicy

# Imported on first use (PEP 562), so that ``import edgemed.fleet`` or the embedded broker
# loads no runtime and no compiled kernels: the fleet side needs neither.
_LAZY = {
    "Manifest": "manifest",
    "Pipeline": "pipeline",
    "load": "pipeline",
    "EcgRecording": "tasks.ecg_sleep_staging.preprocess",
    "MonitorFrame": "tasks.monitor_reader.preprocess",
    "TextQuery": "tasks.text_embedding.preprocess",
    "list_models": "registry",
    "TrustPolicy": "trust",
    **{
        name: "results"
        for name in (
            "EmbeddingResult",
            "ImageClassification",
            "ImageSegmentation",
            "LabelScore",
            "MonitorReading",
            "ObjectDetection",
            "Provenance",
            "Result",
            "SeizureProbability",
            "SignalClassification",
            "SignalWindow",
            "SleepStages",
            "TabularClassification",
            "TabularClassificationTable",
            "TabularRegression",
            "TabularRegressionTable",
            "Timings",
        )
    },
}
# Subpackages reachable as attributes after a bare ``import edgemed`` (as when imports were eager).
_SUBMODULES = frozenset(
    {
        "backends", "bridge", "cli", "config", "contracts", "errors", "fleet", "hardware", "io",
        "kernels", "manifest", "mqtt_connection", "pipeline", "registry", "results", "sync",
        "tasks", "trust", "wire",
    }
)  # fmt: skip


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)


__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "BridgeError",
    "EcgRecording",
    "EdgemedError",
    "EmbeddingResult",
    "FrameError",
    "GoldenMismatchError",
    "ImageClassification",
    "ImageSegmentation",
    "InputError",
    "IntegrityError",
    "LabelScore",
    "Manifest",
    "ManifestError",
    "MissingDependencyError",
    "ModelError",
    "MonitorFrame",
    "MonitorReading",
    "ObjectDetection",
    "OutboxFullError",
    "PayloadError",
    "Pipeline",
    "Provenance",
    "Result",
    "RollbackError",
    "SeizureProbability",
    "SignalClassification",
    "SignalWindow",
    "SignatureError",
    "SleepStages",
    "SyncError",
    "TabularClassification",
    "TabularClassificationTable",
    "TabularRegression",
    "TabularRegressionTable",
    "TextQuery",
    "Timings",
    "TrustPolicy",
    "TrustPolicyError",
    "__version__",
    "list_models",
    "load",
]
