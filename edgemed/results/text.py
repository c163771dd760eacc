"""Results of text models."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .base import Provenance, timings_summary

__all__ = ["EmbeddingResult", "LabelScore"]


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

    def body(self) -> dict[str, Any]:
        # float16 halves the payload; cosine to the float32 vector stays > 0.99999.
        emb = np.ascontiguousarray(self.embedding, dtype="<f2")
        return {
            "kind": self.kind,
            "embedding": {
                "dtype": "float16",
                "shape": list(emb.shape),
                "b64": base64.b64encode(emb.tobytes()).decode(),
            },
            "nearest": [
                {"code": n.code, "text": n.text, "score": round(n.score, 6)} for n in self.nearest
            ],
            "n_tokens": self.n_tokens,
            "truncated": self.truncated,
        }

    def summary(self) -> dict[str, Any]:
        """A short, JSON-able view for printing (no embedding values)."""
        return {
            **timings_summary(self.provenance),
            "dim": int(self.embedding.shape[0]),
            "n_tokens": self.n_tokens,
            "truncated": self.truncated,
            "nearest": [
                {"code": n.code, "text": n.text, "score": round(n.score, 4)} for n in self.nearest
            ],
        }
