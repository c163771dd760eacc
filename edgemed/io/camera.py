"""Frames from a camera, a video file or a network stream (OpenCV VideoCapture)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ..extras import require

__all__ = ["Frame", "frames"]


@dataclass(frozen=True, kw_only=True, eq=False)
class Frame:
    image: npt.NDArray[np.uint8] = field(repr=False)  # BGR (rows, cols, 3)
    index: int
    timestamp: float  # host time.time() when the frame was read


def frames(source: int | str, *, max_frames: int | None = None) -> Iterator[Frame]:
    """Yield frames from a camera index (0), a video file or an rtsp:// URL until it ends."""
    require("vision", "reading cameras and video")
    import cv2

    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise InputError(f"cannot open video source {source!r}")
    try:
        index = 0
        while max_frames is None or index < max_frames:
            ok, image = capture.read()
            if not ok:
                return
            yield Frame(image=np.asarray(image, dtype=np.uint8), index=index, timestamp=time.time())
            index += 1
    finally:
        capture.release()
