"""Stage 2 for segmentation models: an image (array, file, or either with its pixel spacing)
-> the model's one float32 tensor, and where the image sits in it (to map the mask back).

Input policy (stated once, tested): a uint8 array, BGR ``(height, width, 3)`` as
``cv2.imread`` returns it or gray ``(height, width)`` / ``(height, width, 1)``, or the path of
an image file OpenCV decodes; or a mapping ``{"image": <that>, "pixel_spacing_mm": [row,
col]}`` where the physical size of a pixel is known (millimetres between rows, between
columns: DICOM's Pixel Spacing (0028,0030) order): areas are then given in mm². The mapping
may say where the spacing came from, ``"pixel_spacing_source"``: ``"PixelSpacing"`` or
``"ImagerPixelSpacing"`` (a DICOM file's, as ``edgemed.io.DicomImage.spaced()`` gives it) or
``"caller"`` (the default). Anything else (another dtype, 2 or 4 channels, an empty array, a
side over 16384 pixels, a missing or undecodable file, a spacing that is not two positive
finite numbers, a source without a spacing or not one of those, another key) raises
:class:`InputError`.

The ``preprocess`` section, the image checks and the kernel that resizes and normalises are
the image tasks' shared ones (``edgemed/tasks/image_input.py``, as image-classification's).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import kernels
from ...contracts.generic import SPACING_SOURCES
from ...errors import InputError
from ...manifest import Manifest
from ..image_input import ImageTensors
from ..prepared import Prepared

__all__ = ["SPACING_SOURCES", "SegmentationContext", "SegmentationPreprocessor", "split_input"]

MAX_SPACING_MM = 1000.0  # a pixel a metre across is a unit mistake, not an image
_KEYS = frozenset({"image", "pixel_spacing_mm", "pixel_spacing_source"})
_FORMS = (  # what a caller may pass, for the error on anything else
    "a uint8 image array (height, width, 3) BGR or (height, width) gray, an image file path, "
    "or {'image': ..., 'pixel_spacing_mm': [row, col]}"
)


@dataclass(frozen=True, kw_only=True, eq=False)
class SegmentationContext:
    """What the postprocessor needs of one input: its size, where it sits in the model's
    input, and its pixel spacing."""

    height: int
    width: int
    placement: kernels.Placement
    pixel_spacing_mm: tuple[float, float] | None
    pixel_spacing_source: str | None = None  # SPACING_SOURCES; None exactly without a spacing


def _spacing(value: Any) -> tuple[float, float]:
    ok = isinstance(value, list | tuple | np.ndarray) and len(value) == 2
    ok = ok and all(
        isinstance(v, int | float | np.floating | np.integer) and not isinstance(v, bool)
        for v in value
    )
    numbers = tuple(float(v) for v in value) if ok else ()
    if not (ok and all(math.isfinite(v) and 0 < v <= MAX_SPACING_MM for v in numbers)):
        raise InputError(
            "pixel_spacing_mm: expected [row, column] spacing, two numbers in "
            f"(0, {MAX_SPACING_MM:g}] mm, got {value!r:.80}"
        )
    return numbers[0], numbers[1]


def split_input(item: object) -> tuple[object, tuple[float, float] | None, str | None]:
    """(the image part, its pixel spacing or None, where the spacing came from or None) of a
    caller's input."""
    if not isinstance(item, Mapping):
        return item, None, None
    if "image" not in item or set(item) - _KEYS:
        raise InputError(
            f"expected {{'image': ..., 'pixel_spacing_mm': [row, col]}}, got keys {sorted(item)}"
        )
    spacing, source = item.get("pixel_spacing_mm"), item.get("pixel_spacing_source")
    if spacing is None:
        if source is not None:
            raise InputError(f"pixel_spacing_source {source!r:.40} without a pixel_spacing_mm")
        return item["image"], None, None
    source = "caller" if source is None else source
    if source not in SPACING_SOURCES:
        raise InputError(
            f"pixel_spacing_source: expected one of {list(SPACING_SOURCES)}, got {source!r:.40}"
        )
    return item["image"], _spacing(spacing), str(source)


class SegmentationPreprocessor:
    """Image -> the model's input (1, C, H, W) or (1, H, W, C) float32, and its context."""

    def __init__(self, manifest: Manifest) -> None:
        self.images = ImageTensors(manifest, "a segmentation model", _FORMS)
        self.config, self.transform = self.images.config, self.images.transform

    def __call__(self, item: object) -> Prepared:
        source_item, spacing, source = split_input(item)
        image, tensor, placement = self.images(source_item)
        context = SegmentationContext(
            height=int(image.shape[0]),
            width=int(image.shape[1]),
            placement=placement,
            pixel_spacing_mm=spacing,
            pixel_spacing_source=source,
        )
        return Prepared(
            tensors={self.images.input: tensor},
            input_sha256=Prepared.array_sha256(image),
            input_kind="image",
            context=context,
        )
