"""Which backend serves a model fastest on this machine: measured once, remembered.

With the backend and device left to the selection, the first ``load()`` of a model that more
than one backend/device can serve here times each of them on the bundle's golden inputs (the
inputs the golden check runs anyway; rounds interleaved, median) and serves from the fastest
whose golden vectors hold. The figures are kept in ``<cache dir>/autotune.json`` under a key
of everything that can change them: the model's artifacts, the CPU and GPU, the runtimes'
versions and the thread count; a later load on the same machine reads them and measures
nothing. ``EDGEMED_AUTOTUNE=0`` (or ``off``/``false``/``no``) turns it off: the manifest's
order decides, as the recipe measured it on its machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import cache_dir
from ..hardware import HardwareInfo, cpu_family
from ..manifest import Manifest

__all__ = ["Timing", "Tuned", "enabled", "forget", "key", "recall", "remember", "time_rounds"]

ENV = "EDGEMED_AUTOTUNE"
BUDGET_S = 2.0  # time spent measuring all candidates, beyond their load and golden check
MAX_ROUNDS = 7
_RUNTIME_DISTS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "openvino")


@dataclass(frozen=True, kw_only=True)
class Timing:
    backend: str
    device: str
    ms_per_input: float  # median over the rounds of one round's time / golden inputs


@dataclass(frozen=True, kw_only=True)
class Tuned:
    """The measured choice: the fastest candidate and every candidate's figure."""

    backend: str
    device: str
    timings: tuple[Timing, ...]
    measured_at: float  # Unix time

    def summary(self) -> str:
        """For each result's provenance (short: it travels with every result)."""
        return "measured: " + ", ".join(
            f"{t.backend}/{t.device} {t.ms_per_input:.3g} ms" for t in self.timings
        )

    def reason(self) -> str:
        figures = ", ".join(f"{t.backend}/{t.device} {t.ms_per_input:.3g} ms" for t in self.timings)
        day = time.strftime("%Y-%m-%d", time.gmtime(self.measured_at))
        return f"measured fastest here ({figures} per golden input; {day})"


def enabled() -> bool:
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "off", "false", "no")


def key(manifest: Manifest, hw: HardwareInfo, threads: int | None) -> str:
    """Everything a timing depends on, hashed: the bundle's artifacts, the machine, the
    runtimes' versions, the thread count."""
    parts: dict[str, Any] = {
        "model": [manifest.id, manifest.version, sorted(manifest.backends)],
        "artifacts": sorted((role, a.sha256) for role, a in manifest.artifacts.items()),
        "cpu": [hw.cpu_model, cpu_family(), hw.cpu_count],
        "gpu": [hw.gpu_name, hw.jetson_model, hw.intel_npu, hw.intel_igpu],
        "devices": [list(hw.onnxruntime_providers), list(hw.openvino_devices)],
        "runtimes": {d: _version(d) for d in _RUNTIME_DISTS},
        "threads": threads,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _path() -> Path:
    return cache_dir() / "autotune.json"


def _read() -> dict[str, Any]:
    try:
        data = json.loads(_path().read_text())
    except (OSError, ValueError):  # absent or unreadable: measure again, never fail a load
        return {}
    return data if isinstance(data, dict) else {}


def _write(data: dict[str, Any]) -> None:
    """Atomically (a concurrent load reads the old or the new file, never half of one). Two
    processes measuring at once: the last writer's figures stay, both are valid."""
    path = _path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".autotune-")
    except OSError:  # a read-only cache: the measurement holds for this process only
        return
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:  # a full disk: the same, and no half-written file left behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def recall(k: str) -> Tuned | None:
    entry = _read().get(k)
    if not isinstance(entry, dict):
        return None
    try:
        return Tuned(
            backend=str(entry["backend"]),
            device=str(entry["device"]),
            timings=tuple(Timing(**t) for t in entry["timings"]),
            measured_at=float(entry["measured_at"]),
        )
    except (TypeError, KeyError, ValueError):
        return None


def remember(k: str, tuned: Tuned) -> None:
    data = _read()
    data[k] = {
        "backend": tuned.backend,
        "device": tuned.device,
        "timings": [vars(t) for t in tuned.timings],
        "measured_at": tuned.measured_at,
    }
    _write(data)


def forget(k: str) -> None:
    data = _read()
    if data.pop(k, None) is not None:
        _write(data)


def time_rounds(runs: Sequence[Callable[[], object]], inputs: int) -> list[float]:
    """Milliseconds per input of each run: rounds interleaved (each round runs every
    candidate once, so load on the machine falls on all alike) until the budget is spent or
    ``MAX_ROUNDS``, at least one; the median round of each."""
    rounds: list[list[float]] = [[] for _ in runs]
    start = time.perf_counter()
    while len(rounds[0]) < MAX_ROUNDS:
        for run, times in zip(runs, rounds, strict=True):
            t0 = time.perf_counter()
            run()
            times.append((time.perf_counter() - t0) * 1000 / max(1, inputs))
        if time.perf_counter() - start > BUDGET_S:
            break
    return [statistics.median(times) for times in rounds]
