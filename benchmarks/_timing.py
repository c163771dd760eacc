"""Interleaved timing shared by the kernel benchmarks: medians, same run, same machine noise."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def interleaved(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median microseconds per call of each case, run round-robin so noise hits all alike."""
    for fn in cases.values():
        fn()  # warm up: first-touch page faults, lazy initialisation
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - t0) * 1e6)
    return {name: statistics.median(v) for name, v in samples.items()}


def row(
    kernel: str, shape: str, med: dict[str, float], baseline: str, **extra: Any
) -> dict[str, Any]:
    """One JSON result row: edgemed vs the named baseline (ratio > 1: edgemed is faster)."""
    return {
        "kernel": kernel,
        "shape": shape,
        "edgemed_us": round(med["edgemed"], 1),
        "baseline": baseline,
        "baseline_us": round(med["baseline"], 1),
        "ratio": round(med["baseline"] / med["edgemed"], 2),
        **extra,
    }
