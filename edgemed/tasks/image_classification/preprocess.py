"""Stage 2 for image classifiers: an image (array or file) -> the model's one float32 tensor.

The image policy, the ``preprocess`` section and the kernel that resizes and normalises are
the image tasks' shared ones (``edgemed/tasks/image_input.py``).
"""

from __future__ import annotations

from ...manifest import Manifest
from ..image_input import ImageTensors
from ..prepared import Prepared

__all__ = ["ImagePreprocessor"]


class ImagePreprocessor:
    """Image -> the model's input (1, C, H, W) or (1, H, W, C) float32."""

    def __init__(self, manifest: Manifest) -> None:
        self.images = ImageTensors(manifest, "an image classifier")
        self.config, self.transform = self.images.config, self.images.transform

    def __call__(self, item: object) -> Prepared:
        image, tensor, _ = self.images(item)
        return Prepared(
            tensors={self.images.input: tensor},
            input_sha256=Prepared.array_sha256(image),
            input_kind="image",
        )
