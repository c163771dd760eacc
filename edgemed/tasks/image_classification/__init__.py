"""Task ``image-classification``: one image -> its label(s) with their scores, configured
entirely by the manifest (no code per model).

``preprocess`` reads the image (array or file) and turns it into the model's tensor by the
fused C++ kernel: size, fit (stretch, centre crop, letterbox), interpolation, channel order,
layout and normalisation come from the manifest's ``preprocess`` section. ``postprocess``
turns the model's per-class scores (softmax, sigmoid or probabilities) into the best label, or
every label over its threshold (multi-label), and abstains, saying why, where the model is
not confident enough (``min_confidence``).
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
    from .postprocess import ImagePostprocessor
    from .preprocess import ImagePreprocessor

    return ImagePreprocessor(manifest), ImagePostprocessor(manifest)


def _golden_inputs(manifest: Manifest) -> list[object]:
    from ..image_input import golden_images

    return golden_images(manifest)


def _golden_check(manifest: Manifest, results: Sequence[Result], cpu_family: str) -> list[str]:
    from .postprocess import golden_check

    return golden_check(manifest, results, cpu_family)


def _input_contract(m: Manifest) -> dict[str, Any]:
    pre, post = m.preprocess, m.postprocess
    return {
        "kind": "image",
        "dtype": "uint8",
        "layout": "HWC",
        "colour_order": "BGR",  # as cv2.imread; image files are read that way
        "channels": [3, 1],  # BGR, or gray (H, W) / (H, W, 1)
        "model_input": {key: pre.get(key) for key in ("size", "fit", "channel_order", "layout")},
        "labels": post.get("labels"),
        "multi_label": post.get("multi_label"),
    }


SPEC = TaskSpec(
    name="image-classification",
    processors=_processors,
    golden_inputs=_golden_inputs,
    golden_check=_golden_check,
    input_contract=_input_contract,
    cli_input=CliInput(dicom="image"),
    build=BUILD,
    extras=("vision",),  # OpenCV
)
