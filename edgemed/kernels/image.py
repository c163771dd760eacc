"""Frames and DICOM pixels to model tensors (``csrc/src/image.cpp``).

:func:`preprocess_image` replaces the usual ``cv2.resize`` → ``cvtColor`` → ``astype`` →
normalize → transpose chain with one pass that reads the uint8 frame through its strides
(OpenCV ROIs, NumPy slices, flipped views: no copy) and writes float32 CHW. It samples the
same grid as OpenCV (``INTER_LINEAR``, ``INTER_AREA``) so a model trained on cv2-resized
images sees the same pixels; it interpolates in float where OpenCV rounds to uint8 after
resizing, so the two differ by at most one uint8 step before normalization.

:func:`window_dicom` applies the modality rescale (slope/intercept) and the VOI LUT window
(PS3.3 C.11.2.1.2: linear, linear exact, sigmoid) to stored int16/uint16 pixel values.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ._checks import native, require_dtype
from ._native import _kernels

__all__ = ["ImageTransform", "Placement", "preprocess_image", "preprocess_images", "window_dicom"]

FloatArray = npt.NDArray[np.float32]
Order = Literal["rgb", "bgr", "gray"]
_CHANNELS = {"rgb": (0, 1, 2), "bgr": (2, 1, 0), "gray": (0,)}  # positions of R, G, B
_VOI = {"linear": 0, "linear_exact": 1, "sigmoid": 2}


@dataclass(frozen=True, kw_only=True)
class ImageTransform:
    """How a frame becomes a tensor. ``size`` is (height, width) of the output.

    ``fit``: ``stretch`` resizes to ``size``; ``center_crop`` resizes the shorter side to
    ``resize_shorter_to`` (default: the larger output side) and crops the centre, like
    torchvision's Resize + CenterCrop; ``letterbox`` keeps the aspect ratio and pads with
    ``pad_value`` (raw pixel value) around the centred image, like YOLO.
    Values are ``(pixel * scale - mean[c]) / std[c]`` per output channel.
    """

    size: tuple[int, int]
    interpolation: Literal["bilinear", "area"] = "bilinear"
    fit: Literal["stretch", "center_crop", "letterbox"] = "stretch"
    resize_shorter_to: int | None = None
    input_order: Literal["bgr", "rgb"] = "bgr"
    output_order: Order = "rgb"
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    pad_value: int = 114

    def __post_init__(self) -> None:
        if len(self.size) != 2 or min(self.size) < 1:
            raise InputError(f"size: expected (height, width) >= 1, got {self.size}")
        n = len(_CHANNELS[self.output_order])
        if len(self.mean) != n or len(self.std) != n:
            raise InputError(f"mean and std need {n} values for output_order={self.output_order!r}")
        if any(s == 0 for s in self.std):
            raise InputError("std must not contain 0")
        if self.resize_shorter_to is not None and self.resize_shorter_to < 1:
            raise InputError("resize_shorter_to must be >= 1")

    @property
    def channels(self) -> int:
        return len(_CHANNELS[self.output_order])


@dataclass(frozen=True)
class Placement:
    """Where the resized frame sits in the output, to map boxes back to source pixels.

    ``source_x = (output_x + offset_x) / scale_x`` (and likewise for y); negative offsets
    are padding (letterbox), positive ones cropping.
    """

    scale_y: float
    scale_x: float
    offset_y: int
    offset_x: int

    def to_source(self, xy: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map output-tensor (x, y) coordinates, shape (..., 2), back to source pixels."""
        pts = np.asarray(xy, dtype=np.float64)
        return np.stack(
            [
                (pts[..., 0] + self.offset_x) / self.scale_x,
                (pts[..., 1] + self.offset_y) / self.scale_y,
            ],
            axis=-1,
        )


def _channel_map(channels: int, t: ImageTransform) -> tuple[int, ...]:
    if channels == 1:  # gray input feeds every output channel
        return (0,) * t.channels
    if t.output_order == "gray":
        raise InputError("output_order='gray' needs a 1-channel image; convert colour frames first")
    rgb_at = (2, 1, 0) if t.input_order == "bgr" else (0, 1, 2)  # source index of R, G, B
    return tuple(rgb_at[i] for i in _CHANNELS[t.output_order])


_Plan = tuple[
    tuple[int, int, int, int], tuple[int, ...], tuple[float, ...], tuple[float, ...], int, Placement
]


@functools.lru_cache(maxsize=64)
def _plan(t: ImageTransform, h: int, w: int, channels: int) -> _Plan:
    """Everything a call derives from the transform and the frame's size, once per pair: a
    frame loop calls with the same ones every time (the kernel itself is ~0.13 ms at 1080p,
    so a few microseconds of Python per call show)."""
    shorter = t.resize_shorter_to or max(t.size)
    rh, rw, oy, ox = native(_kernels.placement, t.fit, h, w, t.size[0], t.size[1], shorter)
    alpha = tuple(t.scale / s for s in t.std)
    beta = tuple(-m / s for m, s in zip(t.mean, t.std, strict=True))
    interp = 0 if t.interpolation == "bilinear" else 1
    where = Placement(rh / h, rw / w, oy, ox)
    return (rh, rw, oy, ox), _channel_map(channels, t), alpha, beta, interp, where


def _check_image(image: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    arr = np.asarray(image)
    require_dtype(arr, "image", np.uint8)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)) or arr.size == 0:
        raise InputError(
            "image: expected a uint8 array (height, width) or (height, width, channels) with "
            f"1, 3 or 4 channels, got shape {arr.shape}"
        )
    return arr


def _fill(image: npt.NDArray[np.uint8], t: ImageTransform, out: FloatArray) -> Placement:
    key = (t, image.shape[0], image.shape[1], 1 if image.ndim == 2 else image.shape[2])
    try:
        plan = _plan(*key)
    except TypeError:  # a transform built with lists (not hashable): no cache, same result
        plan = _plan.__wrapped__(*key)
    placed, cmap, alpha, beta, interp, where = plan
    native(_kernels.resize_normalize, image, out, interp, placed, cmap, alpha, beta, t.pad_value)
    return where


def preprocess_image(
    image: npt.ArrayLike, transform: ImageTransform, *, out: FloatArray | None = None
) -> tuple[FloatArray, Placement]:
    """One uint8 frame (H, W) or (H, W, C) → float32 (C, height, width) and its placement.

    ``out`` (C-contiguous float32 of that shape) is filled in place when given.
    """
    arr = _check_image(image)
    shape = (transform.channels, *transform.size)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise InputError(
            f"out: expected a C-contiguous float32 array {shape}, got {out.dtype} {out.shape}"
        )
    return out, _fill(arr, transform, out)


def preprocess_images(
    images: Sequence[npt.ArrayLike], transform: ImageTransform
) -> tuple[FloatArray, list[Placement]]:
    """A batch of frames (sizes may differ) → float32 (N, C, height, width) and placements."""
    frames = [_check_image(im) for im in images]
    out = np.empty((len(frames), transform.channels, *transform.size), dtype=np.float32)
    return out, [_fill(frame, transform, out[i]) for i, frame in enumerate(frames)]


def window_dicom(
    pixels: npt.ArrayLike,
    *,
    center: float,
    width: float,
    slope: float = 1.0,
    intercept: float = 0.0,
    function: Literal["linear", "linear_exact", "sigmoid"] = "linear",
    dtype: type[np.float32] | type[np.uint8] = np.float32,
    out_range: tuple[float, float] = (0.0, 1.0),
) -> npt.NDArray[np.float32] | npt.NDArray[np.uint8]:
    """Stored int16/uint16 values (rows, cols) or (frames, rows, cols) → windowed image.

    ``float32`` output spans ``out_range``; ``uint8`` output spans 0..255 (rounded to
    nearest, ties to even). The arithmetic is float64, as the standard's formulas.
    """
    arr = np.asarray(pixels)
    require_dtype(arr, "pixels", np.int16, np.uint16)
    if function not in _VOI:
        raise InputError(f"function must be one of {sorted(_VOI)}, got {function!r}")
    if not all(np.isfinite([center, width, slope, intercept])):
        raise InputError("center, width, slope and intercept must be finite")
    out: npt.NDArray[Any] = np.empty(arr.shape, dtype=dtype)
    lo, hi = out_range
    native(_kernels.window, arr, out, slope, intercept, center, width, _VOI[function], lo, hi)
    return out
