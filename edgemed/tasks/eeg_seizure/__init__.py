"""Task ``eeg-seizure``: one channel of (i)EEG, streamed in windows -> seizure probability per
second, with flat (disconnected) stretches refused rather than scored.

Parts: ``preprocess`` (z-score, spectrogram features), ``postprocess`` (probabilities, episodes,
golden check).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...manifest import Manifest
from ...results import Result
from ..spec import OpenModel, Postprocessor, Preprocessor, TaskSpec

__all__ = ["SPEC"]


def _processors(manifest: Manifest, open_model: OpenModel) -> tuple[Preprocessor, Postprocessor]:
    from .postprocess import SeizurePostprocessor
    from .preprocess import EEGSeizurePreprocessor

    return EEGSeizurePreprocessor(manifest), SeizurePostprocessor(manifest)


def _golden_inputs(manifest: Manifest) -> list[object]:
    from .preprocess import golden_inputs

    return golden_inputs(manifest)


def _golden_check(manifest: Manifest, results: Sequence[Result], cpu_family: str) -> list[str]:
    from .postprocess import golden_check

    return golden_check(manifest, results, cpu_family)


def _input_contract(m: Manifest) -> dict[str, Any]:
    stream = m.stream
    if stream is None:
        return {"kind": "signal", "preprocess": dict(m.preprocess)}
    rate = stream.sampling_rate_hz
    low, high = stream.min_sampling_rate_hz or rate, stream.max_sampling_rate_hz or rate
    return {
        "kind": "signal",
        "signal": "iEEG/EEG, one channel",
        "channels": stream.channels,
        "sampling_rate_hz": rate,  # other rates in the range are resampled to this one
        "sampling_rate_range_hz": [low, high],
        "units": "any (each window is z-scored)",
        "window_s": stream.samples / rate,
        "window_samples": stream.samples,
        "hop_s": stream.hop / rate,
    }


SPEC = TaskSpec(
    name="eeg-seizure",
    processors=_processors,
    golden_inputs=_golden_inputs,
    golden_check=_golden_check,
    input_contract=_input_contract,
)
