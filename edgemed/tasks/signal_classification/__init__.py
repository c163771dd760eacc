"""Task ``signal-classification``: multi-lead signal windows -> a label per window with its
scores, configured entirely by the manifest (no code per model).

The manifest's ``stream`` section is the window (leads, samples, rate, hop, the rates accepted):
``Pipeline.stream`` cuts and resamples a continuous signal into such windows, and a single
window can be classified directly (``preprocess``: the input forms and their checks).
``preprocess`` also names the leads and their units, the per-window normalisation and the input
layout; ``postprocess`` turns the per-class scores into the best label, or an abstention saying
why (``min_confidence``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...manifest import Manifest
from ...results import Result
from ..spec import CliInput, OpenModel, Postprocessor, Preprocessor, TaskSpec
from .build import BUILD

__all__ = ["SPEC"]


def _processors(manifest: Manifest, open_model: OpenModel) -> tuple[Preprocessor, Postprocessor]:
    from .postprocess import SignalPostprocessor
    from .preprocess import SignalPreprocessor

    return SignalPreprocessor(manifest), SignalPostprocessor(manifest)


def _golden_inputs(manifest: Manifest) -> list[object]:
    from .preprocess import golden_inputs

    return golden_inputs(manifest)


def _golden_check(manifest: Manifest, results: Sequence[Result], cpu_family: str) -> list[str]:
    from .postprocess import golden_check

    return golden_check(manifest, results, cpu_family)


def _input_contract(m: Manifest) -> dict[str, Any]:
    pre, stream = m.preprocess, m.stream
    window: dict[str, Any] = {}
    if stream is not None:
        rate = stream.sampling_rate_hz
        low, high = stream.min_sampling_rate_hz or rate, stream.max_sampling_rate_hz or rate
        window = {
            "sampling_rate_hz": rate,  # other rates in the range are resampled to this one
            "sampling_rate_range_hz": [low, high],
            "window_samples": stream.samples,
            "window_s": stream.samples / rate,
            "hop_s": stream.hop / rate,
        }
    return {
        "kind": "signal",
        "leads": pre.get("leads"),
        "units": pre.get("units"),
        "dtype": "float (integer ADC counts are refused: convert to units first)",
        "single_window": "{'signal': (leads, samples), 'fs': Hz, 'units': optional} or a Signal",
        "normalize": pre.get("normalize"),
        **window,
        "labels": m.postprocess.get("labels"),
    }


SPEC = TaskSpec(
    name="signal-classification",
    processors=_processors,
    golden_inputs=_golden_inputs,
    golden_check=_golden_check,
    input_contract=_input_contract,
    cli_input=CliInput(),  # signal files stream window by window (manifest.stream)
    build=BUILD,
)
