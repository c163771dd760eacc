"""Result types: frozen dataclasses that always carry their provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["EmbeddingResult", "LabelScore", "Provenance", "Timings"]


@dataclass(frozen=True, kw_only=True)
class Timings:
    """Wall time per pipeline stage, milliseconds."""

    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.inference_ms + self.postprocess_ms


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """Which model, runtime and input produced a result (never any patient identifier)."""

    model_id: str
    model_version: str
    model_sha256: str
    backend: str
    device: str
    precision: str
    input_sha256: str
    input_kind: str
    timings: Timings
    edgemed_version: str
    created_at: float  # Unix time on the device clock


@dataclass(frozen=True, kw_only=True)
class LabelScore:
    code: str
    text: str
    score: float


@dataclass(frozen=True, kw_only=True, eq=False)
class EmbeddingResult:
    """A text embedding (unit L2 norm) and the nearest labels of the model's label set."""

    embedding: npt.NDArray[np.float32] = field(repr=False)
    nearest: tuple[LabelScore, ...]
    n_tokens: int
    truncated: bool
    provenance: Provenance
    kind: str = "text-embedding"

    def summary(self) -> dict[str, Any]:
        """A short, JSON-able view for printing (no embedding values)."""
        p = self.provenance
        return {
            "model": f"{p.model_id}@{p.model_version}",
            "backend": f"{p.backend}/{p.device}/{p.precision}",
            "dim": int(self.embedding.shape[0]),
            "n_tokens": self.n_tokens,
            "truncated": self.truncated,
            "nearest": [
                {"code": n.code, "text": n.text, "score": round(n.score, 4)} for n in self.nearest
            ],
            "timings_ms": {
                "preprocess": round(p.timings.preprocess_ms, 3),
                "inference": round(p.timings.inference_ms, 3),
                "postprocess": round(p.timings.postprocess_ms, 3),
            },
        }
