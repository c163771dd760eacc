"""Task ``object-detection``: one image -> boxes, each with its class and score, in the
image's own pixels, configured entirely by the manifest (no code per model).

``preprocess`` is image-classification's section (size, fit: stretch, letterbox or centre
crop, interpolation, channel order, layout, normalisation), through the shared image kernel.
``postprocess`` reads the model's candidates in the layout the manifest declares (YOLO-style
one tensor, SSD-style boxes and scores, PP-PicoDet distribution heads; ``config.py``), keeps
those at or above their class's threshold, maps them back through the letterbox or crop,
suppresses overlaps in the native NMS kernel and keeps the best ``max_detections``. A graph
with NMS inside (layout ``detections``: final rows of box, score and class) is thresholded,
mapped and clipped the same way, checked (finite, class ids of the labels, scores in [0, 1])
and not suppressed again. No box is a valid result that says why.
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
    from .postprocess import DetectionPostprocessor
    from .preprocess import DetectionPreprocessor

    pre = DetectionPreprocessor(manifest)
    size = (pre.transform.size[0], pre.transform.size[1])
    return pre, DetectionPostprocessor(manifest, size)


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
        "output_layout": post.get("layout"),
        "boxes": "x1, y1, x2, y2 in the input image's pixels",
    }


SPEC = TaskSpec(
    name="object-detection",
    processors=_processors,
    golden_inputs=_golden_inputs,
    golden_check=_golden_check,
    input_contract=_input_contract,
    cli_input=CliInput(dicom="image"),
    build=BUILD,
    extras=("vision",),  # OpenCV
)
