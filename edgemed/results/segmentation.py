"""Results of image segmentation models: a class per pixel, with per-class pixel counts, areas
and confidences; the full mask stays on the device, the wire carries at most a small
run-length-encoded copy of it."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from .base import Provenance, timings_summary

__all__ = ["MASK_ENCODING", "UNSEEN", "ImageSegmentation", "decode_mask", "encode_mask"]

UNSEEN = 255  # mask value of a pixel the model never saw (fit center_crop: outside the crop)
MASK_ENCODING = "rle-varint"
MAX_MASK_CHARS = 64 * 1024  # base64 characters of a mask on the wire (the payload is <= 256 KiB)
_DIGITS = 6


@dataclass(frozen=True, kw_only=True, eq=False)
class ImageSegmentation:
    """What a segmentation model (task ``image-segmentation``) says about one image.

    ``mask`` (height, width) uint8 holds the class index (into ``labels``) of every pixel of
    the input image as the caller passed it (the model's map resized back), :data:`UNSEEN`
    where the model did not see the pixel. ``confidence`` is each pixel's score for its class
    (background: one minus the best foreground score, for thresholded outputs) and
    ``margin`` how far its scores are from giving it another class (0: on a boundary). Pixels
    of specks removed by ``min_area_px`` are background with confidence and margin 0: a rule
    decided them, not the model.

    Per class, in ``labels`` order: ``pixels``, ``mean_confidence`` (None for an absent
    class) and ``regions`` (8-connected components). ``areas_mm2`` needs
    ``pixel_spacing_mm`` (row, column spacing of the input's pixels, as DICOM's Pixel
    Spacing), else None: unknown, areas in pixels only. ``pixel_spacing_source`` says where
    the spacing came from: ``"PixelSpacing"`` or ``"ImagerPixelSpacing"`` (a DICOM file's;
    the latter is at the detector, not corrected for magnification), ``"caller"``, or None
    exactly when there is no spacing. ``encoded_mask`` is the wire copy of the mask (None unless the
    manifest asks for one): a grid of at most ``mask_max_side`` per side, see
    :func:`encode_mask`.
    """

    labels: tuple[str, ...]
    mask: npt.NDArray[np.uint8] = field(repr=False)
    confidence: npt.NDArray[np.float32] = field(repr=False)
    margin: npt.NDArray[np.float32] = field(repr=False)
    pixels: tuple[int, ...]
    mean_confidence: tuple[float | None, ...]
    regions: tuple[int, ...]
    pixel_spacing_mm: tuple[float, float] | None
    specks_removed: int
    encoded_mask: dict[str, Any] | None = field(repr=False)
    provenance: Provenance
    pixel_spacing_source: str | None = None
    kind: str = "image-segmentation"

    @property
    def height(self) -> int:
        return int(self.mask.shape[0])

    @property
    def width(self) -> int:
        return int(self.mask.shape[1])

    @property
    def unseen_pixels(self) -> int:
        return self.height * self.width - sum(self.pixels)

    @property
    def areas_mm2(self) -> tuple[float | None, ...]:
        if self.pixel_spacing_mm is None:
            return (None,) * len(self.labels)
        row, col = self.pixel_spacing_mm
        return tuple(float(f"{n * row * col:.{_DIGITS}g}") for n in self.pixels)

    def of(self, label: str) -> npt.NDArray[np.bool_]:
        """The pixels of class ``label`` (KeyError naming the labels if it is not one)."""
        if label not in self.labels:
            raise KeyError(f"{label!r} is not one of {list(self.labels)}")
        return np.asarray(self.mask == self.labels.index(label), np.bool_)

    def body(self) -> dict[str, Any]:
        classes = [
            {
                "label": label,
                "pixels": n,
                "area_mm2": area,
                "mean_confidence": None if conf is None else round(conf, _DIGITS),
                "regions": regions,
            }
            for label, n, area, conf, regions in zip(
                self.labels, self.pixels, self.areas_mm2, self.mean_confidence, self.regions,
                strict=True,
            )
        ]  # fmt: skip
        spacing = self.pixel_spacing_mm
        return {
            "kind": self.kind,
            "labels": list(self.labels),
            "height": self.height,
            "width": self.width,
            "pixel_spacing_mm": None if spacing is None else list(spacing),
            "pixel_spacing_source": self.pixel_spacing_source if spacing is not None else None,
            "classes": classes,
            "unseen_pixels": self.unseen_pixels,
            "specks_removed": self.specks_removed,
            "mask": self.encoded_mask,
        }

    def _spacing_said(self) -> str:
        return _spacing_line(self.pixel_spacing_mm, self.pixel_spacing_source)

    def summary(self) -> dict[str, Any]:
        areas = self.areas_mm2
        return {
            **timings_summary(self.provenance),
            "size": [self.height, self.width],
            "pixel_spacing": self._spacing_said(),
            "classes": {
                label: {"pixels": n, "area_mm2": area, "regions": regions}
                for label, n, area, regions in zip(
                    self.labels, self.pixels, areas, self.regions, strict=True
                )
            },
        }


def _spacing_line(spacing: tuple[float, float] | None, source: str | None) -> str:
    """The summary's plain words on the pixel spacing (and so on the areas)."""
    if spacing is None:
        return "unknown: areas in pixels only (area_mm2 null)"
    row, col = spacing
    said = {
        "PixelSpacing": "from the DICOM file's PixelSpacing",
        "ImagerPixelSpacing": (
            "from the DICOM file's ImagerPixelSpacing (no PixelSpacing: at the detector, "
            "not corrected for magnification)"
        ),
    }.get(source or "caller", "given by the caller")
    return f"{row:g} x {col:g} mm (row x column), {said}"


def _varints(values: npt.NDArray[np.int64]) -> bytes:
    """Unsigned LEB128 of each value (7 bits a byte, low first, high bit: more follow)."""
    v = values.astype(np.uint64)
    size = np.ones(len(v), np.int64)
    for k in range(1, 10):
        size += v >= np.uint64(1) << np.uint64(7 * k)
    start = np.cumsum(size) - size
    out = np.zeros(int(size.sum()), np.uint8)
    for k in range(int(size.max(initial=1))):
        has = size > k
        part = (v[has] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = np.where(size[has] > k + 1, 0x80, 0).astype(np.uint64)
        out[start[has] + k] = (part | more).astype(np.uint8)
    return out.tobytes()


def _grid(mask: npt.NDArray[np.uint8], side: int) -> npt.NDArray[np.uint8]:
    """The mask sampled (nearest pixel centres) so that its longer side is at most ``side``."""
    h, w = mask.shape
    scale = min(1.0, side / max(h, w))
    gh, gw = max(1, round(h * scale)), max(1, round(w * scale))
    rows = ((np.arange(gh) + 0.5) * h / gh).astype(np.int64)
    cols = ((np.arange(gw) + 0.5) * w / gw).astype(np.int64)
    return np.ascontiguousarray(mask[rows][:, cols])


def encode_mask(
    mask: npt.NDArray[np.uint8], max_side: int, max_chars: int = MAX_MASK_CHARS
) -> dict[str, Any]:
    """The wire copy of a class mask: ``{"encoding": "rle-varint", "shape": [h, w], "b64"}``.

    The mask is sampled to a grid of at most ``max_side`` per side (halved again until its
    encoding fits ``max_chars``), then read row by row as runs: each run is its class index
    and its length, both unsigned LEB128 varints; ``b64`` is their bytes in base64."""
    side = max_side
    while True:
        grid = _grid(mask, side).ravel()
        cuts = np.flatnonzero(grid[1:] != grid[:-1]) + 1
        starts = np.concatenate(([0], cuts))
        lengths = np.diff(np.concatenate((starts, [grid.size])))
        pairs = np.stack([grid[starts].astype(np.int64), lengths], axis=1).ravel()
        b64 = base64.b64encode(_varints(pairs)).decode("ascii")
        if len(b64) <= max_chars or side <= 1:
            h, w = _grid(mask, side).shape
            return {"encoding": MASK_ENCODING, "shape": [h, w], "b64": b64}
        side //= 2


def decode_mask(encoded: Mapping[str, Any]) -> npt.NDArray[np.uint8]:
    """The (h, w) uint8 grid of a body's ``mask`` (InputError if it is not one)."""
    shape = encoded.get("shape")
    if encoded.get("encoding") != MASK_ENCODING or not (
        isinstance(shape, list) and len(shape) == 2 and all(type(d) is int and d > 0 for d in shape)
    ):
        raise InputError(f"mask: expected {{'encoding': {MASK_ENCODING!r}, 'shape': [h, w], ...}}")
    try:
        raw = np.frombuffer(base64.b64decode(str(encoded.get("b64")), validate=True), np.uint8)
    except ValueError as exc:
        raise InputError(f"mask: b64 is not base64: {exc}") from exc
    ends = np.flatnonzero((raw & 0x80) == 0)
    if not len(ends) or ends[-1] != len(raw) - 1 or len(ends) % 2:
        raise InputError("mask: the varints do not make whole (class, length) runs")
    which = np.concatenate(([0], np.cumsum((raw & 0x80) == 0)[:-1]))
    first = np.concatenate(([0], ends[:-1] + 1))
    shift = (np.arange(len(raw)) - first[which]) * 7
    values = np.zeros(len(ends), np.uint64)
    np.add.at(values, which, (raw & 0x7F).astype(np.uint64) << shift.astype(np.uint64))
    classes, lengths = values[0::2], values[1::2].astype(np.int64)
    if int(lengths.sum()) != shape[0] * shape[1] or int(classes.max()) > UNSEEN:
        raise InputError(f"mask: runs cover {int(lengths.sum())} pixels, shape says {shape}")
    return np.repeat(classes.astype(np.uint8), lengths).reshape(shape[0], shape[1])
