"""Text-line images for the PP-OCR text-direction classifier: words drawn with OpenCV's
Hershey fonts on light backgrounds, upright (label "0") or turned half a turn ("180").

Synthetic by construction (the label is how the line was drawn); the classifier itself is the
real PP-OCR mobile v2.0 network with its real weights, from the rapidocr-onnxruntime package.
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
    cv2.FONT_HERSHEY_PLAIN,
)
WORDS = (
    "heart rate", "SpO2 97%", "NIBP 120/80", "resp rate 18", "temp 37.2",
    "patient ward 4", "alarm silenced", "lead II", "pulse ox", "ECG paper 25 mm/s",
    "mmHg", "bpm", "Celsius", "oxygen", "systolic",
)  # fmt: skip


def text_line(rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """One upright line, 48 x 192 px (the classifier's input: its own resize is then a no-op)."""
    word = str(rng.choice(WORDS))
    font = int(rng.choice(FONTS))
    scale = float(rng.uniform(0.9, 1.3))
    thickness = int(rng.integers(1, 3))
    (w, h), base = cv2.getTextSize(word, font, scale, thickness)
    canvas = np.full((h + base + 16, w + 16, 3), int(rng.integers(200, 256)), np.uint8)
    ink = tuple(int(v) for v in rng.integers(0, 80, 3))
    cv2.putText(canvas, word, (8, h + 8), font, scale, ink, thickness, cv2.LINE_AA)
    return cv2.resize(canvas, (192, 48), interpolation=cv2.INTER_AREA)


def write_set(folder: Path, per_label: int, seed: int, *, labelled: bool = True) -> None:
    """``per_label`` lines upright and as many turned 180 degrees, as PNG files: in
    ``folder/0/`` and ``folder/180/`` when ``labelled``, else all in ``folder``."""
    rng = np.random.default_rng(seed)
    for i in range(per_label):
        line = text_line(rng)
        for label, image in (("0", line), ("180", cv2.rotate(line, cv2.ROTATE_180))):
            out = folder / label if labelled else folder
            out.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out / f"{label}-{i:04d}.png"), image)
