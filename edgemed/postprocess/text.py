"""Stage 4: model outputs -> result fields, using the native kernels."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import kernels
from ..errors import ManifestError, ModelError
from ..manifest import Manifest, parse_section
from ..preprocess.text import TextContext
from ..results import EmbeddingResult, LabelScore, Result, ResultBuilder

__all__ = ["EmbeddingPostprocess", "EmbeddingPostprocessor", "golden_check"]


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


def golden_check(manifest: Manifest, results: Sequence[Result]) -> list[str]:
    """Embeddings on the golden texts against the bundle's expected ones (max |diff|, cosine)."""
    expected = np.load(manifest.path("golden_outputs"), allow_pickle=False)
    got = np.stack([r.embedding for r in results if isinstance(r, EmbeddingResult)])
    if got.shape != expected.shape:
        return [f"golden: got embeddings {got.shape}, expected {expected.shape}"]
    tol, problems = manifest.golden, []
    worst = float(np.abs(got - expected).max())
    if worst > tol.max_abs_diff:
        problems.append(f"golden: max |diff| {worst:.4g} > {tol.max_abs_diff}")
    cosine = np.sum(got * expected, axis=1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
    )
    if tol.min_cosine is not None and float(cosine.min()) < tol.min_cosine:
        problems.append(f"golden: min cosine {float(cosine.min()):.4f} < {tol.min_cosine}")
    return problems
