"""Task ``image-segmentation``: one image -> a class for each of its pixels, with each class's
pixel count, area (mm² where the pixel spacing is known), confidence and regions, configured
entirely by the manifest (no code per model).

``preprocess`` is image-classification's section (size, fit, interpolation, channel order,
layout, normalisation); the caller may pass ``{"image": ..., "pixel_spacing_mm": [row, col]}``
for areas in mm² (``edgemed.io.read_dicom_image(path).spaced()`` makes it from a DICOM file,
as ``edgemed run`` does on a ``.dcm``). ``postprocess`` turns the model's per-class score maps (softmax, sigmoid or
probabilities) into a class mask at the input's own size, drops specks under ``min_area_px``
and optionally puts a small run-length-encoded copy of the mask on the wire (``mask: rle``).
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
    from .postprocess import SegmentationPostprocessor
    from .preprocess import SegmentationPreprocessor

    pre = SegmentationPreprocessor(manifest)
    size = (pre.transform.size[0], pre.transform.size[1])
    return pre, SegmentationPostprocessor(manifest, size)


def _golden_inputs(manifest: Manifest) -> list[object]:
    from ..image_input import golden_images

    return golden_images(manifest)


def _golden_check(manifest: Manifest, results: Sequence[Result], cpu_family: str) -> list[str]:
    from .postprocess import golden_check

    return golden_check(manifest, results, cpu_family)


def _from_dicom_image(image: Any) -> object:
    """A DICOM image (edgemed.io.DicomImage) -> the windowed image with the file's spacing."""
    return image.spaced()


def _input_contract(m: Manifest) -> dict[str, Any]:
    pre, post = m.preprocess, m.postprocess
    return {
        "kind": "image",
        "dtype": "uint8",
        "layout": "HWC",
        "colour_order": "BGR",  # as cv2.imread; image files are read that way
        "channels": [3, 1],  # BGR, or gray (H, W) / (H, W, 1)
        "pixel_spacing_mm": (
            "optional: {'image': ..., 'pixel_spacing_mm': [row, col]}; a .dcm file's own"
        ),
        "model_input": {key: pre.get(key) for key in ("size", "fit", "channel_order", "layout")},
        "labels": post.get("labels"),
        "scores": post.get("scores"),
        "mask_on_wire": post.get("mask", "none"),
    }


SPEC = TaskSpec(
    name="image-segmentation",
    processors=_processors,
    golden_inputs=_golden_inputs,
    golden_check=_golden_check,
    input_contract=_input_contract,
    cli_input=CliInput(dicom="image", from_dicom_image=_from_dicom_image),
    build=BUILD,
    extras=("vision",),  # OpenCV
)
