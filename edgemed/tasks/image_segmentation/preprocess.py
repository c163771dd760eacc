"""Stage 2 for segmentation models: an image (array, file, or either with its pixel spacing)
-> the model's one float32 tensor, and where the image sits in it (to map the mask back).

Input policy (stated once, tested): a uint8 array, BGR ``(height, width, 3)`` as
``cv2.imread`` returns it or gray ``(height, width)`` / ``(height, width, 1)``, or the path of
an image file OpenCV decodes; or a mapping ``{"image": <that>, "pixel_spacing_mm": [row,
col]}`` where the physical size of a pixel is known (millimetres between rows, between
columns: DICOM's Pixel Spacing (0028,0030) order): areas are then given in mm². Anything else
(another dtype, 2 or 4 channels, an empty array, a side over 16384 pixels, a missing or
undecodable file, a spacing that is not two positive finite numbers, another key) raises
:class:`InputError`.

The ``preprocess`` section is image-classification's, key for key (size, fit, interpolation,
channel_order, layout, scale, mean, std, pad_value, resize_shorter_to): the same fused C++
kernel resizes and normalises. Its parsing is a copy of that task's (a task never imports
another); the two should move together to a shared leaf.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from ... import kernels
from ...errors import InputError, ManifestError
from ...manifest import Manifest, parse_section
from ..prepared import Prepared

__all__ = [
    "SegmentationContext",
    "SegmentationPreprocess",
    "SegmentationPreprocessor",
    "golden_inputs",
    "load_image",
    "parse_preprocess",
]

MAX_SIDE = 16384
MAX_SPACING_MM = 1000.0  # a pixel a metre across is a unit mistake, not an image
FITS = ("stretch", "center_crop", "letterbox")
INTERPOLATIONS = ("bilinear", "area")
CHANNEL_ORDERS = ("rgb", "bgr", "gray")
LAYOUTS = ("nchw", "nhwc")
_WHERE = "manifest.preprocess"
_KEYS = frozenset({"image", "pixel_spacing_mm"})


@dataclass(frozen=True, kw_only=True)
class SegmentationPreprocess:
    """The manifest's ``preprocess`` section (as image-classification's)."""

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


@dataclass(frozen=True, kw_only=True, eq=False)
class SegmentationContext:
    """What the postprocessor needs of one input: its size, where it sits in the model's
    input, and its pixel spacing."""

    height: int
    width: int
    placement: kernels.Placement
    pixel_spacing_mm: tuple[float, float] | None


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


def _check_section(c: SegmentationPreprocess) -> None:
    _choice(c.fit, FITS, "fit")
    _choice(c.interpolation, INTERPOLATIONS, "interpolation")
    _choice(c.channel_order, CHANNEL_ORDERS, "channel_order")
    _choice(c.layout, LAYOUTS, "layout")
    size = c.size
    if not (isinstance(size, list) and len(size) == 2 and all(type(d) is int for d in size)):
        raise ManifestError(f"{_WHERE}.size: expected [height, width], two integers")
    if not all(1 <= d <= MAX_SIDE for d in size):
        raise ManifestError(f"{_WHERE}.size: each side must be 1..{MAX_SIDE}, got {size}")
    if not (math.isfinite(c.scale) and c.scale > 0):
        raise ManifestError(f"{_WHERE}.scale: must be a finite number > 0")
    if c.resize_shorter_to is not None:
        if c.fit != "center_crop":
            raise ManifestError(f"{_WHERE}.resize_shorter_to: only for fit 'center_crop'")
        if not max(size) <= c.resize_shorter_to <= MAX_SIDE:
            raise ManifestError(
                f"{_WHERE}.resize_shorter_to: must be {max(size)}..{MAX_SIDE} (at least the "
                "larger output side, so the crop lies inside the resized image)"
            )
    if not 0 <= c.pad_value <= 255:
        raise ManifestError(f"{_WHERE}.pad_value: must be a pixel value 0..255")


def parse_preprocess(manifest: Manifest) -> tuple[SegmentationPreprocess, kernels.ImageTransform]:
    """The section, checked against itself and the manifest's one input tensor."""
    c = parse_section(SegmentationPreprocess, manifest.preprocess, _WHERE)
    _check_section(c)
    channels = 1 if c.channel_order == "gray" else 3
    mean = _numbers(c.mean, "mean", channels, positive=False)
    std = _numbers(c.std, "std", channels, positive=True)
    size = (int(c.size[0]), int(c.size[1]))
    _check_input(manifest, c.layout, channels, size)
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


def _check_input(manifest: Manifest, layout: str, channels: int, size: tuple[int, int]) -> None:
    spec = manifest.inputs[0]
    want: tuple[int, ...] = (channels, *size) if layout == "nchw" else (*size, channels)
    shape = spec.shape
    ok = len(manifest.inputs) == 1 and spec.dtype == "float32" and len(shape) == 4
    ok = ok and all(isinstance(d, str) or d == w for d, w in zip(shape[1:], want, strict=True))
    if not ok:
        axes = "C, H, W" if layout == "nchw" else "H, W, C"
        raise ManifestError(
            f"manifest.inputs: a segmentation model takes one float32 input [batch, {axes}] = "
            f"[batch, {', '.join(map(str, want))}] (preprocess size, channel_order, layout); "
            f"manifest declares {[(s.name, s.dtype, list(s.shape)) for s in manifest.inputs]}"
        )


def load_image(item: object, gray: bool = False) -> npt.NDArray[np.uint8]:
    """A caller image (array or file path) checked: uint8 (H, W), (H, W, 1) or BGR (H, W, 3)."""
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
        raise InputError(
            "expected a uint8 image array (height, width, 3) BGR or (height, width) gray, an "
            "image file path, or {'image': ..., 'pixel_spacing_mm': [row, col]}, got "
            f"{type(item).__name__}"
        )
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
    return arr.astype(np.uint8, copy=False)


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


def split_input(item: object) -> tuple[object, tuple[float, float] | None]:
    """(the image part, its pixel spacing or None) of a caller's input."""
    if not isinstance(item, Mapping):
        return item, None
    if "image" not in item or set(item) - _KEYS:
        raise InputError(
            f"expected {{'image': ..., 'pixel_spacing_mm': [row, col]}}, got keys {sorted(item)}"
        )
    spacing = item.get("pixel_spacing_mm")
    return item["image"], None if spacing is None else _spacing(spacing)


class SegmentationPreprocessor:
    """Image -> the model's input (1, C, H, W) or (1, H, W, C) float32, and its context."""

    def __init__(self, manifest: Manifest) -> None:
        self.config, self.transform = parse_preprocess(manifest)
        self._gray = self.config.channel_order == "gray"
        self._nhwc = self.config.layout == "nhwc"
        self._input = manifest.inputs[0].name

    def __call__(self, item: object) -> Prepared:
        source_item, spacing = split_input(item)
        image = load_image(source_item, self._gray)
        source = image
        if self._gray and image.ndim == 3 and image.shape[2] == 3:
            source = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        tensor, placement = kernels.preprocess_image(source, self.transform)
        if self._nhwc:
            tensor = np.ascontiguousarray(tensor.transpose(1, 2, 0))
        context = SegmentationContext(
            height=int(image.shape[0]),
            width=int(image.shape[1]),
            placement=placement,
            pixel_spacing_mm=spacing,
        )
        return Prepared(
            tensors={self._input: tensor[None]},
            input_sha256=Prepared.array_sha256(image),
            input_kind="image",
            context=context,
        )


def golden_inputs(manifest: Manifest) -> list[object]:
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
