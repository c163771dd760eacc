"""Stage 4: model outputs -> result fields, using the native kernels."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import kernels
from ..errors import ManifestError, ModelError
from ..manifest import Manifest, parse_section
from ..preprocess.text import TextContext
from ..results import EmbeddingResult, LabelScore, ResultBuilder

__all__ = ["EmbeddingPostprocess", "EmbeddingPostprocessor"]


@dataclass(frozen=True, kw_only=True)
class EmbeddingPostprocess:
    """The manifest's ``postprocess`` section for text-embedding models."""

    top_k: int


class EmbeddingPostprocessor:
    """Re-normalise embeddings and find the nearest labels by cosine top-k (C++ kernel)."""

    def __init__(self, manifest: Manifest) -> None:
        config = parse_section(EmbeddingPostprocess, manifest.postprocess, "manifest.postprocess")
        if config.top_k < 1:
            raise ManifestError("manifest.postprocess.top_k: must be >= 1")
        self._output = manifest.outputs[0].name
        self._labels: list[dict[str, str]] = []
        self._matrix: npt.NDArray[np.float32] | None = None
        if manifest.has("labels") and manifest.has("label_embeddings"):
            labels_path, embeddings_path = (
                manifest.path("labels"),
                manifest.path("label_embeddings"),
            )
            self._labels = json.loads(labels_path.read_text(encoding="utf-8"))
            matrix = np.load(embeddings_path, allow_pickle=False)
            if matrix.dtype != np.float32 or matrix.ndim != 2 or len(matrix) != len(self._labels):
                raise ModelError(
                    f"{embeddings_path}: expected float32 ({len(self._labels)}, dim), "
                    f"got {matrix.dtype} {matrix.shape}"
                )
            self._matrix = kernels.l2_normalize(matrix)
        self.top_k = min(config.top_k, len(self._labels))

    def __call__(
        self, outputs: Mapping[str, npt.NDArray[Any]], context: TextContext
    ) -> ResultBuilder:
        unit, nearest = self.nearest(outputs[self._output])
        return partial(
            EmbeddingResult,
            embedding=unit[0],
            nearest=nearest[0],
            n_tokens=context.n_tokens,
            truncated=context.truncated,
        )

    def nearest(
        self, embeddings: npt.NDArray[Any]
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
