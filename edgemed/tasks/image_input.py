"""Image input shared by the image tasks: the manifest's ``preprocess`` section for images, a
caller's image checked, the model's tensor made by the fused C++ kernel, golden images read.

Image policy (stated once, tested): a caller passes a uint8 array, BGR ``(height, width, 3)``
as ``cv2.imread`` returns it or gray ``(height, width)`` / ``(height, width, 1)``, or the path
of an image file OpenCV decodes. Anything else (another dtype such as a float image, 2 or 4
channels, an empty array, a side over 16384 pixels, a missing or undecodable file) raises
:class:`InputError`. The kernel resizes (``fit``: stretch, centre crop or letterbox) and
normalises ``(pixel * scale - mean[c]) / std[c]`` into the model's channel order, CHW;
``layout: nhwc`` transposes. A gray model is fed colour images converted as OpenCV does.

Heavy (OpenCV, the kernels): a task's build support imports it inside its functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from .. import kernels
from ..errors import InputError, ManifestError
from ..manifest import Manifest, parse_section
from .build_folders import IMAGE_SUFFIXES, files_below

__all__ = [
    "MAX_SIDE",
    "ImagePreprocess",
    "ImageTensors",
    "golden_images",
    "load_image",
    "parse_preprocess",
    "read_images",
]

MAX_SIDE = 16384
FITS = ("stretch", "center_crop", "letterbox")
INTERPOLATIONS = ("bilinear", "area")
CHANNEL_ORDERS = ("rgb", "bgr", "gray")
LAYOUTS = ("nchw", "nhwc")
IMAGE_FORMS = (
    "a uint8 image array (height, width, 3) BGR or (height, width) gray, or an image file path"
)
_WHERE = "manifest.preprocess"


@dataclass(frozen=True, kw_only=True)
class ImagePreprocess:
    """The manifest's ``preprocess`` section for image models (kernels.ImageTransform).

    ``channel_order`` and ``layout`` are the model's; ``mean``/``std`` hold one value per
    model channel (3, or 1 for ``gray``), applied after ``scale``."""

    size: list[Any]  # [height, width] of the model input
    fit: str  # FITS
    interpolation: str  # INTERPOLATIONS
    channel_order: str  # CHANNEL_ORDERS
    layout: str  # LAYOUTS
    scale: float
    mean: list[Any]
    std: list[Any]
    resize_shorter_to: int | None = None  # centre crop only; default: the larger output side
    pad_value: int = 0  # letterbox only: the raw pixel value of the padding


def _choice(value: str, allowed: tuple[str, ...], key: str) -> None:
    if value not in allowed:
        raise ManifestError(f"{_WHERE}.{key}: {value!r} is not one of {list(allowed)}")


def _numbers(values: Any, key: str, n: int, positive: bool) -> tuple[float, ...]:
    ok = isinstance(values, list) and len(values) == n
    ok = ok and all(type(v) in (int, float) and math.isfinite(v) for v in values)
    if not ok or (positive and min(values) <= 0):
        what = "positive " if positive else ""
        raise ManifestError(f"{_WHERE}.{key}: expected {n} finite {what}number(s), one per channel")
    return tuple(float(v) for v in values)


def _check_section(c: ImagePreprocess) -> None:
    _choice(c.fit, FITS, "fit")
    _choice(c.interpolation, INTERPOLATIONS, "interpolation")
    _choice(c.channel_order, CHANNEL_ORDERS, "channel_order")
    _choice(c.layout, LAYOUTS, "layout")
    size = c.size
    if not (isinstance(size, list) and len(size) == 2 and all(type(d) is int for d in size)):
        raise ManifestError(f"{_WHERE}.size: expected [height, width], two integers")
    if not all(1 <= d <= MAX_SIDE for d in size):
        raise ManifestError(f"{_WHERE}.size: each side must be 1..{MAX_SIDE}, got {size}")


def _check_transform(c: ImagePreprocess) -> None:
    if not (math.isfinite(c.scale) and c.scale > 0):
        raise ManifestError(f"{_WHERE}.scale: must be a finite number > 0")
    if c.resize_shorter_to is not None:
        if c.fit != "center_crop":
            raise ManifestError(f"{_WHERE}.resize_shorter_to: only for fit 'center_crop'")
        if not max(c.size) <= c.resize_shorter_to <= MAX_SIDE:
            raise ManifestError(
                f"{_WHERE}.resize_shorter_to: must be {max(c.size)}..{MAX_SIDE} (at least the "
                "larger output side, so the crop lies inside the resized image)"
            )
    if not 0 <= c.pad_value <= 255:
        raise ManifestError(f"{_WHERE}.pad_value: must be a pixel value 0..255")


def parse_preprocess(
    manifest: Manifest, model: str
) -> tuple[ImagePreprocess, kernels.ImageTransform]:
    """The section, checked against itself and the manifest's one input tensor; ``model``
    names the kind of model in the input tensor's error ("an image classifier")."""
    c = parse_section(ImagePreprocess, manifest.preprocess, _WHERE)
    _check_section(c)
    channels = 1 if c.channel_order == "gray" else 3
    mean = _numbers(c.mean, "mean", channels, positive=False)
    std = _numbers(c.std, "std", channels, positive=True)
    _check_transform(c)
    size = (int(c.size[0]), int(c.size[1]))
    _check_input(manifest, model, c.layout, channels, size)
    transform = kernels.ImageTransform(
        size=size,
        interpolation="area" if c.interpolation == "area" else "bilinear",
        fit=c.fit,  # type: ignore[arg-type]  # checked above
        resize_shorter_to=c.resize_shorter_to,
        input_order="bgr",  # caller arrays are BGR, as cv2.imread returns them
        output_order=c.channel_order,  # type: ignore[arg-type]  # checked above
        scale=float(c.scale),
        mean=mean,
        std=std,
        pad_value=c.pad_value,
    )
    return c, transform


def _check_input(
    manifest: Manifest, model: str, layout: str, channels: int, size: tuple[int, int]
) -> None:
    """One float32 input, [batch, C, H, W] (nchw) or [batch, H, W, C] (nhwc); named axes
    are taken as they come, fixed ones must match the section."""
    spec = manifest.inputs[0]
    want: tuple[int, ...] = (channels, *size) if layout == "nchw" else (*size, channels)
    shape = spec.shape
    ok = len(manifest.inputs) == 1 and spec.dtype == "float32" and len(shape) == 4
    ok = ok and all(isinstance(d, str) or d == w for d, w in zip(shape[1:], want, strict=True))
    if not ok:
        axes = "C, H, W" if layout == "nchw" else "H, W, C"
        raise ManifestError(
            f"manifest.inputs: {model} takes one float32 input [batch, {axes}] = "
            f"[batch, {', '.join(map(str, want))}] (preprocess size, channel_order, layout); "
            f"manifest declares {[(s.name, s.dtype, list(s.shape)) for s in manifest.inputs]}"
        )


def load_image(item: object, gray: bool = False, forms: str = IMAGE_FORMS) -> npt.NDArray[np.uint8]:
    """A caller image (array or file path) checked: uint8 (H, W), (H, W, 1) or BGR (H, W, 3).

    ``gray``: read files as one channel (the model takes gray). ``forms``: what the caller
    may pass, for the error on anything else."""
    if isinstance(item, str | Path):
        path = Path(item)
        if not path.is_file():
            raise InputError(f"image file not found: {path}")
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"cannot read {path} as an image (not a format OpenCV decodes)")
        arr: npt.NDArray[Any] = np.asarray(image)
    elif isinstance(item, np.ndarray):
        arr = item
    else:
        raise InputError(f"expected {forms}, got {type(item).__name__}")
    if arr.dtype != np.uint8:
        raise InputError(
            f"image: expected dtype uint8 (pixel values 0-255, as cv2.imread), got {arr.dtype}"
        )
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3))):
        raise InputError(
            "image: expected (height, width, 3) BGR, (height, width) or (height, width, 1) gray, "
            f"got shape {arr.shape}"
        )
    if arr.size == 0 or max(arr.shape[:2]) > MAX_SIDE:
        raise InputError(f"image: sides must be 1..{MAX_SIDE} pixels, got shape {arr.shape}")
    return arr.astype(np.uint8, copy=False)  # a no-op: its dtype is uint8


class ImageTensors:
    """A caller image -> (the checked image, the model's input (1, C, H, W) or (1, H, W, C)
    float32, where the image sits in it), as the manifest's ``preprocess`` section says.

    ``model`` names the kind of model in manifest errors, ``forms`` what a caller may pass in
    input errors."""

    def __init__(self, manifest: Manifest, model: str, forms: str = IMAGE_FORMS) -> None:
        self.config, self.transform = parse_preprocess(manifest, model)
        self.input = manifest.inputs[0].name  # the model's input tensor
        self._gray = self.config.channel_order == "gray"
        self._nhwc = self.config.layout == "nhwc"
        self._forms = forms

    def __call__(
        self, item: object
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32], kernels.Placement]:
        image = load_image(item, self._gray, self._forms)
        source = image
        if self._gray and image.ndim == 3 and image.shape[2] == 3:
            source = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        tensor, placement = kernels.preprocess_image(source, self.transform)
        if self._nhwc:
            tensor = np.ascontiguousarray(tensor.transpose(1, 2, 0))
        return image, tensor[None], placement


def golden_images(manifest: Manifest) -> list[object]:
    """The bundle's golden images: an .npz of uint8 arrays ``image_0``, ``image_1``, ...
    (BGR (H, W, 3) or gray (H, W)), each a caller input as it is."""
    path = manifest.path("golden_inputs")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{manifest.id}: golden inputs {path.name}: not an .npz") from exc
    expected = [f"image_{i}" for i in range(len(arrays))]
    if not arrays or sorted(arrays) != sorted(expected):
        raise ManifestError(
            f"{manifest.id}: golden inputs must be arrays image_0 .. image_<n-1>, got "
            f"{sorted(arrays)[:8]}"
        )
    return [arrays[name] for name in expected]


def read_images(folder: Path) -> list[npt.NDArray[np.uint8]]:
    """Every image file below ``folder``, in sorted path order (BuildError: no folder;
    InputError naming a file OpenCV cannot decode)."""
    return [load_image(p) for p in files_below(folder, IMAGE_SUFFIXES)]
