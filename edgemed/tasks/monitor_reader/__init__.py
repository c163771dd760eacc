"""Task ``monitor-reader``: a photo of a patient-monitor screen -> its vital signs, each with
a confidence, alarm limits kept apart from values, fields it cannot read withheld with a
reason, and NEWS2 (or its partial bound) from what was read.

Parts: ``preprocess`` (image -> detector input), ``postprocess`` (text boxes, the recogniser,
fields, NEWS2, golden check), ``vitals_text`` (which text is which vital sign, by the screen's
structure), ``screen_text`` (what one box's text says: labels, numbers, units, markers),
``vital_values`` (display ranges, unit conversion), ``field_confidence`` (whether a read value
may be reported).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...manifest import Manifest
from ...results import Result
from ..spec import CliInput, OpenModel, Postprocessor, Preprocessor, TaskSpec

__all__ = ["SPEC"]


def _processors(manifest: Manifest, open_model: OpenModel) -> tuple[Preprocessor, Postprocessor]:
    from .postprocess import MonitorPostprocessor
    from .preprocess import DetectorPreprocessor

    return DetectorPreprocessor(manifest), MonitorPostprocessor(manifest, open_model)


def _golden_inputs(manifest: Manifest) -> list[object]:
    from .preprocess import golden_inputs

    return golden_inputs(manifest)


def _golden_check(manifest: Manifest, results: Sequence[Result], cpu_family: str) -> list[str]:
    from .postprocess import golden_check

    return golden_check(manifest, results, cpu_family)


def _input_contract(m: Manifest) -> dict[str, Any]:
    side = "max_side_px" if m.preprocess.get("limit_type") == "max" else "min_side_px"
    return {
        "kind": "image",
        "dtype": "uint8",
        "layout": "HWC",
        "colour_order": "BGR",  # as cv2.imread; image files are read that way
        "channels": 3,
        side: m.preprocess.get("limit_side_len"),  # resized to this, sides a multiple of 32
    }


SPEC = TaskSpec(
    name="monitor-reader",
    processors=_processors,
    golden_inputs=_golden_inputs,
    golden_check=_golden_check,
    # The detector is ``model`` (run by the pipeline's backend); the recogniser reads its boxes.
    required_artifacts=("recognizer", "charset"),
    input_contract=_input_contract,
    cli_input=CliInput(dicom="image"),
    extras=("vision",),  # OpenCV
)
