"""Tabular models: the Pipeline's cost over the raw runtime call on the same tensor.

For each bundled tabular model and backend: ``pipeline(row)`` (validate a feature mapping,
range-check, run, build the result) vs the raw ``InferenceSession.run`` / OpenVINO infer
request on the prepared [1, n] tensor, and ``pipeline.batch(64 rows)`` (one stacked backend
call) vs the raw call on the stacked [64, n] tensor. Medians of interleaved runs, 1 thread.
Usage: python benchmarks/bench_tabular.py [repeats]
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
from _machine import machine_info
from _timing import interleaved

import edgemed

MODELS = ("wdbc-malignancy-mlp", "diabetes-progression")


def _raw(pipeline: edgemed.Pipeline) -> Any:
    backend: Any = pipeline.backend
    raw = backend.raw()
    name = pipeline.manifest.inputs[0].name
    if pipeline.backend.name == "onnxruntime":
        return lambda x: raw.run(None, {name: x})
    request = raw.create_infer_request()
    return lambda x: request.infer({name: x})


def bench(model: str, backend: str, repeats: int) -> dict[str, Any]:
    with edgemed.load(model, backend=backend, threads=1) as p:
        golden = json.loads(p.manifest.path("golden_inputs").read_text())
        rows = [golden[i % len(golden)] for i in range(64)]
        x1 = p.preprocess(rows[0]).tensors[p.manifest.inputs[0].name]
        x64 = np.concatenate([p.preprocess(r).tensors[p.manifest.inputs[0].name] for r in rows])
        raw = _raw(p)
        med = interleaved(
            {
                "pipeline_1": lambda: p(rows[0]),
                "raw_1": lambda: raw(x1),
                "pipeline_batch_64": lambda: p.batch(rows),
                "raw_64": lambda: raw(x64),
            },
            repeats,
        )
    return {
        "model": model,
        "backend": backend,
        "pipeline_row_us": round(med["pipeline_1"], 1),
        "raw_row_us": round(med["raw_1"], 1),
        "pipeline_overhead_row_us": round(med["pipeline_1"] - med["raw_1"], 1),
        "pipeline_batch64_us": round(med["pipeline_batch_64"], 1),
        "raw_batch64_us": round(med["raw_64"], 1),
        "pipeline_batch64_per_row_us": round(med["pipeline_batch_64"] / 64, 2),
        "batch64_vs_64_single_calls": round(64 * med["pipeline_1"] / med["pipeline_batch_64"], 1),
    }


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    results = [bench(m, b, repeats) for m in MODELS for b in ("onnxruntime", "openvino")]
    print(
        json.dumps(
            {"benchmark": "tabular", "machine": machine_info(), "results": results}, indent=1
        )
    )


if __name__ == "__main__":
    main()
