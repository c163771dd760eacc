"""Stage 4 for image classifiers: per-class scores -> the label(s), or an abstention.

Scores are the model's outputs through ``softmax`` or ``sigmoid`` (logits), or as they are
(``probabilities``: refused unless within [0, 1]). Single-label: the best label, withheld
when its score is under ``min_confidence``. Multi-label: every label at or above its
threshold (``thresholds``, 0.5 where a label has none), withheld when one of those is under
``min_confidence``: such a label is flagged but not confidently, and a label scored below
``min_confidence`` is never reported. A multi-label result's ``top`` holds at least every label
at or over its threshold (more than ``top_k`` where more are), so each has its score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ...errors import ManifestError
from ...manifest import Manifest, parse_section
from ...results import ImageClassification, Result, ResultBuilder, deferred
from .. import class_scores
from ..class_scores import best_or_abstain, check_output, check_section, final_scores, top_labels

__all__ = ["ImagePostprocess", "ImagePostprocessor", "golden_check"]

DEFAULT_THRESHOLD = 0.5
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
    labels = check_section(c, c.multi_label)
    if not isinstance(c.thresholds, dict):
        raise ManifestError(f"{_WHERE}.thresholds: expected an object label -> threshold")
    if c.thresholds and not c.multi_label:
        raise ManifestError(f"{_WHERE}.thresholds: only for multi_label classifiers")
    for name, value in c.thresholds.items():
        if name not in labels:
            raise ManifestError(f"{_WHERE}.thresholds.{name}: not one of the labels")
        if not _unit(value):
            raise ManifestError(f"{_WHERE}.thresholds.{name}: must be in [0, 1]")
    check_output(manifest, len(labels), "an image classifier")
    return c, labels


class ImagePostprocessor:
    """One row of per-class scores -> :class:`ImageClassification`."""

    def __init__(self, manifest: Manifest) -> None:
        self.config, self.labels = parse_postprocess(manifest)
        given = self.config.thresholds
        self.thresholds = np.array(
            [float(given.get(label, DEFAULT_THRESHOLD)) for label in self.labels], np.float32
        )
        self._output = manifest.outputs[0].name

    def __call__(self, outputs: Mapping[str, npt.NDArray[Any]], context: object) -> ResultBuilder:
        scores = final_scores(outputs, self._output, len(self.labels), self.config.scores)
        k = self.config.top_k
        if self.config.multi_label:  # every label at or over its threshold, with its score
            k = max(k, int(np.count_nonzero(scores >= self.thresholds)))
        top = top_labels(scores, self.labels, k)
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
        label, score, abstained = best_or_abstain(top, self.config.min_confidence)
        return label, score, () if label is None else (label,), abstained

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


def golden_check(manifest: Manifest, results: Sequence[Result], cpu_family: str) -> list[str]:
    """Each result's top-k scores within ``max_abs_diff`` of the expected scores of those
    labels, and the top-1 label agreeing with the expected one on at least
    ``min_label_agreement`` of the golden images (``class_scores.golden_check``)."""
    return class_scores.golden_check(
        manifest, results, cpu_family, ImageClassification, "image classifications"
    )
