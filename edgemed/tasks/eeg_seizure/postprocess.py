"""Stage 4 for the iEEG seizure model: per-0.5 s class probabilities -> SeizureProbability.

The model returns ``probs`` (n_columns, batch, 4), a softmax over 4 classes per 0.5 s column;
class ``seizure_class_index`` (3) is seizure. Column ``j`` describes the 1 s of signal centred
``(j + 1) * 0.5`` s after the window's first sample. As in the package's
``predict_channel_seizure_probability``, ``discard_edges_s`` at each window edge are ignored (the
BiLSTM has little context there). Of the kept interior, the **newest** ``report_s`` seconds are
reported, so a stream whose hop equals ``report_s`` reports every 0.5 s column exactly once, about
``discard_edges_s`` to ``discard_edges_s + report_s`` seconds after it was recorded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ... import kernels
from ...errors import InputError, ManifestError, ModelError
from ...manifest import Manifest, parse_section
from ...results import Result, ResultBuilder, SeizureProbability, deferred
from ..golden import golden_limits
from .preprocess import EEGContext

__all__ = [
    "SeizureEpisode",
    "SeizurePostprocess",
    "SeizurePostprocessor",
    "golden_check",
    "seizure_episodes",
]


@dataclass(frozen=True, kw_only=True)
class SeizurePostprocess:
    """The manifest's ``postprocess`` section for the seizure model."""

    output: str  # "probs"
    seizure_class_index: int
    threshold: float
    discard_edges_s: float
    report_s: float


class SeizurePostprocessor:
    def __init__(self, manifest: Manifest) -> None:
        c = parse_section(SeizurePostprocess, manifest.postprocess, "manifest.postprocess")
        if not 0.0 <= c.threshold <= 1.0:
            raise ManifestError("manifest.postprocess.threshold: must be in [0, 1]")
        window_s = int(manifest.preprocess["window_samples"]) / int(
            manifest.preprocess["sampling_rate_hz"]
        )
        n_cols = round(2 * window_s) - 1
        e2, r2 = round(2 * c.discard_edges_s), round(2 * c.report_s)
        if e2 != 2 * c.discard_edges_s or r2 != 2 * c.report_s or e2 < 0 or r2 < 1:
            raise ManifestError("manifest.postprocess: edges and report must be multiples of 0.5 s")
        if r2 > n_cols - 2 * e2:
            raise ManifestError("manifest.postprocess.report_s: longer than the kept interior")
        self.config = c
        self.n_columns = n_cols
        self.hi = n_cols - e2  # reported columns [lo, hi)
        self.lo = self.hi - r2

    def column_probabilities(self, outputs: Mapping[str, npt.NDArray[Any]]) -> npt.NDArray[Any]:
        """Seizure probability of every column of the (single) window, (n_columns,)."""
        probs = outputs[self.config.output]
        if probs.ndim != 3 or probs.shape[0] != self.n_columns or probs.shape[1] != 1:
            raise ModelError(
                f"model output {self.config.output!r}: expected ({self.n_columns}, 1, classes), "
                f"got {probs.shape}"
            )
        return np.asarray(probs[:, 0, self.config.seizure_class_index], dtype=np.float64)

    def __call__(
        self, outputs: Mapping[str, npt.NDArray[Any]], context: EEGContext
    ) -> ResultBuilder:
        c = self.config
        p = self.column_probabilities(outputs)[self.lo : self.hi]
        valid = context.valid_columns[self.lo : self.hi]
        # Flat columns are "not evaluated": they never lower or raise the reported maximum.
        probability = float(np.clip(p[valid].max(), 0.0, 1.0)) if valid.any() else 0.0
        return deferred(
            SeizureProbability,
            probability=probability,
            threshold=c.threshold,
            seizure=bool(valid.any()) and probability >= c.threshold,
            segment_start_s=(self.lo + 1) * 0.5,
            segment_end_s=(self.hi + 1) * 0.5,
            trace=tuple(float(v) if ok else None for v, ok in zip(p, valid, strict=True)),
            evaluated_fraction=float(valid.mean()),
        )


def golden_check(manifest: Manifest, results: Sequence[Result], cpu_family: str) -> list[str]:
    """Reported traces on the golden windows against the bundle's (max |diff|, decisions)."""
    expected = np.load(manifest.path("golden_outputs"), allow_pickle=False)  # (n, report cols)
    got = [r for r in results if isinstance(r, SeizureProbability)]
    if len(got) != len(results) or expected.ndim != 2 or len(got) != expected.shape[0]:
        return [f"golden: got {len(got)} seizure results, expected {expected.shape[0]}"]
    traces = np.array([[np.nan if v is None else v for v in r.trace] for r in got])
    if traces.shape != expected.shape:
        return [f"golden: got traces {traces.shape}, expected {expected.shape}"]
    tol, problems = golden_limits(manifest, results, cpu_family), []
    worst = float(np.nanmax(np.abs(traces - expected)))
    if not np.array_equal(np.isnan(traces), np.isnan(expected)) or worst > tol.max_abs_diff:
        problems.append(f"golden: max |diff| {worst:.4g} > {tol.max_abs_diff}")
    threshold = float(manifest.postprocess["threshold"])
    agree = float(
        np.mean((np.nan_to_num(traces) >= threshold) == (np.nan_to_num(expected) >= threshold))
    )
    if tol.min_label_agreement is not None and agree < tol.min_label_agreement:
        problems.append(f"golden: decision agreement {agree:.3f} < {tol.min_label_agreement}")
    return problems


@dataclass(frozen=True, kw_only=True)
class SeizureEpisode:
    """A run of 0.5 s columns whose seizure probability crossed ``high`` (hysteresis)."""

    start_time: float  # Unix time, centre of the first column at or above ``high``
    end_time: float  # centre of the first column after the episode (exclusive)
    peak_probability: float
    peak_time: float


def _stream_grid(
    results: Iterable[SeizureProbability],
) -> tuple[npt.NDArray[np.float32], float, int, float] | None:
    """Reported traces on the stream's 0.5 s grid: (trace with NaN where not evaluated or not
    covered, Unix time of stream sample 0, grid index of trace[0], threshold)."""
    columns: dict[int, float] = {}
    origin: float | None = None
    threshold = 0.5
    for r in results:
        w = r.provenance.window
        if w is None:
            raise InputError("seizure_episodes needs results of Pipeline.stream (with a window)")
        if origin is None:
            origin = w.start_time - w.start_sample / w.sampling_rate_hz
        threshold = r.threshold
        k0 = round(2 * (w.start_sample / w.sampling_rate_hz + r.segment_start_s))
        for i, v in enumerate(r.trace):
            value = math.nan if v is None else v
            columns[k0 + i] = max(columns.get(k0 + i, value), value)
    if origin is None:
        return None
    first = min(columns)
    trace = np.full(max(columns) - first + 1, np.nan, dtype=np.float32)
    for k, v in columns.items():
        trace[k - first] = v
    return trace, origin, first, threshold


def seizure_episodes(
    results: Iterable[SeizureProbability],
    *,
    high: float | None = None,
    low: float | None = None,
    min_duration_s: float = 0.0,
    min_gap_s: float = 0.0,
) -> list[SeizureEpisode]:
    """Episodes over the reported traces of ``Pipeline.stream`` results (C++ hysteresis kernel).

    Columns are placed on the stream's 0.5 s grid from each result's window; where windows
    overlap (a hop shorter than ``report_s``) the larger value wins, as in the package's offline
    trace. Columns that were not evaluated (flat signal) or not covered split the trace: an
    episode never spans them. ``high`` defaults to the results' threshold, ``low`` to ``high``.
    """
    grid = _stream_grid(results)
    if grid is None:
        return []
    trace, origin, first, threshold = grid
    hi = threshold if high is None else high
    lo = hi if low is None else low
    episodes: list[SeizureEpisode] = []
    finite = np.concatenate([[False], np.isfinite(trace), [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(finite))
    for a, b in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):  # finite [a, b)
        found = kernels.detect_events(
            trace[a:b],
            hi,
            lo,
            min_duration=math.ceil(2 * min_duration_s),
            min_gap=math.ceil(2 * min_gap_s),
        )
        k = first + a
        for s, e, p, v in zip(
            found.start.tolist(),
            found.end.tolist(),
            found.peak_index.tolist(),
            found.peak_value.tolist(),
            strict=True,
        ):
            episodes.append(
                SeizureEpisode(
                    start_time=origin + (k + s) / 2,
                    end_time=origin + (k + e) / 2,
                    peak_probability=float(v),
                    peak_time=origin + (k + p) / 2,
                )
            )
    return episodes
