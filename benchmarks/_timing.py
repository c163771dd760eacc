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


WARM_HEAP_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "67108864"}


def in_heap_states(script: str, heap: str, args: list[str]) -> list[dict[str, Any]]:
    """Run ``script --inner ARGS`` once per heap state (``heap``: fresh, warm or both), each in
    a new process whose environment sets that state; their JSON reports, in that order."""
    import json
    import os
    import subprocess
    import sys

    runs = []
    for state in ("fresh", "warm") if heap == "both" else (heap,):
        env = {k: v for k, v in os.environ.items() if k not in WARM_HEAP_ENV}
        if state == "warm":
            env.update(WARM_HEAP_ENV)
        cmd = [sys.executable, script, "--inner", *args]
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        runs.append(json.loads(out.stdout.splitlines()[-1]))
    return runs


def heap_state() -> str:
    """``warm``: glibc's mmap threshold raised as after a real frame loop freed its frames, so
    large temporaries come from a warm heap; ``fresh``: glibc defaults in a new process."""
    import os

    warm = all(os.environ.get(k) == v for k, v in WARM_HEAP_ENV.items())
    return "warm" if warm else "fresh"


def paired(
    ours: Callable[[], object], baseline: Callable[[], object], *, rounds: int = 7, calls: int = 20
) -> dict[str, Any]:
    """edgemed vs its baseline in ``rounds`` rounds of ``calls`` paired calls each, the order
    alternating call by call (ABBA), so load on a shared machine hits both sides alike.

    Per side: the median over rounds of each round's median wall time and calling-thread CPU
    time (µs); the ratio baseline / edgemed (> 1: edgemed is faster) of each round's wall
    medians, reported as the median over rounds and its spread (min, max), and the same from
    thread CPU time (meaningful where both sides run on the calling thread alone)."""
    ours(), baseline()  # warm up: first-touch page faults, lazy initialisation
    wall: dict[str, list[float]] = {"edgemed": [], "baseline": []}
    cpu: dict[str, list[float]] = {"edgemed": [], "baseline": []}
    ratios, cpu_ratios = [], []
    for _ in range(rounds):
        w: dict[str, list[float]] = {"edgemed": [], "baseline": []}
        c: dict[str, list[float]] = {"edgemed": [], "baseline": []}
        for i in range(calls):
            pair = (("edgemed", ours), ("baseline", baseline))
            for name, fn in pair if i % 2 == 0 else pair[::-1]:
                c0, t0 = time.thread_time(), time.perf_counter()
                fn()
                w[name].append((time.perf_counter() - t0) * 1e6)
                c[name].append((time.thread_time() - c0) * 1e6)
        for name in w:
            wall[name].append(statistics.median(w[name]))
            cpu[name].append(statistics.median(c[name]))
        ratios.append(wall["baseline"][-1] / wall["edgemed"][-1])
        cpu_ratios.append(cpu["baseline"][-1] / max(cpu["edgemed"][-1], 1e-3))
    return {
        "edgemed_us": round(statistics.median(wall["edgemed"]), 2),
        "baseline_us": round(statistics.median(wall["baseline"]), 2),
        "edgemed_cpu_us": round(statistics.median(cpu["edgemed"]), 2),
        "baseline_cpu_us": round(statistics.median(cpu["baseline"]), 2),
        "ratio": round(statistics.median(ratios), 3),
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "cpu_ratio": round(statistics.median(cpu_ratios), 3),
        "rounds": rounds,
        "calls_per_round": calls,
    }
