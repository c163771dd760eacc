"""What ``edgemed bundle build`` needs to build tabular models (``BuildSupport``).

Folders hold ``.csv`` files (UTF-8, a header row, read in sorted file order): every feature of
the manifest's ``preprocess.features`` by name, in any order, plus for evaluation a ``label``
column (classification: one of ``postprocess.labels``) or a ``target`` column (regression: a
number). Other columns are refused (a misspelt feature must not pass silently).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ...errors import BuildError
from ...manifest import Manifest
from ...results import Result, TabularClassification, TabularRegression
from ..label_build import LabelResults
from ..spec import BuildSupport

__all__ = ["CLASSIFICATION", "REGRESSION"]

TRUTH = {"tabular-classification": "label", "tabular-regression": "target"}


def _names(manifest: Manifest) -> list[str]:
    return [str(f["name"]) for f in manifest.preprocess["features"]]


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BuildError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise BuildError(f"{where}: {text!r} is not finite")
    return value


def _csv_rows(
    folder: Path, wanted: set[str] | None = None
) -> list[tuple[str, int, dict[str, str]]]:
    """(file name, line number, row) of every .csv below ``folder``, in sorted order; each
    file's header must be exactly ``wanted`` when given."""
    if not folder.is_dir():
        raise BuildError(f"{folder}: no such folder")
    rows = []
    for path in sorted(folder.rglob("*.csv")):
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            header = set(reader.fieldnames or ())
            if wanted is not None and header != wanted:
                raise BuildError(
                    f"{path.name}: columns {sorted(header ^ wanted)} differ from what the model "
                    "needs: each of its features, and the label or target column"
                )
            for line, row in enumerate(reader, start=2):
                if None in row or None in row.values():
                    raise BuildError(f"{path.name} line {line}: not as many values as columns")
                rows.append((path.name, line, row))
    return rows


def _features(name: str, line: int, row: dict[str, str], skip: set[str]) -> dict[str, float]:
    return {k: _number(v, f"{name} line {line} {k}") for k, v in row.items() if k not in skip}


def read_calibration(folder: Path) -> list[object]:
    """Feature rows (a ``label`` or ``target`` column, if present, is ignored)."""
    skip = set(TRUTH.values())
    return [_features(n, line, row, skip) for n, line, row in _csv_rows(folder)]


def _read_evaluation(folder: Path, manifest: Manifest, truth: str) -> list[tuple[object, Any]]:
    wanted = {*_names(manifest), truth}
    labels = set(manifest.postprocess.get("labels", ()))
    out: list[tuple[object, Any]] = []
    for name, line, row in _csv_rows(folder, wanted):
        value: Any = row[truth]
        if truth == "target":
            value = _number(value, f"{name} line {line} target")
        elif value not in labels:
            raise BuildError(f"{name} line {line}: label {value!r} is not one of {sorted(labels)}")
        out.append((_features(name, line, row, {truth}), value))
    return out


def _labelled(folder: Path, manifest: Manifest) -> list[tuple[object, Any]]:
    return _read_evaluation(folder, manifest, "label")


def _targets(folder: Path, manifest: Manifest) -> list[tuple[object, Any]]:
    return _read_evaluation(folder, manifest, "target")


def _cls(result: Result) -> TabularClassification:
    if not isinstance(result, TabularClassification):
        raise BuildError(f"expected a tabular classification, got {type(result).__name__}")
    return result


def _reg(result: Result) -> TabularRegression:
    if not isinstance(result, TabularRegression):
        raise BuildError(f"expected a tabular regression, got {type(result).__name__}")
    return result


def _distance(result: Result) -> float:
    """How far a row's probability lies from the threshold: golden rows are the farthest of
    each label in turn, never a row on the fence."""
    row = _cls(result)
    return abs(row.probability - row.threshold)


_LABELS = LabelResults(label=lambda result: _cls(result).label, margin=_distance)


def _close_values(fp32: Sequence[Result], int8: Sequence[Result]) -> float:
    """Share of rows whose INT8 value is within 1 % of the FP32 value's spread over the set."""
    a = np.array([_reg(r).value for r in fp32])
    b = np.array([_reg(r).value for r in int8])
    tolerance = 0.01 * max(float(np.ptp(a)), 1e-12)
    return float(np.mean(np.abs(a - b) <= tolerance))


def _r2(results: Sequence[Result], truths: Sequence[Any]) -> float:
    """Coefficient of determination (1 - SSres/SStot) of the values against the targets."""
    got = np.array([_reg(r).value for r in results])
    want = np.asarray(truths, dtype=np.float64)
    total = float(((want - want.mean()) ** 2).sum())
    return 1.0 - float(((want - got) ** 2).sum()) / total if total > 0 else 0.0


def _spread(results: Sequence[Result]) -> list[int]:
    """Rows spread over the range of values: the lowest, the highest, the median, then the
    quartiles, the octiles... (so that a few golden rows cover the whole range)."""
    ranked = np.argsort(np.array([_reg(r).value for r in results]), kind="stable")
    n, order, seen, level = len(ranked), [], set(), 0
    while (1 << level) <= 2 * n:
        fractions = (
            [0.0, 1.0] if level == 0 else [j / (1 << level) for j in range(1, 1 << level, 2)]
        )
        for fraction in fractions:
            position = round(fraction * (n - 1))
            if position not in seen:
                seen.add(position)
                order.append(int(ranked[position]))
        level += 1
    return order + [int(i) for p, i in enumerate(ranked) if p not in seen]


def _golden_arrays(
    manifest: Manifest, inputs: Sequence[object], results: Sequence[Result]
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, npt.NDArray[Any]]]:
    """``rows`` (N, features) in the manifest's order; ``expected``: probabilities or values."""
    names = _names(manifest)
    rows = np.array([[float(row[n]) for n in names] for row in inputs], dtype=np.float64)  # type: ignore[index]
    expected = [
        r.probability if isinstance(r, TabularClassification) else _reg(r).value for r in results
    ]
    return {"rows": rows}, {"expected": np.array(expected, dtype=np.float64)}


def _regression_tolerance(precision: str, results: Sequence[Result]) -> dict[str, float]:
    """FP32: rounding across CPUs, relative to the values' size; INT8: 1 % of their spread."""
    values = np.array([_reg(r).value for r in results])
    scale = max(float(np.abs(values).max()), 1.0)
    if precision == "fp32":
        return {"max_abs_diff": max(1e-3, 1e-5 * scale)}
    return {"max_abs_diff": 0.01 * max(float(np.ptp(values)), 1e-6)}


CLASSIFICATION = BuildSupport(
    read_calibration=read_calibration,
    read_evaluation=_labelled,
    agreement=_LABELS.agreement,
    golden_order=_LABELS.golden_order,
    metric_name="accuracy",
    metric=_LABELS.accuracy,
    golden_arrays=_golden_arrays,
)
REGRESSION = BuildSupport(
    read_calibration=read_calibration,
    read_evaluation=_targets,
    agreement=_close_values,
    golden_order=_spread,
    golden_choice="spread over the range of predicted values (the lowest, the highest, the median, then the quartiles...)",
    metric_name="r2",
    metric=_r2,
    golden_arrays=_golden_arrays,
    golden_tolerance=_regression_tolerance,
)
