"""Stage 4: model outputs -> result fields, using the native kernels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt

from . import kernels
from .errors import ModelError
from .results import LabelScore

__all__ = ["EmbeddingPostprocessor"]


class EmbeddingPostprocessor:
    """Re-normalise embeddings and find the nearest labels by cosine top-k (C++ kernel)."""

    def __init__(self, labels_path: Path | None, embeddings_path: Path | None, top_k: int) -> None:
        self._labels: list[dict[str, str]] = []
        self._matrix: npt.NDArray[np.float32] | None = None
        if labels_path is not None and embeddings_path is not None:
            self._labels = json.loads(labels_path.read_text(encoding="utf-8"))
            matrix = np.load(embeddings_path, allow_pickle=False)
            if matrix.dtype != np.float32 or matrix.ndim != 2 or len(matrix) != len(self._labels):
                raise ModelError(
                    f"{embeddings_path}: expected float32 ({len(self._labels)}, dim), "
                    f"got {matrix.dtype} {matrix.shape}"
                )
            self._matrix = kernels.l2_normalize(matrix)
        self.top_k = min(top_k, len(self._labels))

    def __call__(
        self, embeddings: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], list[tuple[LabelScore, ...]]]:
        # The graph normalises already; doing it again costs ~1 µs and guards INT8 drift.
        unit = kernels.l2_normalize(np.ascontiguousarray(embeddings, dtype=np.float32))
        if self._matrix is None or self.top_k == 0:
            return unit, [() for _ in range(len(unit))]
        index, score = kernels.cosine_topk(unit, self._matrix, self.top_k)
        nearest = [
            tuple(
                LabelScore(
                    code=self._labels[i]["code"], text=self._labels[i]["text"], score=float(s)
                )
                for i, s in zip(row_i, row_s, strict=True)
            )
            for row_i, row_s in zip(index, score, strict=True)
        ]
        return unit, nearest
