"""Per-query latency of the text model's code suggestions on each CPU backend (ONNX Runtime
dynamic INT8 vs OpenVINO static INT8), through the whole pipeline: tokenize, encode, int8 top-10
over the 36,343-code index.

Queries: the bundle's shipped evaluation subset (real inclusion terms, variable length), each
backend called in turn on the same query (interleaved, so machine noise hits both alike).
Prints JSON: median and p90 ms per backend and thread count, the ratio, machine info.
Usage: python benchmarks/bench_text_backends.py [n_queries] [threads ...]
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from _machine import machine_info

import edgemed

MODEL_ID = "clinical-text-minilm"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    thread_counts = [int(t) for t in sys.argv[2:]] or [1, 2]
    rows = []
    for threads in thread_counts:
        pipes = {
            b: edgemed.load(MODEL_ID, backend=b, device="cpu", threads=threads)
            for b in ("onnxruntime", "openvino")
        }
        queries = json.loads(pipes["onnxruntime"].manifest.path("eval_queries").read_text())
        texts = [q["text"] for q in queries[:n]]
        for pipe in pipes.values():  # warm up every input length once
            for text in texts:
                pipe(text)
        samples: dict[str, list[float]] = {b: [] for b in pipes}
        for text in texts:
            for backend, pipe in pipes.items():
                t0 = time.perf_counter()
                pipe(text)
                samples[backend].append((time.perf_counter() - t0) * 1e3)
        med = {b: float(np.median(s)) for b, s in samples.items()}
        rows.append(
            {
                "figure": "ms per query (tokenize + encode + int8 top-10 over the index)",
                "threads": threads,
                "queries": len(texts),
                **{f"{b}_median_ms": round(m, 2) for b, m in med.items()},
                **{
                    f"{b}_p90_ms": round(float(np.percentile(s, 90)), 2) for b, s in samples.items()
                },
                "ratio_ort_over_openvino": round(med["onnxruntime"] / med["openvino"], 2),
            }
        )
        for pipe in pipes.values():
            pipe.close()
    print(json.dumps({"results": rows, "machine": machine_info()}, indent=1))


if __name__ == "__main__":
    main()
