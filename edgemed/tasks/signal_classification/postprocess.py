"""Stage 4 for signal classifiers: one window's per-class scores -> its label, or an abstention.

``scores`` says what the model's output holds: ``softmax`` (logits of competing classes),
``sigmoid`` (logits of independent classes; the best one is the label) or ``probabilities``
(refused unless within [0, 1]). The best label is withheld, with the reason, when its score is
under ``min_confidence``. The section's keys and the scores are the classifiers' shared ones
(``edgemed/tasks/class_scores.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy.typing as npt

from ...manifest import Manifest, parse_section
from ...results import Result, ResultBuilder, SignalClassification, deferred
from .. import class_scores
from ..class_scores import (
    ScoresSection,
    best_or_abstain,
    check_output,
    check_section,
    final_scores,
    top_labels,
)

__all__ = ["SignalPostprocessor", "golden_check"]

_WHERE = "manifest.postprocess"


def parse_postprocess(manifest: Manifest) -> tuple[ScoresSection, tuple[str, ...]]:
    """The section, checked against itself and the manifest's output tensor."""
    c = parse_section(ScoresSection, manifest.postprocess, _WHERE)
    labels = check_section(c)
    check_output(manifest, len(labels), "a signal classifier")
    return c, labels


class SignalPostprocessor:
    """One row of per-class scores -> :class:`SignalClassification`."""

    def __init__(self, manifest: Manifest) -> None:
        self.config, self.labels = parse_postprocess(manifest)
        self._output = manifest.outputs[0].name

    def __call__(self, outputs: Mapping[str, npt.NDArray[Any]], context: object) -> ResultBuilder:
        scores = final_scores(outputs, self._output, len(self.labels), self.config.scores)
        top = top_labels(scores, self.labels, self.config.top_k)
        label, score, abstained = best_or_abstain(top, self.config.min_confidence)
        return deferred(
            SignalClassification, label=label, score=score, top=top, abstained=abstained
        )


def golden_check(manifest: Manifest, results: Sequence[Result], cpu_family: str) -> list[str]:
    """Each result's top-k scores within ``max_abs_diff`` of the expected scores of those
    labels, and the top-1 label agreeing with the expected one on at least
    ``min_label_agreement`` of the golden windows (``class_scores.golden_check``)."""
    return class_scores.golden_check(
        manifest, results, cpu_family, SignalClassification, "signal classifications"
    )
