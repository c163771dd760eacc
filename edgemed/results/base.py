"""What every result carries: provenance, stage timings, signal window; the Result protocol."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, fields
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from ..contracts import ContractError, check_result_body
from ..errors import ModelError

__all__ = [
    "ModelUse",
    "Provenance",
    "Result",
    "ResultBuilder",
    "SignalWindow",
    "Timings",
    "all_finite",
    "assembled",
    "check_contract",
    "deferred",
    "finish_batch",
    "model_fields",
    "stage_timings",
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
class ModelUse:
    """One model of a bundle as it ran: its artifact role, the sha256 the manifest records for
    that artifact, and the runtime and device it really ran on. ``Provenance.components``
    lists the further models that contributed to a result (a monitor reader's recogniser
    beside its detector)."""

    role: str  # the manifest artifact role, e.g. "recognizer"
    sha256: str
    backend: str  # "onnxruntime" | "openvino"
    device: str  # "cpu", "cuda", "tensorrt", "npu", "gpu"

    def body(self) -> dict[str, str]:
        """Its object in the wire payload's ``model.components``."""
        return {
            "role": self.role,
            "sha256": self.sha256,
            "backend": self.backend,
            "device": self.device,
        }


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """Which model, runtime and input produced a result (never any patient identifier).

    ``model_*``, ``backend`` and ``device`` name the bundle's main model; ``components`` every
    further model that contributed (empty for single-model tasks), so the provenance names
    every model a result depends on."""

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
    components: tuple[ModelUse, ...] = ()
    # How the backend was chosen where it was measured on this machine (edgemed/backends/autotune.py),
    # e.g. "measured: onnxruntime/cpu 1.84 ms, openvino/cpu 2.61 ms"; "" otherwise.
    selection: str = ""


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


T = TypeVar("T")
R = TypeVar("R", bound=Result)


def assembled(cls: type[T], values: dict[str, Any]) -> T:
    """An instance of the frozen dataclass ``cls`` from its complete field dict, which
    becomes the instance's dict, without running ``__init__`` (one ``object.__setattr__``
    per field: the cost :func:`deferred` and :func:`finish_batch` avoid on the per-row batch
    path, and the pipeline for each call's Timings and Provenance, 1.6 and 6.6 us of a
    tabular model's ~90 us call on the Zen 3 VM)."""
    obj = object.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    return obj


class ModelNames(Protocol):
    """What :func:`model_fields` reads of a manifest."""

    @property
    def id(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def model_sha256(self) -> str: ...
    @property
    def precision(self) -> str: ...


def model_fields(manifest: ModelNames, edgemed_version: str) -> dict[str, str]:
    """The provenance fields that name the model and the SDK, fixed for a loaded pipeline."""
    return {
        "model_id": manifest.id,
        "model_version": manifest.version,
        "model_sha256": manifest.model_sha256,
        "precision": manifest.precision,
        "edgemed_version": edgemed_version,
    }


def stage_timings(preprocess_ms: float, inference_ms: float, postprocess_ms: float) -> Timings:
    """``Timings(...)`` for the per-call path (see :func:`assembled`)."""
    return assembled(
        Timings,
        {
            "preprocess_ms": preprocess_ms,
            "inference_ms": inference_ms,
            "postprocess_ms": postprocess_ms,
        },
    )


_FIELDS: dict[type, tuple[frozenset[str], dict[str, Any]]] = {}
_SPENT: dict[str, Any] = {}  # a builder's values once finish_batch has taken them over


class _Deferred(Generic[R]):
    """A result of type ``cls`` with every field but its provenance (see :func:`deferred`)."""

    __slots__ = ("cls", "values")

    def __init__(self, cls: type[R], values: dict[str, Any]) -> None:
        self.cls, self.values = cls, values

    def __call__(self, *, provenance: Provenance) -> R:
        if self.values is _SPENT:
            raise RuntimeError(f"this {self.cls.__name__} builder was already used up")
        values = self.values.copy()
        values["provenance"] = provenance
        return assembled(self.cls, values)


def deferred(cls: type[R], **values: Any) -> ResultBuilder:
    """What a postprocessor returns: the frozen result ``cls`` waiting for its provenance.

    Fills the instance dict directly instead of running the frozen dataclass ``__init__``
    (one ``object.__setattr__`` per field): measured 5x cheaper, and ``Pipeline.batch`` builds
    one result per row of a tabular batch, where that ``__init__`` cost more than the row's
    share of inference. Result types therefore must not define ``__post_init__``; every field
    except ``provenance`` must be given or have a default (checked here, as ``__init__`` would).
    """
    known = _FIELDS.get(cls)
    if known is None:
        if hasattr(cls, "__post_init__"):
            raise TypeError(f"{cls.__name__} has __post_init__: build it with its __init__")
        every = {f.name: f.default for f in fields(cls)}  # type: ignore[arg-type]
        defaults = {k: v for k, v in every.items() if v is not MISSING}
        known = _FIELDS[cls] = (frozenset(every) - {"provenance"}, defaults)
    names, defaults = known
    if values.keys() | defaults.keys() != names:
        raise TypeError(f"{cls.__name__}: fields {sorted(names)} expected, got {sorted(values)}")
    return _Deferred(cls, {**defaults, **values} if defaults else values)


class BatchInput(Protocol):
    """What :func:`finish_batch` needs of each row's input (``preprocess.Prepared`` has it)."""

    @property
    def input_sha256(self) -> str: ...

    @property
    def input_kind(self) -> str: ...


def all_finite(arr: np.ndarray) -> bool:
    """No NaN or infinity in a model output (non-float outputs pass). A tabular model's one
    or two numbers are checked in Python, ~4x faster than NumPy's pass at that size."""
    if arr.dtype.kind != "f":
        return True
    if arr.size <= 16:
        return all(map(math.isfinite, arr.ravel().tolist()))
    return bool(np.isfinite(arr).all())


def check_contract(result: Result, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Raise ModelError unless ``result`` lies within its kind's declared ranges
    (``edgemed/contracts.py``: the same definitions the fleet checks on ingest). A model that
    emits a probability of 1.7, a NEWS2 of 21 or a NaN embedding is broken: better no result
    than a wrong one synced to the ward. Returns the body it checked (``body`` if given)."""
    body = result.body() if body is None else body
    try:
        check_result_body(str(body.get("kind")), body)
    except ContractError as exc:
        p = result.provenance
        raise ModelError(
            f"{p.model_id}@{p.model_version} on {p.backend}/{p.device} produced a result "
            f"outside its contract, withheld: {exc}"
        ) from exc
    return body


def finish_batch(
    builders: Sequence[ResultBuilder], shared: Provenance, inputs: Sequence[BatchInput]
) -> list[Result]:
    """Each row's result of one batch: ``shared`` provenance (model, backend, timings, time)
    with that row's own input hash and kind. The builders are used up: pass only builders
    made for this one call (``Pipeline.batch`` does).

    One pass that fills instance dicts instead of running frozen ``__init__``s: a tabular
    row's share of inference is a few microseconds, and building its provenance and result
    the ordinary way cost more than that (measured per 64 rows: 60 us that way, 32 us here,
    the cost of two objects and two dicts per row).
    """
    if len(builders) != len(inputs):
        raise ValueError(f"{len(builders)} results for {len(inputs)} inputs")
    common = shared.__dict__
    # assembled's two steps, written out: calling it twice per row cost 7 us more per 64 rows
    # (measured in Pipeline.batch), about 1 % of a tabular batch.
    new, put = object.__new__, object.__setattr__
    results: list[Result] = []
    for build, row in zip(builders, inputs, strict=False):  # lengths checked above
        fields_ = common.copy()
        fields_["input_sha256"] = row.input_sha256
        fields_["input_kind"] = row.input_kind
        provenance = new(Provenance)
        put(provenance, "__dict__", fields_)
        if type(build) is _Deferred:
            values = build.values  # taken over, not copied: the builder is spent
            if values is _SPENT:
                raise RuntimeError(f"this {build.cls.__name__} builder was already used up")
            values["provenance"] = provenance
            result = new(build.cls)
            put(result, "__dict__", values)
            build.values = _SPENT
            results.append(result)
        else:  # a builder written without deferred(): its own way
            results.append(build(provenance=provenance))
    return results


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
