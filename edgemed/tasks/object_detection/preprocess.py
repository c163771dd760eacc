"""Stage 2 for object detectors: an image (array or file) -> the model's one float32 tensor,
and where the image sits in it (to map the boxes back to the image's pixels).

The image policy, the ``preprocess`` section (size, fit: stretch, letterbox or centre crop,
channel order, layout, normalisation) and the kernel that resizes and normalises are the image
tasks' shared ones (``edgemed/tasks/image_input.py``): a uint8 BGR ``(height, width, 3)`` or
gray array, or an image file; anything else raises :class:`InputError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ... import kernels
from ...manifest import Manifest
from ..image_input import ImageTensors
from ..prepared import Prepared

__all__ = ["DetectionContext", "DetectionPreprocessor"]


@dataclass(frozen=True, kw_only=True, eq=False)
class DetectionContext:
    """What the postprocessor needs of one input: its size and where it sits in the model's
    input."""

    height: int
    width: int
    placement: kernels.Placement


class DetectionPreprocessor:
    """Image -> the model's input (1, C, H, W) or (1, H, W, C) float32, and its context."""

    def __init__(self, manifest: Manifest) -> None:
        self.images = ImageTensors(manifest, "an object detector")
        self.config, self.transform = self.images.config, self.images.transform

    def __call__(self, item: object) -> Prepared:
        image, tensor, placement = self.images(item)
        context = DetectionContext(
            height=int(image.shape[0]), width=int(image.shape[1]), placement=placement
        )
        return Prepared(
            tensors={self.images.input: tensor},
            input_sha256=Prepared.array_sha256(image),
            input_kind="image",
            context=context,
        )
