"""Stage 4 for signal classifiers: one window's per-class scores -> its label, or an abstention.

``scores`` says what the model's output holds: ``softmax`` (logits of competing classes),
``sigmoid`` (logits of independent classes; the best one is the label) or ``probabilities``
(refused unless within [0, 1]). The best label is withheld, with the reason, when its score is
under ``min_confidence``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ... import kernels
from ...errors import ManifestError, ModelError
from ...manifest import Manifest, parse_section
from ...results import Result, ResultBuilder, SignalClassification, deferred
from ..golden import golden_limits

__all__ = ["SignalPostprocess", "SignalPostprocessor", "golden_check"]

SCORES = ("softmax", "sigmoid", "probabilities")
_PROBABILITY_SLACK = 1e-4  # float rounding of a model's own softmax/sigmoid
_WHERE = "manifest.postprocess"


@dataclass(frozen=True, kw_only=True)
class SignalPostprocess:
    """The manifest's ``postprocess`` section for signal classifiers."""

    labels: list[Any]  # one per output column, in the model's order
    scores: str  # SCORES
    top_k: int  # 1..len(labels)
    min_confidence: float  # [0, 1]


def parse_postprocess(manifest: Manifest) -> tuple[SignalPostprocess, tuple[str, ...]]:
    """The section, checked against itself and the manifest's output tensor."""
    c = parse_section(SignalPostprocess, manifest.postprocess, _WHERE)
    labels = c.labels
    if not (isinstance(labels, list) and len(labels) >= 2):
        raise ManifestError(f"{_WHERE}.labels: expected a list of two or more names")
    if not all(isinstance(x, str) and x for x in labels) or len(set(labels)) != len(labels):
        raise ManifestError(f"{_WHERE}.labels: names must be non-empty and distinct")
    if c.scores not in SCORES:
        raise ManifestError(f"{_WHERE}.scores: {c.scores!r} is not one of {list(SCORES)}")
    if not 1 <= c.top_k <= len(labels):
        raise ManifestError(f"{_WHERE}.top_k: must be 1..{len(labels)} (the number of labels)")
    if not 0.0 <= c.min_confidence <= 1.0:
        raise ManifestError(f"{_WHERE}.min_confidence: must be in [0, 1]")
    spec = manifest.outputs[0]
    width = spec.shape[-1] if len(spec.shape) == 2 else None
    if spec.dtype not in ("float32", "float16") or not (
        isinstance(width, str) or width == len(labels)
    ):
        raise ManifestError(
            f"manifest.outputs[0]: a signal classifier outputs float32 [batch, {len(labels)}], "
            f"one score per label; manifest declares {spec.dtype} {list(spec.shape)}"
        )
    return c, tuple(labels)


class SignalPostprocessor:
    """One row of per-class scores -> :class:`SignalClassification`."""

    def __init__(self, manifest: Manifest) -> None:
        self.config, self.labels = parse_postprocess(manifest)
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
        if self.config.scores == "softmax":
            return kernels.softmax(row)
        if self.config.scores == "sigmoid":
            return kernels.sigmoid(row)
        if not (row.min() >= -_PROBABILITY_SLACK and row.max() <= 1 + _PROBABILITY_SLACK):
            raise ModelError(
                f"output {self._output!r}: scores {row.min():.4g}..{row.max():.4g} are not "
                "probabilities (the manifest says scores 'probabilities'; logits need "
                "'softmax' or 'sigmoid')"
            )
        return np.clip(row, 0.0, 1.0)

    def __call__(self, outputs: Mapping[str, npt.NDArray[Any]], context: object) -> ResultBuilder:
        values, index = kernels.topk(self.scores(outputs), self.config.top_k)
        top = tuple((self.labels[i], float(v)) for i, v in zip(index, values, strict=True))
        label, score = top[0]
        floor = self.config.min_confidence
        abstained = None
        if score < floor:
            label, abstained = None, f"top score {score:.4g} < min_confidence {floor:g}"
        return deferred(
            SignalClassification, label=label, score=score, top=top, abstained=abstained
        )


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
    ``min_label_agreement`` of the golden windows."""
    rows = [r for r in results if isinstance(r, SignalClassification)]
    if not rows or len(rows) != len(results):
        return [f"golden: {len(results) - len(rows)} result(s) are not signal classifications"]
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
