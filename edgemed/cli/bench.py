"""``edgemed bench MODEL``: latency, throughput, stage breakdown, cold start, peak RSS and the
SDK's own overhead, for every backend/device this machine can run the model on.

SDK overhead is what a pipeline call adds beyond doing the same work by hand with the public
stages: the median of a full ``pipeline(x)`` minus the medians of its three parts done directly —
``pipeline.preprocess(x)``, the backend's ``run()`` on the very same preprocessed tensors, and
``pipeline.postprocess()`` on its outputs — as a fraction of the pipeline median. All four are
timed interleaved in one loop so machine noise hits them alike. The backend's own wrapper
around the runtime's call (error translation; OpenVINO's request pool and output copies) is
inside ``backend_run_p50_ms``, not in the overhead.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..backends import candidates, probe
from ..errors import BackendUnavailableError
from ..manifest import Manifest, load_manifest
from ..pipeline import Pipeline, load
from ..registry import find_model_dir
from ..tasks import task_spec

__all__ = ["bench_model", "cold_start"]


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


def _single(pipeline: Pipeline, item: object, n: int) -> dict[str, Any]:
    run, pre, post = pipeline.backend.run, pipeline.preprocess, pipeline.postprocess
    prepared = pre(item)
    outputs = run(prepared.tensors)
    for _ in range(10):  # warm-up: caches, lazy allocations, CPU frequency
        pipeline(item), run(prepared.tensors), pre(item), post(outputs, prepared.context)
    total, t_pre, t_run, t_post, stages = [], [], [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        result = pipeline(item)
        total.append(_ms(t0))
        stages.append(result.provenance.timings)
        del result  # freed outside the clock, as the batch loop does
        t0 = time.perf_counter()
        run(prepared.tensors)
        t_run.append(_ms(t0))
        t0 = time.perf_counter()
        pre(item)
        t_pre.append(_ms(t0))
        t0 = time.perf_counter()
        post(outputs, prepared.context)
        t_post.append(_ms(t0))
    p50 = statistics.median(total)
    parts = statistics.median(t_pre) + statistics.median(t_run) + statistics.median(t_post)
    return {
        "calls": n,
        "p50_ms": round(p50, 4),
        "p90_ms": round(_pct(total, 90), 4),
        "p99_ms": round(_pct(total, 99), 4),
        "p99_over_p50": round(_pct(total, 99) / p50, 3),
        "stages_p50_ms": {
            "preprocess": round(statistics.median(s.preprocess_ms for s in stages), 4),
            "inference": round(statistics.median(s.inference_ms for s in stages), 4),
            "postprocess": round(statistics.median(s.postprocess_ms for s in stages), 4),
        },
        "backend_run_p50_ms": round(statistics.median(t_run), 4),
        "by_hand_p50_ms": round(parts, 4),
        "sdk_overhead_ms": round(p50 - parts, 4),
        "sdk_overhead_fraction": round((p50 - parts) / p50, 4),
    }


def _batch(pipeline: Pipeline, items: list[object], repeats: int) -> dict[str, Any]:
    """Throughput of ``pipeline.batch`` and, for stacked models, overhead vs one backend call."""
    run, pre, post = pipeline.backend.run, pipeline.preprocess, pipeline.postprocess
    stacked = pipeline.manifest.rows_independent

    def by_hand() -> list[Any]:
        prepared = [pre(x) for x in items]
        if not stacked:
            return [post(run(p.tensors), p.context) for p in prepared]
        names = list(prepared[0].tensors)
        outputs = run({k: np.concatenate([p.tensors[k] for p in prepared]) for k in names})
        return [
            post({k: v[row : row + 1] for k, v in outputs.items()}, p.context)
            for row, p in enumerate(prepared)
        ]

    def ours() -> list[Any]:
        return pipeline.batch(items)

    # Latency is call -> results in hand: both sides keep their results until the clock has
    # stopped (freeing 64 results is the caller's later cost, not the call's).
    sdk: list[float] = []
    hand: list[float] = []
    ours(), by_hand()  # warm-up
    for i in range(repeats):  # alternate which goes first: neither always meets warm caches
        for call, times in ((ours, sdk), (by_hand, hand))[:: 1 if i % 2 else -1]:
            t0 = time.perf_counter()
            results = call()
            times.append(_ms(t0))
            del results
    p50, hand50 = statistics.median(sdk), statistics.median(hand)
    return {
        "batch": len(items),
        "stacked_into_one_call": stacked,
        "p50_ms": round(p50, 4),
        "items_per_s": round(len(items) / p50 * 1e3, 1),
        "by_hand_p50_ms": round(hand50, 4),
        "sdk_overhead_fraction": round((p50 - hand50) / p50, 4),
    }


def cold_start(model: str, backend: str, device: str, item: object) -> dict[str, Any]:
    """Process start -> first result in a fresh interpreter, and that process's peak RSS."""
    code = (
        "import json, resource, sys, time\n"
        "import edgemed\n"
        f"p = edgemed.load({model!r}, backend={backend!r}, device={device!r})\n"
        "item = json.loads(sys.stdin.read())\n"
        "p(item)\n"
        "print(json.dumps({'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    )
    payload = json.dumps(item)
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], input=payload, capture_output=True, text=True, check=True
    )
    elapsed = _ms(t0)
    return {"cold_start_ms": round(elapsed, 1), **json.loads(out.stdout.splitlines()[-1])}


def bench_model(
    model: str,
    *,
    n: int = 1000,
    batch: int = 64,
    item: object | None = None,
    backend: str = "auto",
    device: str = "auto",
    cold: bool = True,
    batch_repeats: int | None = None,
) -> dict[str, Any]:
    """Benchmark ``model`` on each usable backend/device (or the one named): ``n`` single
    calls, then ``batch_repeats`` (default ``n // 5``, at least 20) batches of ``batch``."""
    manifest: Manifest = load_manifest(find_model_dir(model))
    golden = task_spec(manifest).golden_inputs(manifest)
    item = golden[0] if item is None else item
    items = [golden[i % len(golden)] for i in range(batch)]
    hw = probe(runtimes=manifest.backends)
    usable, skipped = candidates(manifest, hw)
    report: dict[str, Any] = {
        "model": f"{manifest.id}@{manifest.version}",
        "edgemed": __version__,
        "machine": {"cpu": hw.cpu_model, "cores": hw.cpu_count, "flags": list(hw.cpu_flags)},
        "skipped": skipped,
        "runs": [],
    }
    for choice in usable:
        if backend not in ("auto", choice.backend) or device not in ("auto", choice.device):
            continue
        t0 = time.perf_counter()
        try:
            pipeline = load(model, backend=choice.backend, device=choice.device)
        except BackendUnavailableError as exc:  # listed by the runtime, but it did not start
            report["skipped"].append(f"{choice.backend}/{choice.device}: {exc}")
            continue
        with pipeline:
            load_ms = _ms(t0)
            run: dict[str, Any] = {
                "backend": choice.backend,
                "device": choice.device,
                "precision": manifest.precision,
                "load_ms_incl_golden_check": round(load_ms, 1),
                "single": _single(pipeline, item, n),
                "batch": _batch(pipeline, items, batch_repeats or max(20, n // 5)),
            }
        if cold and _json_able(item):
            run.update(cold_start(model, choice.backend, choice.device, item))
        report["runs"].append(run)
    return report


def _json_able(item: object) -> bool:
    try:
        json.dumps(item)
    except TypeError:
        return False
    return True


def write(report: dict[str, Any], path: Path | None) -> None:
    text = json.dumps(report, indent=2)
    if path is None:
        print(text)
    else:
        path.write_text(text + "\n")
