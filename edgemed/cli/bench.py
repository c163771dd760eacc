"""``edgemed bench MODEL``: latency, throughput, stage breakdown, cold start, peak RSS and the
SDK's own overhead, for every backend/device this machine can run the model on.

SDK overhead is what a pipeline call adds beyond doing the same work by hand with the public
stages: the median of a full ``pipeline(x)`` minus the median of its three parts chained by
hand — ``pipeline.preprocess(x)``, the backend's ``run()`` on its tensors and
``pipeline.postprocess()`` on the outputs, timed as one call as a caller would write them — as a
fraction of the pipeline median. The two alternate call by call (which goes first alternates
too), so machine noise hits them alike. The parts are chained, not timed apart and added:
a tiny model's ``run()`` takes 11-12 us when called back to back but 30 us right after a
preprocessing step (its code and data leave the caches meanwhile; tabular model, Zen 3 VM),
and by hand it runs after a preprocessing step just as it does inside the pipeline. The
backend's own wrapper around the runtime's call (error translation; OpenVINO's request pool and
output copies) is inside both sides, not in the overhead; ``backend_run_p50_ms`` is that call
alone, back to back.

Made for a person at a terminal: by default each backend/device gets an equal share of a time
budget (``seconds``, 60 s in the CLI) split between single calls and batches, so the whole run
takes about that long whatever the model's speed; ``n`` fixes the number of calls instead.
Progress and an estimate of the time left go to stderr (:class:`Progress`).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .._version import __version__
from ..backends import Choice, candidates, probe
from ..errors import BackendUnavailableError
from ..manifest import Manifest, load_manifest
from ..pipeline import Pipeline, load
from ..registry import find_model_dir
from ..tasks import task_spec

__all__ = ["Progress", "bench_model", "cold_start", "summary"]

MIN_CALLS = 20  # fewest single calls behind a percentile, whatever the budget
MIN_BATCHES = 3  # fewest batches (a batch of a model that is not stacked is 64 single calls)


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


class Progress:
    """One line per second at most on ``stream`` (stderr): what runs, how far it is, and the
    time left: the phases' remaining budgets, or (with a fixed count) the calls left at the
    pace measured so far. Silent when ``stream`` is None."""

    def __init__(self, stream: TextIO | None, model: str, planned_s: float) -> None:
        self.stream, self.model = stream, model
        self.start = time.perf_counter()
        self.after = planned_s  # seconds the phases after the current one will take
        self.later = 0.0  # of which the backends still to come
        self._last = 0.0

    def plan(self, after_s: float) -> None:
        """The time the phases after the one starting now will take (their budgets)."""
        self.after = after_s

    def tick(self, what: str, done: int, total: int | None, phase_end: float | None) -> None:
        now = time.perf_counter()
        if self.stream is None or (now - self._last < 1.0 and done != total):
            return
        self._last = now
        if phase_end is None and total and done:  # fixed count: pace so far
            phase_end = now + (now - self._phase_start) / done * (total - done)
        left = self.after + max(0.0, (phase_end or now) - now)
        count = f"{done}/{total}" if total else f"{done}"
        self.stream.write(
            f"edgemed bench {self.model}: {what} {count}, {now - self.start:.0f} s elapsed, "
            f"about {left:.0f} s left\n"
        )
        self.stream.flush()

    def phase(self) -> None:
        self._phase_start = time.perf_counter()


def _loop(
    n: int | None, seconds: float, what: str, progress: Progress | None, minimum: int
) -> Iterator[int]:
    """Indices 0, 1, ... : ``n`` of them, or (n None) as many as fit in ``seconds`` and at
    least ``minimum``; reports progress as it goes."""
    start = time.perf_counter()
    if progress is not None:
        progress.phase()
    deadline = start + seconds
    i = 0
    while (i < n) if n is not None else (i < minimum or time.perf_counter() < deadline):
        yield i
        i += 1
        if progress is not None:
            now = time.perf_counter()  # past the budget, the minimum still runs: at this pace
            end = max(deadline, now + (now - start) / i * (minimum - i))
            progress.tick(what, i, n, None if n is not None else end)


def _single(
    pipeline: Pipeline,
    item: object,
    n: int | None,
    seconds: float = 0.0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    run, pre, post = pipeline.backend.run, pipeline.preprocess, pipeline.postprocess
    prepared = pre(item)

    def by_hand() -> object:  # the three public stages chained, as a caller would write them
        p = pre(item)
        return post(run(p.tensors), p.context)

    for _ in range(10):  # warm-up: caches, lazy allocations, CPU frequency
        pipeline(item), by_hand(), run(prepared.tensors)
    total, hand, t_run, stages = [], [], [], []
    what = f"{pipeline.backend.name}/{pipeline.backend.device} single calls"
    for i in _loop(n, seconds, what, progress, MIN_CALLS):
        for ours in (True, False)[:: 1 if i % 2 else -1]:  # alternate which goes first
            t0 = time.perf_counter()
            if ours:
                result = pipeline(item)
                total.append(_ms(t0))
                stages.append(result.provenance.timings)
                del result  # freed outside the clock, as the batch loop does
            else:
                built = by_hand()
                hand.append(_ms(t0))
                del built
        t0 = time.perf_counter()
        run(prepared.tensors)
        t_run.append(_ms(t0))
    p50, parts = statistics.median(total), statistics.median(hand)
    return {
        "calls": len(total),
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


def _batch(
    pipeline: Pipeline,
    items: list[object],
    repeats: int | None,
    seconds: float = 0.0,
    progress: Progress | None = None,
) -> dict[str, Any]:
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
    what = f"{pipeline.backend.name}/{pipeline.backend.device} batches of {len(items)}"
    for i in _loop(repeats, seconds, what, progress, MIN_BATCHES):  # alternate the first
        for call, times in ((ours, sdk), (by_hand, hand))[:: 1 if i % 2 else -1]:
            t0 = time.perf_counter()
            results = call()
            times.append(_ms(t0))
            del results
    p50, hand50 = statistics.median(sdk), statistics.median(hand)
    return {
        "batch": len(items),
        "repeats": len(sdk),
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
    n: int | None = 1000,
    batch: int = 64,
    item: object | None = None,
    backend: str = "auto",
    device: str = "auto",
    cold: bool = True,
    batch_repeats: int | None = None,
    seconds: float = 60.0,
    progress: TextIO | None = None,
) -> dict[str, Any]:
    """Benchmark ``model`` on each usable backend/device (or the one named): ``n`` single
    calls, then ``batch_repeats`` (default ``n // 5``, at least 20) batches of ``batch``.

    With ``n=None`` the run is sized by time instead: each backend/device gets an equal share
    of ``seconds``; what its load (golden check included) and cold start leave of it goes 55 %
    to single calls and 45 % to batches (at least MIN_CALLS calls and MIN_BATCHES batches).
    Progress and the time left are written to ``progress`` (e.g. sys.stderr)."""
    manifest: Manifest = load_manifest(find_model_dir(model))
    golden = task_spec(manifest).golden_inputs(manifest)
    item = golden[0] if item is None else item
    items = [golden[i % len(golden)] for i in range(batch)]
    hw = probe(runtimes=manifest.backends)
    usable, skipped = candidates(manifest, hw)
    chosen = [c for c in usable if backend in ("auto", c.backend) and device in ("auto", c.device)]
    report: dict[str, Any] = {
        "model": f"{manifest.id}@{manifest.version}",
        "edgemed": __version__,
        "machine": {"cpu": hw.cpu_model, "cores": hw.cpu_count, "flags": list(hw.cpu_flags)},
        "skipped": skipped,
        "runs": [],
    }
    share = seconds / max(1, len(chosen))
    prog = Progress(progress, manifest.id, seconds if n is None else 0.0)
    for i, choice in enumerate(chosen):
        prog.later = share * (len(chosen) - i - 1) if n is None else 0.0
        try:
            run = _bench_choice(model, choice, item, items, n, batch_repeats, share, cold, prog)
        except BackendUnavailableError as exc:  # listed by the runtime, but it did not start
            report["skipped"].append(f"{choice.backend}/{choice.device}: {exc}")
            continue
        report["runs"].append(run)
    return report


def _bench_choice(
    model: str,
    choice: Choice,
    item: object,
    items: list[object],
    n: int | None,
    batch_repeats: int | None,
    share: float,
    cold: bool,
    prog: Progress,
) -> dict[str, Any]:
    """One backend/device: load, single calls, batches, cold start."""
    t0 = time.perf_counter()
    pipeline = load(model, backend=choice.backend, device=choice.device)
    with pipeline:
        load_ms = _ms(t0)
        # the cold start (a fresh process: imports, load, golden check) takes about a load more
        work = max(share - 2 * load_ms / 1e3 - 1.0, 0.3 * share)
        manifest = pipeline.manifest
        cold_s = load_ms / 1e3 + 1.0 if cold else 0.0
        prog.plan(0.45 * work + cold_s + prog.later)
        single = _single(pipeline, item, n, 0.55 * work, prog)
        prog.plan(cold_s + prog.later)
        repeats = batch_repeats or (None if n is None else max(20, n // 5))
        run: dict[str, Any] = {
            "backend": choice.backend,
            "device": choice.device,
            "precision": manifest.precision,
            "load_ms_incl_golden_check": round(load_ms, 1),
            "single": single,
            "batch": _batch(pipeline, items, repeats, 0.45 * work, prog),
        }
    if cold and _json_able(item):
        prog.tick(f"{choice.backend}/{choice.device} cold start", 0, None, None)
        run.update(cold_start(model, choice.backend, choice.device, item))
    return run


def summary(report: dict[str, Any]) -> str:
    """The report as a few lines for a person; ``--json`` prints the whole report instead."""
    lines = [
        f"{report['model']} on {report['machine']['cpu']} ({report['machine']['cores']} cores)"
    ]
    for run in report["runs"]:
        s, b = run["single"], run["batch"]
        cold = f", cold start {run['cold_start_ms']:.0f} ms" if "cold_start_ms" in run else ""
        lines.append(
            f"  {run['backend']}/{run['device']} ({run['precision']}): single p50 "
            f"{s['p50_ms']:.3f} ms, p99 {s['p99_ms']:.3f} ms ({s['calls']} calls), SDK overhead "
            f"{100 * s['sdk_overhead_fraction']:.1f} %; batch of {b['batch']}: "
            f"{b['items_per_s']:,.0f} items/s ({b['repeats']} batches){cold}"
        )
    lines += [f"  skipped {why}" for why in report["skipped"]]
    return "\n".join(lines)


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
