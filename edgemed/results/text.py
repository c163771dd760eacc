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
    # Why a measurement in the text contradicts this code (e.g. a low glucose vs a
    # hyperglycaemia code); None when nothing does.
    contradicted: str | None = None

    def body(self, digits: int = 6) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "text": self.text,
            "score": round(self.score, digits),
        }
        if self.contradicted is not None:  # only when set: payloads stay as they were
            out["contradicted"] = self.contradicted
        return out


@dataclass(frozen=True, kw_only=True, eq=False)
class EmbeddingResult:
    """A text embedding (unit L2 norm) and the nearest labels of the model's label set.

    With a label set, the result also says whether its first suggestion is a confident one
    (``edgemed/tasks/text_embedding/code_confidence.py``): ``suggestion`` is ``nearest[0]`` when it is,
    else None with ``abstained`` and ``abstain_reason``; ``confidence`` is the calibrated
    probability that the first suggestion's 3-character category is right (None without a
    calibration); ``assertion`` is how the text asserts its findings: ``present``,
    ``negated``, ``uncertain``, ``pending``, ``hypothetical`` or ``mixed``. ``nearest`` stays
    listed either way, for a human coder.
    """

    embedding: npt.NDArray[np.float32] = field(repr=False)
    nearest: tuple[LabelScore, ...]
    n_tokens: int
    truncated: bool
    provenance: Provenance
    suggestion: LabelScore | None = None
    confidence: float | None = None
    assertion: str | None = None  # None: the model has no label set to suggest from
    abstained: bool = False
    abstain_reason: str | None = None
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
            "nearest": [n.body() for n in self.nearest],
            "n_tokens": self.n_tokens,
            "truncated": self.truncated,
            **self._doubt(6),
        }

    def _doubt(self, digits: int) -> dict[str, Any]:
        """The suggestion's judgement (additive fields; absent for models without labels)."""
        if self.assertion is None:
            return {}
        return {
            "suggestion": None if self.suggestion is None else self.suggestion.body(digits),
            "confidence": None if self.confidence is None else round(self.confidence, digits),
            "assertion": self.assertion,
            "abstained": self.abstained,
            "abstain_reason": self.abstain_reason,
        }

    def summary(self) -> dict[str, Any]:
        """A short, JSON-able view for printing (no embedding values)."""
        return {
            **timings_summary(self.provenance),
            "dim": int(self.embedding.shape[0]),
            "n_tokens": self.n_tokens,
            "truncated": self.truncated,
            "nearest": [n.body(4) for n in self.nearest],
            **self._doubt(4),
        }
