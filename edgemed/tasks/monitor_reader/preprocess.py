"""Stage 2 for text-detection models: a photo (array or image file) -> detector input.

Image policy (stated once, tested): a caller passes a uint8 BGR array (height, width, 3), as
``cv2.imread`` returns it, or a path to an image file OpenCV can read; anything else, an empty
array, another dtype or channel count, a side under 16 or over 8192 pixels, or an unreadable
file raises :class:`InputError`. The photo is resized (no crop, no padding) so its sides are
multiples of 32, following PP-OCR's detector rule (``limit_type`` ``max``: the longer side is
at most ``limit_side_len``; ``min``: the shorter side is at least ``limit_side_len``), then
normalised ``(pixel / 255 - mean) / std`` in BGR order, NCHW float32, by the fused C++ kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from ... import kernels
from ...errors import InputError, ManifestError
from ...manifest import Manifest, parse_section
from ..prepared import Prepared

__all__ = [
    "DetectorPreprocess",
    "DetectorPreprocessor",
    "MonitorContext",
    "MonitorFrame",
    "detector_input",
    "detector_size",
    "load_image",
]

MIN_SIDE, MAX_SIDE = 16, 8192
Consciousness = Literal["A", "C", "V", "P", "U"]


@dataclass(frozen=True, kw_only=True)
class MonitorFrame:
    """A monitor photo plus what NEWS2 needs that no monitor screen shows.

    ``consciousness`` (ACVPU) and ``on_oxygen`` come from the bedside team. Left None, NEWS2
    stays incomplete (a partial score is returned) unless ``assume_alert_on_room_air`` is set:
    then an unknown consciousness counts as alert ("A") and unknown oxygen as room air, and the
    result names every assumption made. ``spo2_scale=2`` only when a clinician prescribed it.
    """

    image: npt.NDArray[np.uint8] | str | Path
    consciousness: Consciousness | None = None
    on_oxygen: bool | None = None
    spo2_scale: Literal[1, 2] = 1
    assume_alert_on_room_air: bool = False

    def __post_init__(self) -> None:
        if self.consciousness is not None and self.consciousness not in ("A", "C", "V", "P", "U"):
            raise InputError(f"consciousness must be A, C, V, P or U, got {self.consciousness!r}")
        if self.on_oxygen is not None and not isinstance(self.on_oxygen, bool):
            raise InputError(f"on_oxygen must be True, False or None, got {self.on_oxygen!r}")
        if self.spo2_scale not in (1, 2):
            raise InputError(f"spo2_scale must be 1 or 2, got {self.spo2_scale!r}")


@dataclass(frozen=True, kw_only=True)
class DetectorPreprocess:
    """The manifest's ``preprocess`` section for PP-OCR text detectors."""

    limit_side_len: int
    limit_type: str  # "max" or "min"
    mean: float  # per channel, after scaling pixels to [0, 1]
    std: float


@dataclass(frozen=True, kw_only=True, eq=False)
class MonitorContext:
    """What the postprocessor needs: the photo itself (crops for the recogniser) and the
    caller's NEWS2 inputs."""

    image: npt.NDArray[np.uint8]
    frame: MonitorFrame


def load_image(item: object) -> npt.NDArray[np.uint8]:
    """Validate a caller image (array or file path) and return it as uint8 BGR (H, W, 3)."""
    if isinstance(item, str | Path):
        path = Path(item)
        if not path.is_file():
            raise InputError(f"image file not found: {path}")
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"cannot read {path} as an image (not a format OpenCV decodes)")
        return np.asarray(image, dtype=np.uint8)
    if not isinstance(item, np.ndarray):
        raise InputError(
            "expected a uint8 BGR array (height, width, 3), an image file path or a "
            f"MonitorFrame, got {type(item).__name__}"
        )
    if item.dtype != np.uint8:
        raise InputError(f"image: expected dtype uint8 (BGR, as cv2.imread), got {item.dtype}")
    if item.ndim != 3 or item.shape[2] != 3:
        raise InputError(f"image: expected shape (height, width, 3) BGR, got {item.shape}")
    if min(item.shape[:2]) < MIN_SIDE or max(item.shape[:2]) > MAX_SIDE:
        raise InputError(
            f"image: sides must be {MIN_SIDE}..{MAX_SIDE} pixels, got {item.shape[0]}x{item.shape[1]}"
        )
    return item


def detector_size(height: int, width: int, limit_side_len: int, limit_type: str) -> tuple[int, int]:
    """PP-OCR's detector input size (rapidocr ``DetPreProcess.resize``): sides multiple of 32."""
    if limit_type == "max":
        longer = max(height, width)
        ratio = limit_side_len / longer if longer > limit_side_len else 1.0
    else:
        shorter = min(height, width)
        ratio = limit_side_len / shorter if shorter < limit_side_len else 1.0
    h = max(32, int(round(int(height * ratio) / 32) * 32))
    w = max(32, int(round(int(width * ratio) / 32) * 32))
    return h, w


def detector_input(image: npt.NDArray[np.uint8], c: DetectorPreprocess) -> npt.NDArray[np.float32]:
    """A BGR image -> the detector's input (1, 3, H, W): the screen, and the enlarged regions
    the postprocessor looks at again (closer_look.py)."""
    size = detector_size(image.shape[0], image.shape[1], c.limit_side_len, c.limit_type)
    transform = kernels.ImageTransform(
        size=size,
        interpolation="bilinear",
        fit="stretch",
        input_order="bgr",
        output_order="bgr",  # PP-OCR models take OpenCV's channel order
        mean=(c.mean,) * 3,
        std=(c.std,) * 3,
    )
    tensor, _ = kernels.preprocess_image(image, transform)
    return np.asarray(tensor[None], dtype=np.float32)


class DetectorPreprocessor:
    """Photo -> PP-OCR detector input ``x`` (1, 3, H, W) float32, BGR, sides multiple of 32."""

    def __init__(self, manifest: Manifest) -> None:
        config = parse_section(DetectorPreprocess, manifest.preprocess, "manifest.preprocess")
        if config.limit_type not in ("max", "min"):
            raise ManifestError("manifest.preprocess.limit_type: must be 'max' or 'min'")
        if not 32 <= config.limit_side_len <= 4096 or config.std <= 0:
            raise ManifestError("manifest.preprocess: need 32 <= limit_side_len <= 4096, std > 0")
        self.config = config
        self._input = manifest.inputs[0].name

    def __call__(self, item: object) -> Prepared:
        frame = item if isinstance(item, MonitorFrame) else MonitorFrame(image=item)  # type: ignore[arg-type]
        image = load_image(frame.image)
        return Prepared(
            tensors={self._input: detector_input(image, self.config)},
            input_sha256=Prepared.array_sha256(image),
            input_kind="image",
            context=MonitorContext(image=image, frame=frame),
        )


def golden_inputs(manifest: Manifest) -> list[object]:
    """The bundle's golden screens: one PNG with the screens stacked vertically (one sha256
    for all); ``golden_outputs`` gives each screen's rows and width."""
    import json

    spec = json.loads(manifest.path("golden_outputs").read_text(encoding="utf-8"))
    sheet = load_image(manifest.path("golden_inputs"))
    try:
        return [
            np.ascontiguousarray(sheet[c["rows"][0] : c["rows"][1], : c["width"]])
            for c in spec["cases"]
        ]
    except (KeyError, TypeError, IndexError) as exc:
        raise ManifestError(f"{manifest.id}: golden outputs must list rows/width per case") from exc
