"""Results of tabular models: a class probability with its decision, or a regressed value;
for many rows at once (``Pipeline.table``), the same as columns with one provenance."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import digest
from .base import Provenance, Result, Timings, timings_summary

__all__ = [
    "TabularClassification",
    "TabularClassificationTable",
    "TabularRegression",
    "TabularRegressionTable",
    "TabularTable",
]


@dataclass(frozen=True, kw_only=True)
class TabularClassification:
    """A binary decision from one row of features.

    ``probability`` is the model's probability of ``positive_label`` (e.g. "malignant");
    ``label`` is ``positive_label`` when ``probability >= threshold``, else the other label.
    ``out_of_range`` names the features outside the range the model was trained on: the
    result is still computed, but the caller should treat it with extra caution.
    """

    label: str
    probability: float
    threshold: float
    labels: tuple[str, ...]
    positive_label: str
    out_of_range: tuple[str, ...]
    provenance: Provenance
    kind: str = "tabular-classification"

    def body(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "probability": round(self.probability, 6),
            "positive_label": self.positive_label,
            "threshold": self.threshold,
            "labels": list(self.labels),
            "out_of_range": list(self.out_of_range),
        }

    def summary(self) -> dict[str, Any]:
        return {
            **timings_summary(self.provenance),
            "label": self.label,
            f"p_{self.positive_label}": round(self.probability, 4),
            "threshold": self.threshold,
            "out_of_range": list(self.out_of_range),
        }


@dataclass(frozen=True, kw_only=True)
class TabularRegression:
    """A regressed value (``name`` in ``unit``) from one row of features; ``out_of_range``
    names the features outside the range the model was trained on."""

    value: float
    name: str
    unit: str
    out_of_range: tuple[str, ...]
    provenance: Provenance
    kind: str = "tabular-regression"

    def body(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "value": round(self.value, 6),
            "unit": self.unit,
            "out_of_range": list(self.out_of_range),
        }

    def summary(self) -> dict[str, Any]:
        return {
            **timings_summary(self.provenance),
            self.name: round(self.value, 3),
            "unit": self.unit,
            "out_of_range": list(self.out_of_range),
        }


def _row_provenance(table: _Table, digests: list[str]) -> list[Provenance]:
    """Each row's provenance: the table's, with that row's own input sha256 and kind and its
    share of the call's stage times (what ``Pipeline.batch`` gives each row)."""
    shared, n = table.provenance, max(len(digests), 1)
    t = shared.timings
    each = Timings(
        preprocess_ms=t.preprocess_ms / n,
        inference_ms=t.inference_ms / n,
        postprocess_ms=t.postprocess_ms / n,
    )
    return [replace(shared, input_sha256=d, input_kind="tabular", timings=each) for d in digests]


@dataclass(frozen=True, kw_only=True, eq=False)
class _Table:
    """What both tables share: the model's input table and one provenance for the call
    (``input_sha256`` of the whole float32 table, ``input_kind`` "tabular-table")."""

    inputs: npt.NDArray[np.float32]  # (rows, features) as the model ran it, manifest order
    out_of_range: Mapping[int, tuple[str, ...]]  # row index -> features outside the range
    provenance: Provenance

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def _row(self, i: int, provenance: Provenance) -> Result:
        raise NotImplementedError

    def results(self) -> list[Result]:
        """Each row as its own result, equal to what ``Pipeline.batch`` returns for the same
        rows but for the stage times and ``created_at``: its own input sha256, for the outbox
        and the fleet (the wire carries one result per row)."""
        provenances = _row_provenance(self, digest.rows_sha256(self.inputs))
        return [self._row(i, p) for i, p in enumerate(provenances)]

    def contract_rows(self) -> list[Result]:
        """The rows whose contract checks bound every row's, for that check only (they carry
        the table's provenance): those with the smallest and the largest value. A row's result
        differs from the others' only in its value (and the label it implies) and its range
        flags (feature names from the manifest), and the contract checks that value against a
        range (edgemed/contracts/bundled.py), so these two pass exactly when all rows do; a
        unit test holds the two to agree."""
        values = self._values()
        low, high = int(values.argmin()), int(values.argmax())
        picks = (low,) if low == high else (min(low, high), max(low, high))
        return [self._row(i, self.provenance) for i in picks]

    def _values(self) -> npt.NDArray[np.float64]:
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True, eq=False)
class TabularClassificationTable(_Table):
    """The decisions for many rows of features from one call (``Pipeline.table``), column by
    column: ``probability[i]`` is row i's probability of ``positive_label``, ``positive[i]``
    whether it reaches ``threshold``. :meth:`results` gives each row's
    :class:`TabularClassification`."""

    probability: npt.NDArray[np.float64]
    positive: npt.NDArray[np.bool_]
    threshold: float
    labels: tuple[str, ...]
    positive_label: str
    kind: str = "tabular-classification-table"

    @property
    def negative_label(self) -> str:
        """The other label: that of rows below ``threshold``."""
        return self.labels[1] if self.labels[0] == self.positive_label else self.labels[0]

    @property
    def label(self) -> list[str]:
        """Each row's label."""
        yes, no = self.positive_label, self.negative_label
        return [yes if p else no for p in self.positive.tolist()]

    def _values(self) -> npt.NDArray[np.float64]:
        return self.probability

    def _row(self, i: int, provenance: Provenance) -> Result:
        return TabularClassification(
            label=self.positive_label if self.positive[i] else self.negative_label,
            probability=float(self.probability[i]),
            threshold=self.threshold,
            labels=self.labels,
            positive_label=self.positive_label,
            out_of_range=self.out_of_range.get(i, ()),
            provenance=provenance,
        )


@dataclass(frozen=True, kw_only=True, eq=False)
class TabularRegressionTable(_Table):
    """The regressed values (``name`` in ``unit``) for many rows of features from one call
    (``Pipeline.table``); :meth:`results` gives each row's :class:`TabularRegression`."""

    value: npt.NDArray[np.float64]
    name: str
    unit: str
    kind: str = "tabular-regression-table"

    def _values(self) -> npt.NDArray[np.float64]:
        return self.value

    def _row(self, i: int, provenance: Provenance) -> Result:
        return TabularRegression(
            value=float(self.value[i]),
            name=self.name,
            unit=self.unit,
            out_of_range=self.out_of_range.get(i, ()),
            provenance=provenance,
        )


TabularTable = TabularClassificationTable | TabularRegressionTable
