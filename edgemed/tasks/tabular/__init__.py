"""Tasks ``tabular-classification`` and ``tabular-regression``: one row of named clinical
features -> a calibrated probability, or a value with its unit. The two share the row's
preprocessing (``preprocess``: names, units, ranges) and differ only in their outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...manifest import Manifest
from ...results import Result
from ..spec import OpenModel, Postprocessor, Preprocessor, TaskSpec
from . import build

__all__ = ["CLASSIFICATION", "REGRESSION", "SPECS"]


def _classification(
    manifest: Manifest, open_model: OpenModel
) -> tuple[Preprocessor, Postprocessor]:
    from .postprocess import ClassificationPostprocessor
    from .preprocess import TabularPreprocessor

    return TabularPreprocessor(manifest), ClassificationPostprocessor(manifest)


def _regression(manifest: Manifest, open_model: OpenModel) -> tuple[Preprocessor, Postprocessor]:
    from .postprocess import RegressionPostprocessor
    from .preprocess import TabularPreprocessor

    return TabularPreprocessor(manifest), RegressionPostprocessor(manifest)


def _golden_inputs(manifest: Manifest) -> list[object]:
    from .preprocess import golden_inputs

    return golden_inputs(manifest)


def _check_classification(
    manifest: Manifest, results: Sequence[Result], cpu_family: str
) -> list[str]:
    from .postprocess import golden_check_classification

    return golden_check_classification(manifest, results, cpu_family)


def _check_regression(manifest: Manifest, results: Sequence[Result], cpu_family: str) -> list[str]:
    from .postprocess import golden_check_regression

    return golden_check_regression(manifest, results, cpu_family)


def _input_contract(m: Manifest) -> dict[str, Any]:
    features = [
        {key: f.get(key) for key in ("name", "unit", "min", "max")}
        for f in m.preprocess["features"]
    ]
    return {
        "kind": "tabular",
        "features": features,
        "range_source": m.preprocess.get("range_source"),
    }


CLASSIFICATION = TaskSpec(
    name="tabular-classification",
    processors=_classification,
    golden_inputs=_golden_inputs,
    golden_check=_check_classification,
    input_contract=_input_contract,
    build=build.CLASSIFICATION,
)
REGRESSION = TaskSpec(
    name="tabular-regression",
    processors=_regression,
    golden_inputs=_golden_inputs,
    golden_check=_check_regression,
    input_contract=_input_contract,
    build=build.REGRESSION,
)
SPECS = (CLASSIFICATION, REGRESSION)
