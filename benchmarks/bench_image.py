"""Image preprocessing: edgemed's fused kernel vs the OpenCV + NumPy chain, single thread.

Task: one 1080p BGR uint8 frame -> 224x224 RGB float32 CHW, ImageNet mean/std. The baseline is
the chain a Python service writes: cv2.resize -> BGR->RGB -> float32 -> /255 -> (x - mean)/std ->
CHW (contiguous). OpenCV is pinned to one thread (cv2.setNumThreads(1)) so both sides use one
core. Also DICOM windowing of a 512x512 int16 slice vs the NumPy formula. Prints JSON.
Usage: python benchmarks/bench_image.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
from _machine import machine_info
from _timing import interleaved, row

from edgemed.kernels import ImageTransform, preprocess_image, window_dicom

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def opencv_chain(img: np.ndarray, flag: int) -> np.ndarray:
    x = cv2.cvtColor(cv2.resize(img, (224, 224), interpolation=flag), cv2.COLOR_BGR2RGB)
    x = (x.astype(np.float32) / 255.0 - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def numpy_window(stored: np.ndarray, c: float, w: float) -> np.ndarray:
    x = stored.astype(np.float64) - 1024.0
    y = np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0.0, 1.0)
    return y.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    rows = []
    for interp, flag in [("bilinear", cv2.INTER_LINEAR), ("area", cv2.INTER_AREA)]:
        t = ImageTransform(size=(224, 224), interpolation=interp, mean=tuple(MEAN), std=tuple(STD))  # type: ignore[arg-type]
        out = np.empty((3, 224, 224), np.float32)
        diff = np.abs(preprocess_image(frame, t)[0] - opencv_chain(frame, flag)).max() * STD.max()
        med = interleaved(
            {
                "edgemed": lambda t=t, out=out: preprocess_image(frame, t, out=out),
                "baseline": lambda flag=flag: opencv_chain(frame, flag),
            },
            args.repeats if interp == "bilinear" else max(20, args.repeats // 5),
        )
        rows.append(
            row(
                f"preprocess_image[{interp}]",
                "1080x1920x3 uint8 -> 3x224x224 float32",
                med,
                f"cv2.resize({'INTER_LINEAR' if interp == 'bilinear' else 'INTER_AREA'}) + numpy, 1 thread",
                max_abs_diff_uint8_steps=round(float(diff) * 255, 3),
            )
        )
    ct = rng.integers(0, 4096, (512, 512)).astype(np.int16)
    med = interleaved(
        {
            "edgemed": lambda: window_dicom(ct, center=40, width=400, intercept=-1024),
            "baseline": lambda: numpy_window(ct, 40, 400),
        },
        args.repeats,
    )
    rows.append(
        row("window_dicom[linear]", "512x512 int16 -> float32", med, "numpy float64 formula")
    )
    print(json.dumps({"benchmark": "image", "machine": machine_info(), "results": rows}, indent=1))


if __name__ == "__main__":
    main()
