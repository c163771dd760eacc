"""Stage 4 for image classifiers: per-class scores -> the label(s), or an abstention.

Scores are the model's outputs through ``softmax`` or ``sigmoid`` (logits), or as they are
(``probabilities``: refused unless within [0, 1]). Single-label: the best label, withheld
when its score is under ``min_confidence``. Multi-label: every label at or above its
threshold (``thresholds``, 0.5 where a label has none), withheld when one of those is under
``min_confidence``: such a label is flagged but not confidently, and a label scored below
``min_confidence`` is never reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ... import kernels
from ...errors import ManifestError, ModelError
from ...manifest import Manifest, parse_section
from ...results import ImageClassification, Result, ResultBuilder, deferred
from ..golden import golden_limits

__all__ = ["ImagePostprocess", "ImagePostprocessor", "golden_check"]

SCORES = ("softmax", "sigmoid", "probabilities")
DEFAULT_THRESHOLD = 0.5
_PROBABILITY_SLACK = 1e-4  # float rounding of a model's own softmax/sigmoid
_WHERE = "manifest.postprocess"


@dataclass(frozen=True, kw_only=True)
class ImagePostprocess:
    """The manifest's ``postprocess`` section for image classifiers."""

    labels: list[Any]  # one per output column, in the model's order
    scores: str  # SCORES
    multi_label: bool
    top_k: int  # 1..len(labels)
    min_confidence: float  # [0, 1]
    thresholds: dict[str, Any] = field(default_factory=dict)  # multi-label: label -> [0, 1]


def _unit(value: Any) -> bool:
    return type(value) in (int, float) and 0.0 <= value <= 1.0


def parse_postprocess(manifest: Manifest) -> tuple[ImagePostprocess, tuple[str, ...]]:
    """The section, checked against itself and the manifest's output tensor."""
    c = parse_section(ImagePostprocess, manifest.postprocess, _WHERE)
    labels = c.labels
    if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)):
        raise ManifestError(f"{_WHERE}.labels: expected a non-empty list of names")
    if not all(labels) or len(set(labels)) != len(labels):
        raise ManifestError(f"{_WHERE}.labels: names must be non-empty and distinct")
    if c.scores not in SCORES:
        raise ManifestError(f"{_WHERE}.scores: {c.scores!r} is not one of {list(SCORES)}")
    if c.multi_label and c.scores == "softmax":
        raise ManifestError(
            f"{_WHERE}.scores: softmax makes the labels compete; multi-label scores are "
            "'sigmoid' or 'probabilities'"
        )
    if not c.multi_label and len(labels) < 2:
        raise ManifestError(f"{_WHERE}.labels: a single-label classifier needs two or more")
    if not 1 <= c.top_k <= len(labels):
        raise ManifestError(f"{_WHERE}.top_k: must be 1..{len(labels)} (the number of labels)")
    if not _unit(c.min_confidence):
        raise ManifestError(f"{_WHERE}.min_confidence: must be in [0, 1]")
    if not isinstance(c.thresholds, dict):
        raise ManifestError(f"{_WHERE}.thresholds: expected an object label -> threshold")
    if c.thresholds and not c.multi_label:
        raise ManifestError(f"{_WHERE}.thresholds: only for multi_label classifiers")
    for name, value in c.thresholds.items():
        if name not in labels:
            raise ManifestError(f"{_WHERE}.thresholds.{name}: not one of the labels")
        if not _unit(value):
            raise ManifestError(f"{_WHERE}.thresholds.{name}: must be in [0, 1]")
    _check_output(manifest, len(labels))
    return c, tuple(labels)


def _check_output(manifest: Manifest, n: int) -> None:
    spec = manifest.outputs[0]
    width = spec.shape[-1] if len(spec.shape) == 2 else None
    if spec.dtype not in ("float32", "float16") or not (isinstance(width, str) or width == n):
        raise ManifestError(
            f"manifest.outputs[0]: an image classifier outputs float32 [batch, {n}], one score "
            f"per label; manifest declares {spec.dtype} {list(spec.shape)}"
        )


class ImagePostprocessor:
    """One row of per-class scores -> :class:`ImageClassification`."""

    def __init__(self, manifest: Manifest) -> None:
        self.config, self.labels = parse_postprocess(manifest)
        given = self.config.thresholds
        self.thresholds = np.array(
            [float(given.get(label, DEFAULT_THRESHOLD)) for label in self.labels], np.float32
        )
        self._output = manifest.outputs[0].name

    def scores(self, outputs: Mapping[str, npt.NDArray[Any]]) -> npt.NDArray[np.float32]:
        """The final per-class scores (n_labels,) in [0, 1]; ModelError where the model's
        output does not fit the manifest."""
        out, n = outputs.get(self._output), len(self.labels)
        if out is None:
            raise ModelError(f"the model gave no output {self._output!r} (got {sorted(outputs)})")
        if out.ndim not in (1, 2) or out.size != n or out.shape[-1] != n:
            raise ModelError(
                f"output {self._output!r}: expected [1, {n}] scores (one per label), "
                f"got shape {out.shape}"
            )
        row = np.ascontiguousarray(out.reshape(n), dtype=np.float32)
        kind = self.config.scores
        if kind == "softmax":
            return kernels.softmax(row)
        if kind == "sigmoid":
            return kernels.sigmoid(row)
        if not (row.min() >= -_PROBABILITY_SLACK and row.max() <= 1 + _PROBABILITY_SLACK):
            raise ModelError(
                f"output {self._output!r}: scores {row.min():.4g}..{row.max():.4g} are not "
                "probabilities (the manifest says scores 'probabilities'; logits need "
                "'softmax' or 'sigmoid')"
            )
        return np.clip(row, 0.0, 1.0)

    def __call__(self, outputs: Mapping[str, npt.NDArray[Any]], context: object) -> ResultBuilder:
        scores = self.scores(outputs)
        values, index = kernels.topk(scores, self.config.top_k)
        top = tuple((self.labels[i], float(v)) for i, v in zip(index, values, strict=True))
        decide = self._multi if self.config.multi_label else self._single
        label, score, positive, abstained = decide(scores, top)
        return deferred(
            ImageClassification,
            label=label,
            score=score,
            top=top,
            positive=positive,
            multi_label=self.config.multi_label,
            abstained=abstained,
        )

    def _single(
        self, scores: npt.NDArray[np.float32], top: tuple[tuple[str, float], ...]
    ) -> tuple[str | None, float, tuple[str, ...], str | None]:
        label, score = top[0]
        floor = self.config.min_confidence
        if score < floor:
            return None, score, (), f"top score {score:.4g} < min_confidence {floor:g}"
        return label, score, (label,), None

    def _multi(
        self, scores: npt.NDArray[np.float32], top: tuple[tuple[str, float], ...]
    ) -> tuple[str | None, float, tuple[str, ...], str | None]:
        hits = np.flatnonzero(scores >= self.thresholds)
        hits = hits[np.argsort(-scores[hits], kind="stable")]  # best first, ties by label order
        floor = self.config.min_confidence
        weak = [i for i in hits if scores[i] < floor]
        if weak:
            i = weak[0]
            why = (
                f"{self.labels[i]} score {scores[i]:.4g} >= threshold {self.thresholds[i]:g} "
                f"but < min_confidence {floor:g}"
            )
            return None, float(scores[i]), (), why
        if not len(hits):
            return None, top[0][1], (), None  # no label present
        positive = tuple(self.labels[i] for i in hits)
        return positive[0], float(scores[hits[0]]), positive, None


def _expected(manifest: Manifest, n: int, width: int) -> npt.NDArray[np.float64] | str:
    try:
        with np.load(manifest.path("golden_outputs"), allow_pickle=False) as npz:
            scores = np.asarray(npz["scores"], dtype=np.float64)
    except (OSError, ValueError, KeyError) as exc:
        return f"golden: outputs must be an .npz holding 'scores' ({type(exc).__name__})"
    if scores.shape != (n, width):
        return f"golden: got {n} results of {width} labels, expected scores {scores.shape}"
    return scores


def golden_check(manifest: Manifest, results: Sequence[Result], cpu_family: str) -> list[str]:
    """Each result's top-k scores within ``max_abs_diff`` of the expected scores of those
    labels, and the top-1 label agreeing with the expected one on at least
    ``min_label_agreement`` of the golden images."""
    rows = [r for r in results if isinstance(r, ImageClassification)]
    if not rows or len(rows) != len(results):
        return [f"golden: {len(results) - len(rows)} result(s) are not image classifications"]
    labels = tuple(manifest.postprocess["labels"])
    expected = _expected(manifest, len(rows), len(labels))
    if isinstance(expected, str):
        return [expected]
    column = {label: i for i, label in enumerate(labels)}
    tol, problems = golden_limits(manifest, results, cpu_family), []
    worst = max(
        abs(score - expected[row, column[label]])
        for row, r in enumerate(rows)
        for label, score in r.top
    )
    if not worst <= tol.max_abs_diff:
        problems.append(f"golden: max |score diff| {worst:.4g} > {tol.max_abs_diff}")
    if tol.min_label_agreement is not None:
        want = [labels[int(i)] for i in expected.argmax(axis=1)]
        agreement = sum(r.top[0][0] == w for r, w in zip(rows, want, strict=True)) / len(rows)
        if agreement < tol.min_label_agreement:
            problems.append(f"golden: top-1 agreement {agreement:.3f} < {tol.min_label_agreement}")
    return problems
