"""Image preprocessing: edgemed's fused kernel vs the OpenCV + NumPy chain, one thread each side.

Task: one 1080p BGR uint8 frame -> 224x224 RGB float32 CHW, ImageNet mean/std. The baseline is
the chain a Python service writes: cv2.resize -> BGR->RGB -> float32 -> /255 -> (x - mean)/std ->
CHW (contiguous), with OpenCV pinned to one thread (cv2.setNumThreads(1)); the kernel runs on
the calling thread alone. Also the kernel against cv2.resize alone (no conversion at all, for
context) and DICOM windowing of a 512x512 int16 slice vs the NumPy float64 formula.

Conditions stated in the JSON (issue 28, items 1 and 2): paired rounds (``_timing.paired``:
calls alternating ABBA, each round's median wall and calling-thread CPU time, the ratio as the
median of the rounds with its spread); both heap states (the script runs itself once with glibc's
defaults, ``fresh``, and once with a frame loop's heap, ``warm``: ``MALLOC_MMAP_THRESHOLD_``);
threads per side; the machine.

Memory-bandwidth limit, measured in the same run: read bandwidth = the frame's bytes / the time
NumPy takes to read it once (``frame.max()``, SIMD, the frame resident in cache exactly as it is
for the kernel's calls), write bandwidth = the output's bytes / ``out.fill(0)``. The kernel's
limit is the bytes it must move at those rates: for bilinear the 64-byte lines of the source
rows its taps touch (2 rows per output row, ~2.6 MB of the 6.2 MB frame), for area the whole
frame; plus the 0.6 MB float32 output. ``kernel_vs_limit`` is the kernel's median wall time over
that limit (issue target: <= 1.5); the full-frame read is reported beside it.

Usage: python benchmarks/bench_image.py [--heap fresh|warm|both] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from _machine import machine_info
from _timing import heap_state, in_heap_states, paired

from edgemed.kernels import ImageTransform, preprocess_image, window_dicom

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
ROUNDS = 7
SIZE = 224
TARGETS = {"bilinear": 3.0, "area": 4.0}  # warm-heap ratio against the OpenCV chain
LIMIT_TARGET = 1.5


def opencv_chain(img: np.ndarray, flag: int) -> np.ndarray:
    x = cv2.cvtColor(cv2.resize(img, (SIZE, SIZE), interpolation=flag), cv2.COLOR_BGR2RGB)
    x = (x.astype(np.float32) / 255.0 - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def numpy_window(stored: np.ndarray, c: float, w: float) -> np.ndarray:
    x = stored.astype(np.float64) - 1024.0
    y = np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0.0, 1.0)
    return y.astype(np.float32)


def median_us(fn: Callable[[], object], calls: int) -> float:
    fn()
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(samples)


def bilinear_bytes(h: int, w: int, channels: int) -> int:
    """Bytes in the 64-byte lines of the frame that OpenCV's INTER_LINEAR grid reads for a
    SIZE x SIZE output (the kernel samples the same grid): 2 taps per axis, clamped."""

    def taps(src: int) -> np.ndarray:
        scale = 1.0 / (SIZE / src)
        f = (np.arange(SIZE) + 0.5) * scale - 0.5
        first = np.clip(np.floor(f).astype(np.int64), 0, src - 1)
        return np.unique(np.concatenate([first, np.minimum(first + 1, src - 1)]))

    rows, cols = taps(h), taps(w)
    row_bytes = w * channels
    lines = np.unique(np.concatenate([(cols * channels + c) // 64 for c in range(channels)]))
    return len(rows) * min(len(lines) * 64, row_bytes)


def bandwidth(frame: np.ndarray, out: np.ndarray) -> dict[str, Any]:
    read_us = median_us(frame.max, 200)
    write_us = median_us(lambda: out.fill(0.0), 400)
    return {
        "read_GBps": round(frame.nbytes / read_us / 1e3, 2),
        "write_GBps": round(out.nbytes / write_us / 1e3, 2),
        "frame_read_us": round(read_us, 1),
        "output_write_us": round(write_us, 1),
        "where": "the frame stays in the last-level cache between calls, for the kernel's "
        "calls and for this measurement alike",
    }


def preprocess_rows(frame: np.ndarray, rounds: int, bw: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    out = np.empty((3, SIZE, SIZE), np.float32)
    for interp, flag, calls in [
        ("bilinear", cv2.INTER_LINEAR, 60),
        ("area", cv2.INTER_AREA, 12),
    ]:
        t = ImageTransform(
            size=(SIZE, SIZE),
            interpolation=interp,  # type: ignore[arg-type]
            mean=tuple(float(m) for m in MEAN),
            std=tuple(float(s) for s in STD),
        )
        diff = np.abs(preprocess_image(frame, t)[0] - opencv_chain(frame, flag)).max() * STD.max()
        row = {
            "kernel": f"preprocess_image[{interp}]",
            "shape": "1080x1920x3 uint8 BGR -> 3x224x224 float32 RGB, mean/std",
            "baseline": f"cv2.resize({'INTER_LINEAR' if interp == 'bilinear' else 'INTER_AREA'})"
            " + cvtColor + NumPy float32 normalise + CHW copy, cv2.setNumThreads(1)",
            "threads": {"edgemed": 1, "baseline": 1},
            "max_abs_diff_uint8_steps": round(float(diff) * 255, 3),
            **paired(
                lambda t=t: preprocess_image(frame, t, out=out),
                lambda flag=flag: opencv_chain(frame, flag),
                rounds=rounds,
                calls=calls,
            ),
        }
        must_read = bilinear_bytes(*frame.shape) if interp == "bilinear" else frame.nbytes
        write_us = out.nbytes / bw["write_GBps"] / 1e3
        limit = must_read / bw["read_GBps"] / 1e3 + write_us
        row["bandwidth_limit"] = {
            "bytes_read": must_read,
            "bytes_written": out.nbytes,
            "limit_us": round(limit, 1),
            "kernel_vs_limit": round(row["edgemed_us"] / limit, 2),
            "full_frame_limit_us": round(bw["frame_read_us"] + write_us, 1),
            "kernel_vs_full_frame_limit": round(
                row["edgemed_us"] / (bw["frame_read_us"] + write_us), 2
            ),
        }
        rows.append(row)
        rows.append(
            {
                "kernel": f"preprocess_image[{interp}] vs cv2.resize alone (context)",
                "shape": "the same frame; OpenCV returns 224x224x3 uint8, nothing else done",
                "baseline": "cv2.resize only, cv2.setNumThreads(1)",
                "threads": {"edgemed": 1, "baseline": 1},
                **paired(
                    lambda t=t: preprocess_image(frame, t, out=out),
                    lambda flag=flag: cv2.resize(frame, (SIZE, SIZE), interpolation=flag),
                    rounds=rounds,
                    calls=calls,
                ),
            }
        )
    return rows


def measure(rounds: int) -> dict[str, Any]:
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    bw = bandwidth(frame, np.empty((3, SIZE, SIZE), np.float32))
    rows = preprocess_rows(frame, rounds, bw)
    ct = rng.integers(0, 4096, (512, 512)).astype(np.int16)
    rows.append(
        {
            "kernel": "window_dicom[linear]",
            "shape": "512x512 int16 -> float32",
            "baseline": "numpy float64 formula",
            "threads": {"edgemed": 1, "baseline": 1},
            **paired(
                lambda: window_dicom(ct, center=40, width=400, intercept=-1024),
                lambda: numpy_window(ct, 40, 400),
                rounds=rounds,
                calls=60,
            ),
        }
    )
    return {
        "heap": heap_state(),
        "opencv_threads": cv2.getNumThreads(),
        "bandwidth": bw,
        "results": rows,
    }


def vbmi() -> bool:
    """Whether the CPU has AVX-512 VBMI (the kernel's 16-pixel bilinear path)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and "avx512vbmi" in line.split() for line in f)
    except OSError:
        return False


def verdicts(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets against this run's figures (warm heap: the steady state)."""
    out: dict[str, Any] = {}
    for run in runs:
        for r in run["results"]:
            interp = r["kernel"].removeprefix("preprocess_image[").removesuffix("]")
            if interp not in TARGETS:
                continue
            key = f"{interp} ({run['heap']} heap)"
            out[key] = {
                "ratio": r["ratio"],
                "ratio_min": r["ratio_min"],
                "target": TARGETS[interp],
                "met": r["ratio"] >= TARGETS[interp],
                "kernel_vs_limit": r["bandwidth_limit"]["kernel_vs_limit"],
                "limit_target": LIMIT_TARGET,
                "limit_met": r["bandwidth_limit"]["kernel_vs_limit"] <= LIMIT_TARGET,
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heap", choices=["fresh", "warm", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:  # one heap state, in this process (its environment decides which)
        print(json.dumps(measure(args.rounds)))
        return
    runs = in_heap_states(__file__, args.heap, ["--rounds", str(args.rounds)])
    report = {
        "benchmark": "image",
        "machine": {**machine_info(), "avx512_vbmi": vbmi()},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "runs": runs,
        "targets": verdicts(runs),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
