"""Scenes of printed text for segmentation tests: words drawn with OpenCV's Hershey fonts on
varied backgrounds (flat, gradient, noisy; dark ink on light and light ink on dark), with the
truth mask of where text was drawn (the strokes, dilated to cover the line as a text detector
marks it).

Synthetic by construction (the truth is where the text was drawn); the network segmented in
the tests is PP-OCRv4's real text detector with its real weights (rapidocr-onnxruntime).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
)
WORDS = (
    "HR 72", "SpO2 97%", "NIBP 120/80", "RR 18", "Temp 37.2", "ward 4", "alarm", "lead II",
    "pulse", "mmHg", "bpm", "ECG", "resp", "MAP 93",
)  # fmt: skip
DILATE = 5  # pixels: the truth covers the strokes and the gaps between them


def _background(rng: np.random.Generator, size: int, dark: bool) -> npt.NDArray[np.uint8]:
    lo, hi = (10, 70) if dark else (170, 256)
    kind = int(rng.integers(0, 3))
    if kind == 0:
        return np.full((size, size, 3), rng.integers(lo, hi, 3), np.uint8)
    if kind == 1:
        ramp = np.linspace(0.0, 1.0, size)[None, :, None]
        a, b = rng.integers(lo, hi, 3), rng.integers(lo, hi, 3)
        return np.repeat(a * (1 - ramp) + b * ramp, size, axis=0).astype(np.uint8)
    noise = rng.normal(float(rng.integers(lo, hi)), 10.0, (size, size, 3))
    return np.clip(noise, 0, 255).astype(np.uint8)


def scene(
    rng: np.random.Generator, size: int = 320
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """A BGR scene of text lines and its truth mask (1 = text, 0 = background)."""
    dark = bool(rng.random() < 0.3)
    image = _background(rng, size, dark)
    strokes = np.zeros((size, size), np.uint8)
    y = int(rng.integers(12, 40))
    while True:
        word, font = str(rng.choice(WORDS)), int(rng.choice(FONTS))
        scale, thickness = float(rng.uniform(0.7, 1.3)), int(rng.integers(1, 3))
        (w, h), base = cv2.getTextSize(word, font, scale, thickness)
        if y + h + base + 8 > size:
            break
        if w < size - 16:
            x = int(rng.integers(8, size - w - 8))
            ink = rng.integers(190, 256, 3) if dark else rng.integers(0, 90, 3)
            colour = tuple(int(v) for v in ink)
            cv2.putText(image, word, (x, y + h), font, scale, colour, thickness, cv2.LINE_AA)
            cv2.putText(strokes, word, (x, y + h), font, scale, 255, thickness, cv2.LINE_AA)
        y += h + base + int(rng.integers(14, 40))
    kernel = np.ones((DILATE, DILATE), np.uint8)
    truth = (cv2.dilate((strokes > 127).astype(np.uint8), kernel) > 0).astype(np.uint8)
    return image, truth


def write_scenes(folder: Path, n: int, seed: int, *, masks: bool = True, size: int = 320) -> None:
    """``n`` scenes as ``folder/images/scene-<i>.png`` and their masks as
    ``folder/masks/scene-<i>.png`` (class indices); without ``masks``, images only, in
    ``folder``."""
    rng = np.random.default_rng(seed)
    images = folder / "images" if masks else folder
    images.mkdir(parents=True, exist_ok=True)
    if masks:
        (folder / "masks").mkdir(exist_ok=True)
    for i in range(n):
        image, truth = scene(rng, size)
        cv2.imwrite(str(images / f"scene-{i:03d}.png"), image)
        if masks:
            cv2.imwrite(str(folder / "masks" / f"scene-{i:03d}.png"), truth)
