"""Seven-segment digits drawn with OpenCV (segments as separate rectangles), for the monitor
reader's pixel checks: no font package needed."""

from __future__ import annotations

import cv2
import numpy as np

# Segments lit per digit, as the DSEG fonts draw them ("7" with its upper-left segment f,
# which PP-OCRv4 reads "9").
LIT = {
    "0": "abcdef",
    "1": "bc",
    "2": "abdeg",
    "3": "abcdg",
    "4": "bcfg",
    "5": "acdfg",
    "6": "acdefg",
    "7": "abcf",
    "8": "abcdefg",
    "9": "abcdfg",
}


def segment_boxes(h: int, x: int, y: int) -> dict[str, tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) of each segment of a digit of height ``h`` at (x, y): a (top),
    b (upper right), c (lower right), d (bottom), e (lower left), f (upper left), g (middle)."""
    w, t, g = int(h * 0.55), max(2, h // 9), max(1, h // 30)
    return {
        "a": (x + g, y, x + w - g, y + t),
        "g": (x + g, y + h // 2 - t // 2, x + w - g, y + h // 2 + t // 2),
        "d": (x + g, y + h - t, x + w - g, y + h),
        "f": (x, y + g, x + t, y + h // 2 - g),
        "b": (x + w - t, y + g, x + w, y + h // 2 - g),
        "e": (x, y + h // 2 + g, x + t, y + h - g),
        "c": (x + w - t, y + h // 2 + g, x + w, y + h - g),
    }


def draw_digit(
    img: np.ndarray, x: int, y: int, h: int, digit: str, colour: tuple[int, int, int]
) -> None:
    """A seven-segment ``digit`` of height ``h`` drawn at (x, y) in ``colour``."""
    for s in LIT[digit]:
        x0, y0, x1, y1 = segment_boxes(h, x, y)[s]
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1)
