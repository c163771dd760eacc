"""Native cosine top-k and L2 normalisation vs the NumPy equivalents, same run, interleaved.

Prints JSON: median microseconds per call for each implementation and the ratio
(baseline / edgemed; > 1 means the native kernel is faster). Usage: python benchmarks/bench_kernels.py
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _machine import machine_info

from edgemed import kernels


def numpy_topk(q: np.ndarray, m_unit: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    sims = qn @ m_unit.T
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    top = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-top, axis=1)
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(top, order, axis=1)


def interleaved(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():  # interleave: machine noise hits both alike
            t0 = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - t0) * 1e6)
    return {name: statistics.median(v) for name, v in samples.items()}


def main() -> None:
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    for n_rows, n_queries, k, repeats in [(22, 1, 3, 2000), (1000, 1, 10, 500), (20000, 8, 10, 30)]:
        m = rng.standard_normal((n_rows, 384)).astype(np.float32)
        m_unit = m / np.linalg.norm(m, axis=1, keepdims=True)
        q = rng.standard_normal((n_queries, 384)).astype(np.float32)
        assert np.array_equal(kernels.cosine_topk(q, m, k)[0], numpy_topk(q, m_unit, k)[0])
        med = interleaved(
            {
                "edgemed": lambda q=q, m=m, k=k: kernels.cosine_topk(q, m, k),
                "numpy": lambda q=q, m_unit=m_unit, k=k: numpy_topk(q, m_unit, k),
            },
            repeats,
        )
        rows.append(
            {
                "kernel": "cosine_topk",
                "shape": f"{n_queries}x384 vs {n_rows}x384, k={k}",
                "edgemed_us": round(med["edgemed"], 2),
                "baseline": "numpy (pre-normalised matrix, argpartition)",
                "baseline_us": round(med["numpy"], 2),
                "ratio": round(med["numpy"] / med["edgemed"], 2),
            }
        )
    x = rng.standard_normal((1, 384)).astype(np.float32)
    med = interleaved(
        {
            "edgemed": lambda: kernels.l2_normalize(x),
            "numpy": lambda: x / np.linalg.norm(x, axis=1, keepdims=True),
        },
        5000,
    )
    rows.append(
        {
            "kernel": "l2_normalize",
            "shape": "1x384",
            "edgemed_us": round(med["edgemed"], 2),
            "baseline": "numpy",
            "baseline_us": round(med["numpy"], 2),
            "ratio": round(med["numpy"] / med["edgemed"], 2),
        }
    )
    print(
        json.dumps({"benchmark": "kernels", "machine": machine_info(), "results": rows}, indent=1)
    )


if __name__ == "__main__":
    main()
