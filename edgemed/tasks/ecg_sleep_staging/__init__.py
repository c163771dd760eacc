"""Task ``ecg-sleep-staging``: one ECG lead overnight -> a sleep stage per 30 s epoch, with
epochs whose signal is unusable withheld and said why.

Parts: ``quality`` (unit and plausibility of the lead), ``hrv`` (beat-interval features),
``preprocess`` (recording -> feature tensor), ``postprocess`` (stages, golden check).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...manifest import Manifest
from ...results import Result
from ..spec import CliInput, OpenModel, Postprocessor, Preprocessor, TaskSpec

__all__ = ["SPEC"]


def _processors(manifest: Manifest, open_model: OpenModel) -> tuple[Preprocessor, Postprocessor]:
    from .postprocess import SleepStagePostprocessor
    from .preprocess import SleepFeaturePreprocessor

    return SleepFeaturePreprocessor(manifest), SleepStagePostprocessor(manifest)


def _golden_inputs(manifest: Manifest) -> list[object]:
    from .preprocess import golden_inputs

    return golden_inputs(manifest)


def _golden_check(manifest: Manifest, results: Sequence[Result], cpu_family: str) -> list[str]:
    from .postprocess import golden_check

    return golden_check(manifest, results, cpu_family)


def _from_signal(signal: Any) -> object:
    """A signal file's one chosen lead -> this task's input (the file's unit where it has one)."""
    item: dict[str, Any] = {"ecg": signal.data[0], "fs": signal.sampling_rate_hz}
    if signal.units[0]:  # the file's own unit (EDF, WFDB, DICOM headers)
        item["units"] = signal.units[0]
    return item


def _input_contract(m: Manifest) -> dict[str, Any]:
    pre = m.preprocess
    return {
        "kind": "signal",
        "signal": "ECG, one lead",
        "channels": 1,
        "sampling_rate_hz": None,  # any rate in the range: only beat times are used
        "sampling_rate_range_hz": [pre["min_fs_hz"], pre["max_fs_hz"]],
        "units": "any (only beat timing is used)",
        "min_duration_s": pre["epoch_seconds"],
        "max_duration_s": pre["max_hours"] * 3600.0,
        "epoch_s": pre["epoch_seconds"],
        "optional": ["start_time", "age", "gender"],
    }


SPEC = TaskSpec(
    name="ecg-sleep-staging",
    processors=_processors,
    golden_inputs=_golden_inputs,
    golden_check=_golden_check,
    input_contract=_input_contract,
    cli_input=CliInput(from_signal=_from_signal),
)
