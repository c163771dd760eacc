"""What every result carries: provenance, stage timings, signal window; the Result protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "Provenance",
    "Result",
    "ResultBuilder",
    "SignalWindow",
    "Timings",
]


@dataclass(frozen=True, kw_only=True)
class Timings:
    """Wall time per pipeline stage, milliseconds."""

    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.inference_ms + self.postprocess_ms


@dataclass(frozen=True, kw_only=True)
class SignalWindow:
    """Where a streamed input window lies in its source signal."""

    start_sample: int  # index of the window's first sample since the stream began
    samples: int
    sampling_rate_hz: float
    start_time: float  # Unix time of the first sample (device clock, or the source's clock)

    @property
    def end_time(self) -> float:
        return self.start_time + self.samples / self.sampling_rate_hz

    def body(self) -> dict[str, Any]:
        return {
            "start_sample": self.start_sample,
            "samples": self.samples,
            "sampling_rate_hz": self.sampling_rate_hz,
            "start_time": self.start_time,
        }


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """Which model, runtime and input produced a result (never any patient identifier)."""

    model_id: str
    model_version: str
    model_sha256: str
    backend: str
    device: str
    precision: str
    input_sha256: str
    input_kind: str
    timings: Timings
    edgemed_version: str
    created_at: float  # Unix time on the device clock
    window: SignalWindow | None = None  # set for results of Pipeline.stream

    def for_input(self, input_sha256: str, input_kind: str) -> Provenance:
        """The same provenance for another input of one batch (rows share model, backend,
        timings and time). Copies the fields instead of re-running the frozen ``__init__``,
        which costs more per row than a tabular model's whole inference."""
        clone = object.__new__(Provenance)
        clone.__dict__.update(self.__dict__, input_sha256=input_sha256, input_kind=input_kind)
        return clone


class Result(Protocol):
    """What every result type offers: its kind, provenance and a JSON body for the wire."""

    @property
    def kind(self) -> str: ...

    @property
    def provenance(self) -> Provenance: ...

    def body(self) -> dict[str, Any]:
        """The wire payload's ``result`` object (JSON-able, no patient identifiers)."""
        ...

    def summary(self) -> dict[str, Any]:
        """A short JSON-able view for printing."""
        ...


class ResultBuilder(Protocol):
    """A postprocessor's output: the result, still waiting for its provenance."""

    def __call__(self, *, provenance: Provenance) -> Result: ...


def timings_summary(p: Provenance) -> dict[str, Any]:
    return {
        "model": f"{p.model_id}@{p.model_version}",
        "backend": f"{p.backend}/{p.device}/{p.precision}",
        "timings_ms": {
            "preprocess": round(p.timings.preprocess_ms, 3),
            "inference": round(p.timings.inference_ms, 3),
            "postprocess": round(p.timings.postprocess_ms, 3),
        },
    }
