"""What serves each manifest task: its processors and its golden-vector check (a composition root).

A preprocessor is built from the manifest and maps one caller input to a
:class:`~edgemed.preprocess.Prepared`; a postprocessor maps the backend's outputs and the
prepared input's ``context`` to a :class:`~edgemed.results.ResultBuilder` (the result, waiting
for its provenance). ``golden_inputs`` reads the bundle's golden inputs as caller inputs and
``golden_check`` compares the results on them with the bundle's expected outputs, returning
one line per problem (none: the model may serve).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy.typing as npt

from ._version import __version__
from .errors import ManifestError
from .manifest import Manifest
from .preprocess import Prepared
from .results import Result, ResultBuilder

__all__ = ["Postprocessor", "Preprocessor", "TaskSpec", "task_spec"]


class Preprocessor(Protocol):
    def __call__(self, item: object) -> Prepared: ...


class Postprocessor(Protocol):
    def __call__(self, outputs: Mapping[str, npt.NDArray[Any]], context: Any) -> ResultBuilder: ...


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    processors: Callable[[Manifest], tuple[Preprocessor, Postprocessor]]
    golden_inputs: Callable[[Manifest], list[object]]
    golden_check: Callable[[Manifest, Sequence[Result]], list[str]]


@dataclass(frozen=True)
class _Wiring:
    """Where a task's parts live: ``module:attribute`` below edgemed.preprocess/postprocess."""

    preprocessor: str
    postprocessor: str
    golden_inputs: str
    golden_check: str


# Task -> its parts, imported only when a model of that task is loaded.
_TASKS: dict[str, _Wiring] = {
    "text-embedding": _Wiring(
        "text:TextPreprocessor",
        "text:EmbeddingPostprocessor",
        "text:golden_inputs",
        "text:golden_check",
    ),
    "ecg-sleep-staging": _Wiring(
        "ecg:SleepFeaturePreprocessor",
        "sleep:SleepStagePostprocessor",
        "ecg:golden_inputs",
        "sleep:golden_check",
    ),
    "monitor-reader": _Wiring(
        "image:DetectorPreprocessor",
        "monitor:MonitorPostprocessor",
        "image:golden_inputs",
        "monitor:golden_check",
    ),
    "eeg-seizure": _Wiring(
        "eeg:EEGSeizurePreprocessor",
        "eeg:SeizurePostprocessor",
        "eeg:golden_inputs",
        "eeg:golden_check",
    ),
    "tabular-classification": _Wiring(
        "tabular:TabularPreprocessor",
        "tabular:ClassificationPostprocessor",
        "tabular:golden_inputs",
        "tabular:golden_check_classification",
    ),
    "tabular-regression": _Wiring(
        "tabular:TabularPreprocessor",
        "tabular:RegressionPostprocessor",
        "tabular:golden_inputs",
        "tabular:golden_check_regression",
    ),
}


def _part(stage: str, where: str) -> Any:
    module, _, name = where.partition(":")
    return getattr(importlib.import_module(f"edgemed.{stage}.{module}"), name)


def task_spec(manifest: Manifest) -> TaskSpec:
    try:
        wiring = _TASKS[manifest.task]
    except KeyError:
        raise ManifestError(
            f"{manifest.id}: task {manifest.task!r} is not supported by edgemed "
            f"{__version__}; supported: {sorted(_TASKS)}"
        ) from None
    pre, post = _part("preprocess", wiring.preprocessor), _part("postprocess", wiring.postprocessor)
    return TaskSpec(
        processors=lambda m: (pre(m), post(m)),
        golden_inputs=_part("preprocess", wiring.golden_inputs),
        golden_check=_part("postprocess", wiring.golden_check),
    )
