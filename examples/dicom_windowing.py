"""DICOM pixels → display window → model tensor with edgemed's native kernels, against NumPy.

What it shows: pydicom's test images ``CT_small.dcm`` (CT, 128x128, Hounsfield units via
rescale intercept -1024, no window in the header) and ``MR_small.dcm`` (MR, 64x64, header
window 600/1600) read with ``edgemed.io.read_dicom_image``, then, per image and window:

1. the VOI LUT window (DICOM PS3.3 C.11.2.1.2.1, linear) of the stored values to a uint8
   display image with ``edgemed.kernels.window_dicom`` (what ``DicomImage.windowed`` calls);
2. that image to a normalized float32 model tensor (1, 224, 224) with
   ``edgemed.kernels.preprocess_image`` (bilinear resize on OpenCV's pixel grid, then
   ``(x / 255 - 0.5) / 0.5``), in one native pass.

The same two steps are written in plain NumPy below (the standard's formula, round half to
even; the same bilinear grid, float interpolation). The example prints the median time of
``-n`` interleaved runs of each path (native and NumPy alternate, so both see the same machine
load), the speed-up, and the largest difference between the outputs; it exits 1 if the uint8
images differ or the tensors differ by more than 1e-5.

Run from the repository root (needs pydicom: ``pip install 'edgemed[formats]'``)::

    python examples/dicom_windowing.py [-n 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.data import get_testdata_file

from edgemed.io import read_dicom_image
from edgemed.kernels import ImageTransform, preprocess_image, window_dicom

SIZE = (224, 224)
TRANSFORM = ImageTransform(size=SIZE, output_order="gray", mean=(0.5,), std=(0.5,))
# CT has no window in its header: the usual presets (centre, width in HU).
CT_WINDOWS = {"soft tissue": (40.0, 400.0), "bone": (400.0, 1800.0)}


def numpy_window(
    stored: npt.NDArray[Any], c: float, w: float, slope: float, intercept: float
) -> npt.NDArray[np.uint8]:
    """PS3.3 C.11.2.1.2.1 linear VOI LUT to 0..255, in float64 as the standard writes it."""
    x = stored.astype(np.float64) * slope + intercept
    y = ((x - (c - 0.5)) / (w - 1.0) + 0.5) * 255.0
    y = np.where(x <= c - 0.5 - (w - 1.0) / 2, 0.0, y)
    y = np.where(x > c - 0.5 + (w - 1.0) / 2, 255.0, y)
    return np.rint(y).astype(np.uint8)


def _grid(n_in: int, n_out: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], Any]:
    """OpenCV INTER_LINEAR sample positions: centre-aligned, clamped at the edges."""
    f = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    f = np.clip(f, 0.0, n_in - 1.0)
    i0 = np.floor(f).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (f - i0).astype(np.float32)


def numpy_tensor(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Bilinear resize to SIZE in float, then (x / 255 - 0.5) / 0.5, as (1, H, W) float32."""
    y0, y1, fy = _grid(image.shape[0], SIZE[0])
    x0, x1, fx = _grid(image.shape[1], SIZE[1])
    img = image.astype(np.float32)
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bottom = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    resized = top * (1 - fy[:, None]) + bottom * fy[:, None]
    tensor: npt.NDArray[np.float32] = ((resized / 255.0 - 0.5) / 0.5)[np.newaxis].astype(np.float32)
    return tensor


Paths = tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]


def native_path(stored: npt.NDArray[Any], c: float, w: float, slope: float, b: float) -> Paths:
    """edgemed: window to uint8, then resize + normalize to the model tensor (native kernels)."""
    u8 = window_dicom(stored, center=c, width=w, slope=slope, intercept=b, dtype=np.uint8)
    return u8, preprocess_image(u8, TRANSFORM)[0]  # type: ignore[return-value]


def numpy_path(stored: npt.NDArray[Any], c: float, w: float, slope: float, b: float) -> Paths:
    """The same two steps in NumPy."""
    u8 = numpy_window(stored, c, w, slope, b)
    return u8, numpy_tensor(u8)


def interleaved_median_ms(runs: int, **paths: Callable[[], object]) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(runs):
        for name, fn in paths.items():
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) * 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=200, help="interleaved timing runs")
    args = parser.parse_args()
    ok = True
    for name in ("CT_small.dcm", "MR_small.dcm"):
        path = get_testdata_file(name)  # bundled with pydicom: no download
        assert isinstance(path, str), f"pydicom has no test file {name}"
        img = read_dicom_image(path)
        stored = np.ascontiguousarray(img.stored)
        hu = img.pixels
        print(f"{name}: {img.modality} {stored.shape[1]}x{stored.shape[0]} {stored.dtype}, "
              f"slope {img.slope:g}, intercept {img.intercept:g}, "
              f"values {hu.min():g}..{hu.max():g}")  # fmt: skip
        if img.window_center is not None and img.window_width is not None:
            windows = {"header": (img.window_center, img.window_width)}
        else:
            windows = CT_WINDOWS
        for label, (c, w) in windows.items():
            native = partial(native_path, stored, c, w, img.slope, img.intercept)
            numpy = partial(numpy_path, stored, c, w, img.slope, img.intercept)
            (u8_a, t_a), (u8_b, t_b) = native(), numpy()
            assert np.array_equal(u8_a, img.windowed(center=c, width=w))  # the public API
            u8_diff = int(np.abs(u8_a.astype(np.int16) - u8_b).max())
            t_diff = float(np.abs(t_a - t_b).max())
            ms = interleaved_median_ms(args.runs, native=native, numpy=numpy)
            print(f"  window {label} c={c:g} w={w:g}: uint8 {u8_a.shape} mean {u8_a.mean():5.1f}, "
                  f"{(u8_a == 0).mean():.0%} black, {(u8_a == 255).mean():.0%} white; "
                  f"tensor {t_a.dtype} {t_a.shape} in [{t_a.min():+.2f}, {t_a.max():+.2f}]")  # fmt: skip
            print(f"    native {ms['native']:.3f} ms  numpy {ms['numpy']:.3f} ms  "
                  f"({ms['numpy'] / ms['native']:.1f}x, median of {args.runs} interleaved)  "
                  f"max abs diff: uint8 {u8_diff}, tensor {t_diff:.2e}")  # fmt: skip
            ok = ok and u8_diff == 0 and t_diff <= 1e-5
    print("native and NumPy paths agree" if ok else "MISMATCH between native and NumPy paths")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
