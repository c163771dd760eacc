"""The CUDA path on a machine with an NVIDIA GPU and onnxruntime-gpu (CI has none).

For each model: what ``device="auto"`` chose and why, the session's real providers, CUDA vs CPU
results on the golden inputs (largest absolute difference over every number in the result
bodies), what an explicit ``device="tensorrt"`` does, and ``edgemed.cli.bench`` per backend.
Writes one JSON document to OUT after each model (a run cut short keeps what it measured).

Usage: python benchmarks/check_cuda_path.py OUT [MODEL ...]   (default: the tabular models)
Run on an H200 for issue 5 (docs/runtime.md, "Verified here / not verified").
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

import edgemed
from edgemed.backends import probe
from edgemed.cli.bench import bench_model
from edgemed.tasks import task_spec

MODELS = ("wdbc-malignancy-mlp", "diabetes-progression")


def _numbers(x: Any) -> Iterator[float]:
    if isinstance(x, dict):
        for key in sorted(x):
            yield from _numbers(x[key])
    elif isinstance(x, list | tuple):
        for value in x:
            yield from _numbers(value)
    elif isinstance(x, int | float) and not isinstance(x, bool):
        yield float(x)


def _max_abs_diff(a: Sequence[edgemed.Result], b: Sequence[edgemed.Result]) -> float:
    left = np.array(list(_numbers([r.body() for r in a])))
    right = np.array(list(_numbers([r.body() for r in b])))
    if left.shape != right.shape:
        raise AssertionError(f"results differ in shape: {left.shape} vs {right.shape}")
    return float(np.abs(left - right).max()) if left.size else 0.0


def check(model: str) -> dict[str, Any]:
    report: dict[str, Any] = {}
    with edgemed.load(model) as auto:
        report["auto"] = {
            "backend": auto.choice.backend,
            "device": auto.choice.device,
            "reason": auto.choice.reason,
            "session_providers": auto.backend.raw().get_providers(),  # type: ignore[attr-defined]
        }
        items = task_spec(auto.manifest).golden_inputs(auto.manifest)
    with (
        edgemed.load(model, device="cuda") as gpu,
        edgemed.load(model, backend="onnxruntime", device="cpu") as cpu,
    ):
        on_gpu, on_cpu = gpu.batch(items), cpu.batch(items)
        report["cuda_vs_cpu_max_abs_diff"] = _max_abs_diff(on_gpu, on_cpu)
        report["cuda_provenance"] = [on_gpu[0].provenance.backend, on_gpu[0].provenance.device]
    try:
        edgemed.load(model, device="tensorrt").close()
        report["tensorrt"] = "started"
    except edgemed.BackendUnavailableError as exc:
        report["tensorrt"] = f"BackendUnavailableError: {exc}"
    report["bench"] = bench_model(model, n=200, batch=64, batch_repeats=100)
    return report


def main() -> None:
    out = Path(sys.argv[1])
    hw = probe(runtimes=("onnxruntime",))
    doc: dict[str, Any] = {
        "onnxruntime": ort.__version__,
        "listed_providers": ort.get_available_providers(),
        "probe": {"gpu": hw.gpu_name, "providers": list(hw.onnxruntime_providers)},
        "models": {},
    }
    for model in sys.argv[2:] or MODELS:
        try:
            doc["models"][model] = check(model)
        except Exception:  # keep going: one model's failure is itself a finding
            doc["models"][model] = {"error": traceback.format_exc()}
        out.write_text(json.dumps(doc, indent=1))
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
