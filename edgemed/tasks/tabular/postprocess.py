"""Stage 4 for tabular models: a probability -> label, or a regressed value with its unit."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from ...errors import ManifestError, ModelError
from ...manifest import Manifest, parse_section
from ...results import (
    Result,
    ResultBuilder,
    TabularClassification,
    TabularClassificationTable,
    TabularRegression,
    TabularRegressionTable,
    TabularTable,
    deferred,
)
from ..golden import golden_limits
from .preprocess import TableContext, TabularContext

__all__ = [
    "ClassificationPostprocess",
    "ClassificationPostprocessor",
    "RegressionPostprocess",
    "RegressionPostprocessor",
    "golden_check_classification",
    "golden_check_regression",
]


@dataclass(frozen=True, kw_only=True)
class ClassificationPostprocess:
    """The manifest's ``postprocess`` section for binary tabular classifiers.

    The model outputs the probability of ``positive_label``, one of the two ``labels``."""

    labels: list[Any]
    positive_label: str
    threshold: float


@dataclass(frozen=True, kw_only=True)
class RegressionPostprocess:
    """The manifest's ``postprocess`` section for tabular regressors."""

    name: str
    unit: str


def _scalar(outputs: Mapping[str, npt.NDArray[Any]], name: str) -> float:
    out = outputs[name]
    if out.size != 1:
        raise ModelError(f"output {name!r}: expected one value per row, got shape {out.shape}")
    value = float(out.reshape(-1)[0])
    if not math.isfinite(value):
        raise ModelError(f"output {name!r} is not finite ({value})")
    return value


def _column(
    outputs: Mapping[str, npt.NDArray[Any]], name: str, rows: int
) -> npt.NDArray[np.float64]:
    out = outputs[name]
    if out.size != rows:
        raise ModelError(f"output {name!r}: expected one value per row, got shape {out.shape}")
    column: npt.NDArray[np.float64] = out.reshape(-1).astype(np.float64)
    return column


TableBuilder = Callable[..., TabularTable]


class ClassificationPostprocessor:
    """Probability of the positive label -> label by the manifest threshold."""

    def __init__(self, manifest: Manifest) -> None:
        where = "manifest.postprocess"
        config = parse_section(ClassificationPostprocess, manifest.postprocess, where)
        labels = config.labels
        if (
            not isinstance(labels, list)
            or len(labels) != 2
            or not all(isinstance(label, str) and label for label in labels)
            or labels[0] == labels[1]
        ):
            raise ManifestError(f"{where}.labels: expected two distinct non-empty strings")
        if config.positive_label not in labels:
            raise ManifestError(f"{where}.positive_label: {config.positive_label!r} not in labels")
        if not 0.0 < config.threshold < 1.0:
            raise ManifestError(f"{where}.threshold: must be in (0, 1)")
        self.labels: tuple[str, ...] = tuple(labels)
        self.positive = config.positive_label
        self.negative = next(label for label in labels if label != config.positive_label)
        self.threshold = float(config.threshold)
        self._output = manifest.outputs[0].name

    def __call__(
        self, outputs: Mapping[str, npt.NDArray[Any]], context: TabularContext
    ) -> ResultBuilder:
        p = _scalar(outputs, self._output)
        return deferred(
            TabularClassification,
            label=self.positive if p >= self.threshold else self.negative,
            probability=p,
            threshold=self.threshold,
            labels=self.labels,
            positive_label=self.positive,
            out_of_range=context.out_of_range,
        )

    def table(self, outputs: Mapping[str, npt.NDArray[Any]], context: TableContext) -> TableBuilder:
        """A whole table's decisions (``Pipeline.table``), waiting for its provenance."""
        p = _column(outputs, self._output, len(context.inputs))
        return partial(
            TabularClassificationTable,
            probability=p,
            positive=p >= self.threshold,
            threshold=self.threshold,
            labels=self.labels,
            positive_label=self.positive,
            inputs=context.inputs,
            out_of_range=context.out_of_range,
        )


class RegressionPostprocessor:
    """The model's single output, named and with its unit from the manifest."""

    def __init__(self, manifest: Manifest) -> None:
        config = parse_section(RegressionPostprocess, manifest.postprocess, "manifest.postprocess")
        self.name, self.unit = config.name, config.unit
        self._output = manifest.outputs[0].name

    def __call__(
        self, outputs: Mapping[str, npt.NDArray[Any]], context: TabularContext
    ) -> ResultBuilder:
        return deferred(
            TabularRegression,
            value=_scalar(outputs, self._output),
            name=self.name,
            unit=self.unit,
            out_of_range=context.out_of_range,
        )

    def table(self, outputs: Mapping[str, npt.NDArray[Any]], context: TableContext) -> TableBuilder:
        """A whole table's values (``Pipeline.table``), waiting for its provenance."""
        return partial(
            TabularRegressionTable,
            value=_column(outputs, self._output, len(context.inputs)),
            name=self.name,
            unit=self.unit,
            inputs=context.inputs,
            out_of_range=context.out_of_range,
        )


def _expected(manifest: Manifest, n: int) -> npt.NDArray[np.float64] | str:
    path = manifest.path("golden_outputs")
    if path.suffix == ".npz":  # made by `edgemed bundle build`
        with np.load(path, allow_pickle=False) as npz:
            loaded = npz["expected"]
    else:
        loaded = np.load(path, allow_pickle=False)
    expected: npt.NDArray[np.float64] = np.asarray(loaded, dtype=np.float64).reshape(-1)
    if expected.shape != (n,):
        return f"golden: got {n} results, expected {expected.shape[0]}"
    return expected


def golden_check_classification(
    manifest: Manifest, results: Sequence[Result], cpu_family: str
) -> list[str]:
    """Probabilities within ``max_abs_diff``; labels (expected = expected p >= threshold)
    agreeing on at least ``min_label_agreement`` of the golden rows."""
    rows = [r for r in results if isinstance(r, TabularClassification)]
    expected = _expected(manifest, len(rows))
    if isinstance(expected, str):
        return [expected]
    got = np.array([r.probability for r in rows])
    tol, problems = golden_limits(manifest, results, cpu_family), []
    worst = float(np.abs(got - expected).max())
    if worst > tol.max_abs_diff:
        problems.append(f"golden: max |probability diff| {worst:.4g} > {tol.max_abs_diff}")
    if tol.min_label_agreement is not None:
        want = expected >= np.array([r.threshold for r in rows])
        have = np.array([r.label == r.positive_label for r in rows])
        agreement = float((want == have).mean())
        if agreement < tol.min_label_agreement:
            problems.append(f"golden: label agreement {agreement:.3f} < {tol.min_label_agreement}")
    return problems


def golden_check_regression(
    manifest: Manifest, results: Sequence[Result], cpu_family: str
) -> list[str]:
    """Values within ``max_abs_diff`` (in the output's unit)."""
    rows = [r for r in results if isinstance(r, TabularRegression)]
    expected = _expected(manifest, len(rows))
    if isinstance(expected, str):
        return [expected]
    worst = float(np.abs(np.array([r.value for r in rows]) - expected).max())
    limit = golden_limits(manifest, results, cpu_family).max_abs_diff
    if worst > limit:
        return [f"golden: max |value diff| {worst:.4g} > {limit}"]
    return []
