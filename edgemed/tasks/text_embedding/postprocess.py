"""Stage 4: model outputs -> result fields, using the native kernels."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ... import kernels
from ...errors import ManifestError, ModelError
from ...manifest import Manifest, parse_section
from ...results import EmbeddingResult, LabelScore, Result, ResultBuilder, deferred
from ..golden import golden_limits
from .code_confidence import judge, load_confidence
from .preprocess import TextContext

__all__ = [
    "POOLINGS",
    "EmbeddingPostprocess",
    "EmbeddingPostprocessor",
    "golden_check",
    "golden_role",
    "pool",
]


POOLINGS = ("none", "mean", "cls", "last")


@dataclass(frozen=True, kw_only=True)
class EmbeddingPostprocess:
    """The manifest's ``postprocess`` section for text-embedding models.

    ``pooling``: how the model's output becomes one vector per text: ``none`` (the graph pools:
    the output is [batch, dim]), ``mean`` (the mean over the text's tokens of a [batch, tokens,
    dim] output, as sentence-transformers' mean pooling), ``cls`` (its first token, BERT's
    [CLS]), ``last`` (its last token, decoder-style encoders). ``output``: the output to read
    (default: the first). ``top_k``: how many labels to return when the bundle has a label set.
    """

    top_k: int = 10
    pooling: str = "none"
    output: str | None = None


def _pooled_output(manifest: Manifest, config: EmbeddingPostprocess) -> str:
    """The output to read, checked against the pooling (ManifestError on a mismatch)."""
    if config.pooling not in POOLINGS:
        raise ManifestError(
            f"manifest.postprocess.pooling: {config.pooling!r}; expected one of {list(POOLINGS)}"
        )
    outputs = {t.name: t for t in manifest.outputs}
    name = config.output or manifest.outputs[0].name
    if name not in outputs:
        raise ManifestError(f"manifest.postprocess.output: {name!r} is not among {list(outputs)}")
    rank = 2 if config.pooling == "none" else 3
    if len(outputs[name].shape) != rank:
        raise ManifestError(
            f"manifest.postprocess.pooling {config.pooling!r} reads a rank-{rank} output "
            f"({'[batch, dim]' if rank == 2 else '[batch, tokens, dim]'}); {name!r} has shape "
            f"{list(outputs[name].shape)}"
        )
    return name


def pool(output: npt.NDArray[Any], pooling: str, n_tokens: int) -> npt.NDArray[np.float32]:
    """One float32 row per text from the model's output (one text, no padding: every one of
    its ``n_tokens`` tokens counts)."""
    if pooling == "none":
        return np.ascontiguousarray(output, dtype=np.float32)
    tokens = np.asarray(output[:, :n_tokens], dtype=np.float32)
    if pooling == "mean":
        return np.ascontiguousarray(tokens.mean(axis=1, dtype=np.float64), dtype=np.float32)
    return np.ascontiguousarray(tokens[:, 0 if pooling == "cls" else -1])


class EmbeddingPostprocessor:
    """Re-normalise embeddings and find the nearest labels by cosine top-k (C++ kernel).

    The label set is ``labels`` (a JSON list of ``{"code", "text"}``) with either
    ``label_embeddings`` (float32 rows, searched exactly) or ``label_index_int8`` +
    ``label_index_scales`` (symmetric per-row int8 rows and their float32 scales from
    :func:`edgemed.kernels.quantize_rows_int8`, 4x smaller; searched with
    :func:`edgemed.kernels.cosine_topk_int8`). Without labels, results carry no ``nearest``.
    With labels, the first suggestion is judged (assertion, plausibility, the bundle's
    ``code_confidence`` calibration; :mod:`edgemed.tasks.text_embedding.code_confidence`).
    """

    def __init__(self, manifest: Manifest) -> None:
        config = parse_section(EmbeddingPostprocess, manifest.postprocess, "manifest.postprocess")
        if config.top_k < 1:
            raise ManifestError("manifest.postprocess.top_k: must be >= 1")
        self._output = _pooled_output(manifest, config)
        self._pooling = config.pooling
        self._labels: list[dict[str, str]] = []
        self._matrix: npt.NDArray[np.float32] | npt.NDArray[np.int8] | None = None
        if manifest.has("labels"):
            self._labels = json.loads(manifest.path("labels").read_text(encoding="utf-8"))
            if manifest.has("label_index_int8"):
                self._matrix = _load_int8_index(manifest, len(self._labels))
            elif manifest.has("label_embeddings"):
                self._matrix = kernels.l2_normalize(
                    _load_rows(manifest, "label_embeddings", np.float32, len(self._labels))
                )
            else:
                raise ManifestError(
                    f"{manifest.id}: 'labels' needs 'label_embeddings' or 'label_index_int8'"
                )
        self.top_k = min(config.top_k, len(self._labels))
        self._confidence = load_confidence(manifest, self.top_k) if self._labels else None

    def __call__(
        self, outputs: Mapping[str, npt.NDArray[Any]], context: TextContext
    ) -> ResultBuilder:
        pooled = pool(outputs[self._output], self._pooling, context.n_tokens)
        if not np.isfinite(pooled).all():  # never a silent NaN embedding (e.g. an FP16 overflow)
            raise ModelError("the model's output holds NaN or infinity for this text")
        if not context.nearest:  # the embedding alone (TextQuery(..., nearest=False))
            unit = kernels.l2_normalize(pooled)
            return deferred(
                EmbeddingResult,
                embedding=unit[0],
                nearest=(),
                n_tokens=context.n_tokens,
                truncated=context.truncated,
            )
        unit, nearest = self.nearest(pooled)
        ranked = nearest[0]
        if not self._labels:
            return deferred(
                EmbeddingResult,
                embedding=unit[0],
                nearest=ranked,
                n_tokens=context.n_tokens,
                truncated=context.truncated,
            )
        verdict = judge(
            context.text,
            [n.code for n in ranked],
            [n.text for n in ranked],
            [n.score for n in ranked],
            self._confidence,
        )
        ranked = tuple(
            LabelScore(code=n.code, text=n.text, score=n.score, contradicted=why)
            if why is not None
            else n
            for n, why in zip(ranked, verdict.contradicted, strict=True)
        )
        return deferred(
            EmbeddingResult,
            embedding=unit[0],
            nearest=ranked,
            n_tokens=context.n_tokens,
            truncated=context.truncated,
            suggestion=ranked[0] if verdict.confident else None,
            confidence=verdict.confidence,
            assertion=verdict.assertion,
            abstained=not verdict.confident,
            abstain_reason=verdict.reason,
        )

    def nearest(
        self, embeddings: npt.NDArray[Any]
    ) -> tuple[npt.NDArray[np.float32], list[tuple[LabelScore, ...]]]:
        # The graph normalises already; doing it again costs ~1 µs and guards INT8 drift.
        unit = kernels.l2_normalize(np.ascontiguousarray(embeddings, dtype=np.float32))
        if self._matrix is None or self.top_k == 0:
            return unit, [() for _ in range(len(unit))]
        if self._matrix.dtype == np.int8:
            index, score = kernels.cosine_topk_int8(unit, self._matrix, self.top_k)
        else:  # normalised at load
            index, score = kernels.cosine_topk(unit, self._matrix, self.top_k, normalized=True)
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


def _load_rows(manifest: Manifest, role: str, dtype: type[np.generic], rows: int) -> Any:
    path = manifest.path(role)
    matrix = np.load(path, allow_pickle=False)
    if matrix.dtype != dtype or matrix.ndim != 2 or len(matrix) != rows:
        raise ModelError(
            f"{path}: expected {np.dtype(dtype).name} ({rows}, dim), got {matrix.dtype} {matrix.shape}"
        )
    return np.ascontiguousarray(matrix)


def _load_int8_index(manifest: Manifest, rows: int) -> npt.NDArray[np.int8]:
    """int8 rows plus their per-row scales; the scales are checked, not needed for cosine."""
    matrix: npt.NDArray[np.int8] = _load_rows(manifest, "label_index_int8", np.int8, rows)
    path = manifest.path("label_index_scales")
    scales = np.load(path, allow_pickle=False)
    if scales.dtype != np.float32 or scales.shape != (rows,):
        raise ModelError(f"{path}: expected float32 ({rows},), got {scales.dtype} {scales.shape}")
    if not (np.isfinite(scales).all() and (scales > 0).all()):
        raise ModelError(f"{path}: every row scale must be finite and > 0")
    return matrix


def golden_role(manifest: Manifest, backend: str, cpu_family: str) -> str:
    """The expected golden outputs for ``backend`` on this CPU family: the most specific the
    bundle ships of ``golden_outputs_<backend>_<family>`` (INT8 kernels round differently on
    AVX2, AVX-512 VNNI, AMX, NEON: measured cosine 0.986 between AVX2 and AVX-512 outputs),
    ``golden_outputs_<backend>`` (each INT8 engine quantises differently), ``golden_outputs``."""
    family = cpu_family.replace("-", "_")
    for role in (f"golden_outputs_{backend}_{family}", f"golden_outputs_{backend}"):
        if manifest.has(role):
            return role
    return "golden_outputs"


def _expected(path: Path) -> npt.NDArray[Any]:
    """Expected embeddings: an ``.npy`` matrix, or ``embeddings`` of an ``.npz`` (built)."""
    if path.suffix != ".npz":
        return np.asarray(np.load(path, allow_pickle=False))
    with np.load(path, allow_pickle=False) as npz:
        if "embeddings" not in npz.files:
            raise ModelError(f"{path}: no 'embeddings' array")
        return np.asarray(npz["embeddings"])


def golden_check(manifest: Manifest, results: Sequence[Result], cpu_family: str) -> list[str]:
    """Embeddings on the golden texts against the bundle's expected ones for the backend that
    produced them (max |diff|, cosine)."""
    got_rows = [r for r in results if isinstance(r, EmbeddingResult)]
    if not got_rows:
        return ["golden: no embedding results"]
    role = golden_role(manifest, got_rows[0].provenance.backend, cpu_family)
    expected = _expected(manifest.path(role))
    got = np.stack([r.embedding for r in got_rows])
    if got.shape != expected.shape:
        return [f"golden ({role}): got embeddings {got.shape}, expected {expected.shape}"]
    # This family's limits were measured against this family's own expected outputs; against
    # another machine's (a bundle without them) only the default limits mean anything.
    own = role.endswith(cpu_family.replace("-", "_"))
    tol, problems = (golden_limits(manifest, results, cpu_family) if own else manifest.golden), []
    worst = float(np.abs(got - expected).max())
    if worst > tol.max_abs_diff:
        problems.append(f"golden ({role}): max |diff| {worst:.4g} > {tol.max_abs_diff}")
    cosine = np.sum(got * expected, axis=1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
    )
    if tol.min_cosine is not None and float(cosine.min()) < tol.min_cosine:
        problems.append(f"golden ({role}): min cosine {float(cosine.min()):.4f} < {tol.min_cosine}")
    return problems
