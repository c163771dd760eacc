"""Per-class scores shared by the classifiers: the ``postprocess`` keys they have in common,
the model's output row -> final scores, the best label or an abstention, and the golden check.

``labels`` name the output's columns, in the model's order. ``scores`` says what the output
holds: ``softmax`` (logits of competing classes), ``sigmoid`` (logits of independent classes)
or ``probabilities`` (refused unless within [0, 1]). ``top_k``: how many (label, score) pairs
a result carries, best first. ``min_confidence``: the best label is withheld, with the reason,
when its score is under it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from .. import kernels
from ..errors import ManifestError, ModelError
from ..manifest import Manifest
from ..results import Result
from .golden import golden_limits

__all__ = [
    "SCORES",
    "ScoresSection",
    "best_or_abstain",
    "check_output",
    "check_section",
    "final_scores",
    "golden_check",
    "golden_scores",
    "top_labels",
]

SCORES = ("softmax", "sigmoid", "probabilities")
_PROBABILITY_SLACK = 1e-4  # float rounding of a model's own softmax/sigmoid
_WHERE = "manifest.postprocess"

Top = tuple[tuple[str, float], ...]  # (label, score) pairs, best first


class _Section(Protocol):
    @property
    def labels(self) -> Any: ...
    @property
    def scores(self) -> str: ...
    @property
    def top_k(self) -> int: ...
    @property
    def min_confidence(self) -> float: ...


class _Classified(Protocol):
    @property
    def top(self) -> Top: ...


@dataclass(frozen=True, kw_only=True)
class ScoresSection:
    """A single-label classifier's ``postprocess`` section: the common keys alone."""

    labels: list[Any]  # one per output column, in the model's order
    scores: str  # SCORES
    top_k: int  # 1..len(labels)
    min_confidence: float  # [0, 1]


def check_section(c: _Section, multi_label: bool = False) -> tuple[str, ...]:
    """The common keys of a parsed section, checked (ManifestError naming the key); the
    labels. A single-label classifier needs two labels or more; a multi-label one's scores
    cannot be a softmax (it makes the labels compete)."""
    labels = c.labels
    if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)):
        raise ManifestError(f"{_WHERE}.labels: expected a non-empty list of names")
    if not all(labels) or len(set(labels)) != len(labels):
        raise ManifestError(f"{_WHERE}.labels: names must be non-empty and distinct")
    if c.scores not in SCORES:
        raise ManifestError(f"{_WHERE}.scores: {c.scores!r} is not one of {list(SCORES)}")
    if multi_label and c.scores == "softmax":
        raise ManifestError(
            f"{_WHERE}.scores: softmax makes the labels compete; multi-label scores are "
            "'sigmoid' or 'probabilities'"
        )
    if not multi_label and len(labels) < 2:
        raise ManifestError(f"{_WHERE}.labels: a single-label classifier needs two or more")
    if not 1 <= c.top_k <= len(labels):
        raise ManifestError(f"{_WHERE}.top_k: must be 1..{len(labels)} (the number of labels)")
    if not 0.0 <= c.min_confidence <= 1.0:
        raise ManifestError(f"{_WHERE}.min_confidence: must be in [0, 1]")
    return tuple(labels)


def check_output(manifest: Manifest, n: int, model: str) -> None:
    """The manifest's output: float [batch, n], one score per label (``model``: "an image
    classifier", for the error)."""
    spec = manifest.outputs[0]
    width = spec.shape[-1] if len(spec.shape) == 2 else None
    if spec.dtype not in ("float32", "float16") or not (isinstance(width, str) or width == n):
        raise ManifestError(
            f"manifest.outputs[0]: {model} outputs float32 [batch, {n}], one score "
            f"per label; manifest declares {spec.dtype} {list(spec.shape)}"
        )


def final_scores(
    outputs: Mapping[str, npt.NDArray[Any]], output: str, n: int, scores: str
) -> npt.NDArray[np.float32]:
    """The final per-class scores (n,) in [0, 1] of the model's output named ``output``,
    through ``scores`` (SCORES); ModelError where that output does not fit the manifest."""
    out = outputs.get(output)
    if out is None:
        raise ModelError(f"the model gave no output {output!r} (got {sorted(outputs)})")
    if out.ndim not in (1, 2) or out.size != n or out.shape[-1] != n:
        raise ModelError(
            f"output {output!r}: expected [1, {n}] scores (one per label), got shape {out.shape}"
        )
    row = np.ascontiguousarray(out.reshape(n), dtype=np.float32)
    if scores == "softmax":
        return kernels.softmax(row)
    if scores == "sigmoid":
        return kernels.sigmoid(row)
    if not (row.min() >= -_PROBABILITY_SLACK and row.max() <= 1 + _PROBABILITY_SLACK):
        raise ModelError(
            f"output {output!r}: scores {row.min():.4g}..{row.max():.4g} are not "
            "probabilities (the manifest says scores 'probabilities'; logits need "
            "'softmax' or 'sigmoid')"
        )
    return np.clip(row, 0.0, 1.0)


def top_labels(scores: npt.NDArray[np.float32], labels: Sequence[str], k: int) -> Top:
    """The ``k`` best (label, score) pairs, best first."""
    values, index = kernels.topk(scores, k)
    return tuple((labels[i], float(v)) for i, v in zip(index, values, strict=True))


def best_or_abstain(top: Top, min_confidence: float) -> tuple[str | None, float, str | None]:
    """(the best label, its score, None), or (None, its score, why) when that score is
    under ``min_confidence``."""
    label, score = top[0]
    if score < min_confidence:
        return None, score, f"top score {score:.4g} < min_confidence {min_confidence:g}"
    return label, score, None


def golden_scores(manifest: Manifest, tops: Sequence[Top]) -> npt.NDArray[np.float32]:
    """The golden outputs' ``scores`` (N, labels in the manifest's order): each result's top-k
    scores in their labels' columns (what ``golden_check`` compares); columns outside a
    result's top-k are not recorded (0), so its top-1 is still the row's largest."""
    column = {label: i for i, label in enumerate(manifest.postprocess["labels"])}
    scores = np.zeros((len(tops), len(column)), np.float32)
    for row, top in enumerate(tops):
        for label, score in top:
            scores[row, column[label]] = score
    return scores


def _expected(manifest: Manifest, n: int, width: int) -> npt.NDArray[np.float64] | str:
    try:
        with np.load(manifest.path("golden_outputs"), allow_pickle=False) as npz:
            scores = np.asarray(npz["scores"], dtype=np.float64)
    except (OSError, ValueError, KeyError) as exc:
        return f"golden: outputs must be an .npz holding 'scores' ({type(exc).__name__})"
    if scores.shape != (n, width):
        return f"golden: got {n} results of {width} labels, expected scores {scores.shape}"
    return scores


def golden_check(
    manifest: Manifest, results: Sequence[Result], cpu_family: str, kind: type, noun: str
) -> list[str]:
    """Each result (of type ``kind``, ``noun`` in the error otherwise: "image
    classifications") has its top-k scores within ``max_abs_diff`` of the expected scores of
    those labels, and its top-1 label agrees with the expected one on at least
    ``min_label_agreement`` of the golden inputs."""
    rows = [cast(_Classified, r) for r in results if isinstance(r, kind)]
    if not rows or len(rows) != len(results):
        return [f"golden: {len(results) - len(rows)} result(s) are not {noun}"]
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
