"""Composition root of stages 1-5: input -> preprocess -> backend -> postprocess -> result."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence, Set
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__
from .backends import Backend, Choice, autotune, candidates, probe
from .backends.start import FurtherModels, open_first
from .errors import (
    BackendUnavailableError,
    GoldenMismatchError,
    InputError,
    ManifestError,
    ModelError,
)
from .hardware import HardwareInfo, cpu_family
from .io.files import Signal
from .io.rates import RatePlan, block_rate
from .io.windows import Windower, stream_windower
from .manifest import Manifest, load_manifest
from .registry import find_model_dir
from .results import (
    Provenance,
    Result,
    ResultBuilder,
    SignalWindow,
    TabularTable,
    Timings,
    finish_batch,
)
from .results.base import all_finite, assembled, check_contract, model_fields, stage_timings
from .tasks import Prepared, task_spec
from .trust import TrustPolicy, Verified, check_bundle, record, resolve_policy

__all__ = ["Pipeline", "load"]

log = logging.getLogger(__name__)


class Pipeline:
    """A loaded model ready to run; safe to call from several threads at once.

    Nothing mutable is shared between calls: each call's tensors and context travel with it,
    ONNX Runtime sessions are thread-safe, and the OpenVINO backend hands each call its own
    infer request.
    """

    def __init__(
        self, manifest: Manifest, backend: Backend, *, choice: Choice, further: FurtherModels
    ) -> None:
        self.manifest = manifest
        self.backend = backend
        self.choice = choice  # which backend/device serves this model, and why
        # In every result's provenance: how the backend was chosen when it was measured here
        # (backends/autotune.py), "" when the manifest's order or the caller decided.
        self.selection = ""
        self._further = further
        self._model_fields = model_fields(manifest, __version__)  # in every provenance
        self._task = task_spec(manifest)
        self._pre, self._post = self._task.processors(manifest, further.open)
        if further.fallbacks:  # said where `edgemed doctor`, bench and callers read the choice
            self.choice = replace(choice, reason=f"{choice.reason}; {'; '.join(further.fallbacks)}")

    def __call__(self, item: object) -> Result:
        """preprocess -> backend.run -> postprocess -> result."""
        return self._run(item, None)

    def _run(self, item: object, window: SignalWindow | None) -> Result:
        t0 = time.perf_counter()
        prepared = self._pre(item)
        return self._infer(prepared, (time.perf_counter() - t0) * 1e3, window)

    def _infer(
        self, prepared: Prepared, preprocess_ms: float, window: SignalWindow | None
    ) -> Result:
        """backend.run -> postprocess -> result, for an input already preprocessed."""
        t1 = time.perf_counter()
        outputs = self._finite(self.backend.run(prepared.tensors))
        t2 = time.perf_counter()
        build = self._post(outputs, prepared.context)
        t3 = time.perf_counter()
        timings = stage_timings(preprocess_ms, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        result = build(provenance=self._provenance(prepared, timings, window))
        check_contract(result)
        return result

    def _finite(self, outputs: dict[str, Any]) -> dict[str, Any]:
        """A NaN or infinity out of the model is the model's fault (a broken engine, an
        overflow in a quantised layer), never the caller's: ModelError, before any
        postprocessing can turn it into a plausible-looking number."""
        for name, arr in outputs.items():
            if not all_finite(arr):
                m = self.manifest
                raise ModelError(
                    f"{m.id}@{m.version} on {self.backend.name}/{self.backend.device}: output "
                    f"{name!r} contains NaN or infinity; result withheld"
                )
        return outputs

    def preprocess(self, item: object) -> Prepared:
        """Stage 2 alone: the exact tensors ``__call__`` would hand the backend."""
        return self._pre(item)

    def postprocess(self, outputs: dict[str, Any], context: Any) -> ResultBuilder:
        """Stage 4 alone: the builder ``__call__`` makes from the backend's ``outputs`` for an
        input whose :meth:`preprocess` gave ``context``; call it with ``provenance=``."""
        return self._post(outputs, context)

    def batch(self, items: Sequence[object]) -> list[Result]:
        """Run several inputs; results are exactly those of calling the pipeline on each.

        Models whose manifest declares ``rows_independent`` (FP32 or static INT8: a row's
        output never depends on its neighbours) run as one stacked backend call. Others run
        one call per input on purpose: dynamic INT8 quantises activations per tensor, so a
        padded batch would change each result (measured on the text model: cosine 0.990
        against the same text run alone). A result must not change with what else was queued.
        Graphs whose batch axis is fixed (an export for batch 1) also run one call per input.
        """
        if len(items) < 2 or not self._stacks_rows():
            return [self(item) for item in items]
        t0 = time.perf_counter()
        many = getattr(self._pre, "many", None)  # a task may prepare a batch at once
        prepared: list[Prepared] = (
            many(items) if many is not None else [self._pre(item) for item in items]
        )
        t1 = time.perf_counter()
        try:
            stacked = {
                n: np.concatenate([p.tensors[n] for p in prepared]) for n in prepared[0].tensors
            }
        except ValueError:  # ragged inputs cannot be stacked: one call each, no re-preprocessing
            per_item_ms = (t1 - t0) * 1e3 / len(items)
            return [self._infer(p, per_item_ms, None) for p in prepared]
        outputs = self._finite(self.backend.run(stacked))
        t2 = time.perf_counter()
        post = self._post
        builders = [
            post({k: v[row : row + 1] for k, v in outputs.items()}, p.context)
            for row, p in enumerate(prepared)
        ]
        t3 = time.perf_counter()
        n = len(items)  # each result carries its share of the batch's stage times
        timings = Timings(
            preprocess_ms=(t1 - t0) * 1e3 / n,
            inference_ms=(t2 - t1) * 1e3 / n,
            postprocess_ms=(t3 - t2) * 1e3 / n,
        )
        results = finish_batch(builders, self._provenance(prepared[0], timings, None), prepared)
        for result in results:
            check_contract(result)
        return results

    def _stacks_rows(self) -> bool:
        """Whether inputs may share one backend call (see :meth:`batch`)."""
        fixed = any(s.shape and isinstance(s.shape[0], int) for s in self.manifest.inputs)
        return self.manifest.rows_independent and not fixed

    def table(self, rows: object) -> TabularTable:
        """Many rows of a tabular model in one call, as columns with one provenance
        (``input_sha256`` of the whole float32 table): ``batch(rows)``'s values, cheaply.

        ``rows``: rows as the pipeline takes one, or a 2-D numeric array in manifest order, each
        checked as a single call checks it (InputError names the first bad row). ``.results()``
        gives each row's own result for the outbox. Rows share one backend call where
        :meth:`batch` would stack them; the contract is checked by ``contract_rows``."""
        table_in, table_out = getattr(self._pre, "table", None), getattr(self._post, "table", None)
        if table_in is None or table_out is None:
            m = self.manifest
            raise InputError(f"model {m.id} ({m.task}) does not take tables: use Pipeline.batch")
        t0 = time.perf_counter()
        prepared: Prepared = table_in(rows)
        t1 = time.perf_counter()
        tensors = prepared.tensors
        if self._stacks_rows():
            outputs = self._finite(self.backend.run(tensors))
        else:  # one call per row, as batch() runs such models
            n = len(prepared.context.inputs)
            rows_in = [{k: v[i : i + 1] for k, v in tensors.items()} for i in range(n)]
            runs = [self._finite(self.backend.run(t)) for t in rows_in]
            outputs = {k: np.concatenate([o[k] for o in runs]) for k in runs[0]}
        t2 = time.perf_counter()
        build = table_out(outputs, prepared.context)
        t3 = time.perf_counter()
        timings = Timings(
            preprocess_ms=(t1 - t0) * 1e3,
            inference_ms=(t2 - t1) * 1e3,
            postprocess_ms=(t3 - t2) * 1e3,
        )
        result: TabularTable = build(provenance=self._provenance(prepared, timings, None))
        for row in result.contract_rows():
            check_contract(row)
        return result

    def stream(
        self,
        source: Signal | Iterable[Any],
        *,
        sampling_rate_hz: float | None = None,
        hop: int | None = None,
        start_time: float | None = None,
    ) -> Iterator[Result]:
        """Results over a continuous signal, one per window (``manifest.stream``).

        ``source`` is a :class:`edgemed.io.Signal`, or yields blocks of any length: objects
        with ``values``, ``first_index``, ``host_time`` and a rate (``Signal.blocks()``,
        :class:`edgemed.bridge.SampleBlock`), or plain arrays shaped (channels, samples) (or
        (samples,) for one channel) with ``sampling_rate_hz`` declared. The rate is never
        assumed: without one, InputError. A signal at another rate than the model's is windowed
        for the model's duration and resampled (io/rates.py), within the manifest's supported
        range. Each result's provenance carries its window in the SOURCE signal (first sample,
        length and rate as given, start time). ``hop`` (model-rate samples) overrides the
        manifest's; ``start_time`` anchors sources without a clock (default: arrival time).
        """
        spec = self.manifest.stream
        if spec is None:
            raise InputError(
                f"model {self.manifest.id} ({self.manifest.task}) takes single inputs, "
                "not a continuous signal: call it directly"
            )
        if isinstance(source, Signal):
            source = source.blocks(4096)
        plan: RatePlan | None = None
        windower: Windower | None = None
        for block in source:
            fs = block_rate(block, sampling_rate_hz)
            if fs is None:
                raise InputError(
                    f"the signal's sampling rate is unknown: pass sampling_rate_hz= (model "
                    f"{self.manifest.id} runs at {spec.sampling_rate_hz:g} Hz), or stream an "
                    "edgemed.io.Signal"
                )
            if plan is None:
                plan, windower = stream_windower(spec, fs, hop=hop, start_time=start_time)
            elif fs != plan.source_hz:
                raise InputError(
                    f"sampling rate changed mid-stream ({plan.source_hz:g} -> {fs:g} Hz)"
                )
            assert windower is not None
            for w in windower.push(block):
                window = SignalWindow(
                    start_sample=w.start_sample,
                    samples=plan.samples,
                    sampling_rate_hz=fs,
                    start_time=w.start_time,
                )
                yield self._run(plan.apply(w.data), window)

    def _provenance(
        self, prepared: Prepared, timings: Timings, window: SignalWindow | None
    ) -> Provenance:
        return assembled(
            Provenance,
            {
                **self._model_fields,
                "backend": self.backend.name,
                "device": self.backend.device,
                "input_sha256": prepared.input_sha256,
                "input_kind": prepared.input_kind,
                "timings": timings,
                "created_at": time.time(),
                "window": window,
                "components": self._further.used,
                "selection": self.selection,
            },
        )

    def check_golden(self) -> list[str]:
        """Run the bundle's golden inputs through the whole pipeline on this machine and
        backend; one line per output that drifted beyond the manifest's tolerance."""
        items = self._task.golden_inputs(self.manifest)
        return self._task.golden_check(self.manifest, self.batch(items), cpu_family())

    def close(self) -> None:
        self.backend.close()
        self._further.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        m = self.manifest
        return (
            f"Pipeline({m.id}@{m.version}, {self.backend.name}/{self.backend.device}/{m.precision})"
        )


def load(
    model: str | Path,
    *,
    backend: str = "auto",
    device: str = "auto",
    threads: int | None = None,
    verify: bool = True,
    golden: bool = True,
    hardware: HardwareInfo | None = None,
    trust: TrustPolicy | str | os.PathLike[str] | None = None,
) -> Pipeline:
    """Load a bundled model by id (or a model folder by path), checking every artifact's sha256.

    ``backend``/``device`` default to the choice :func:`edgemed.backends.choose` makes for this
    machine (``edgemed doctor`` shows it and why); name them to override.

    With ``golden=True`` the bundle's golden inputs run through the pipeline before it is
    returned: a model whose outputs drift beyond the manifest's tolerance on this machine is
    refused (:class:`GoldenMismatchError`), and accelerator engines (TensorRT, OpenVINO) are
    built or loaded from the cache here, never on a request.

    ``trust``: a :class:`edgemed.trust.TrustPolicy` or the path of its JSON file (default: the
    file named by ``$EDGEMED_TRUST``, else none). Under a policy the bundle's signature, its
    files and anti-rollback are checked before any runtime opens it (``SignatureError``,
    ``IntegrityError``, ``RollbackError``; ``verify=False`` is then ignored) and the version
    is recorded as served once it loaded (docs/signing.md). Without one, unsigned bundles load.
    """
    model_dir = Path(model) if isinstance(model, Path) else find_model_dir(model)
    policy = resolve_policy(trust)
    verified: Verified | None = None
    if policy is None:
        manifest = load_manifest(model_dir, verify=verify)
    else:
        verified = check_bundle(model_dir, policy)
        manifest = verified.manifest
    if isinstance(model, str) and manifest.id != model:
        raise ManifestError(f"folder {model_dir.name} holds model {manifest.id!r}, not {model!r}")
    pipeline = _start_checked(manifest, backend, device, threads, hardware, golden=golden)
    try:
        if policy is not None and verified is not None:
            record(policy, verified)  # anti-rollback: this version has now served
    except BaseException:
        pipeline.close()
        raise
    return pipeline


def _start_checked(
    manifest: Manifest,
    backend: str,
    device: str,
    threads: int | None,
    hardware: HardwareInfo | None,
    *,
    golden: bool,
) -> Pipeline:
    """The pipeline of a manifest already checked, its golden vectors holding on this machine.

    A backend whose golden outputs do not hold here computes something else than the bundle
    was built to compute (measured: OpenVINO's static-INT8 text graph on aarch64, cosine 0.908
    to the x86 outputs), so it never serves. When the device was left to the selection, the
    next candidate that holds serves instead and its ``choice.reason`` names the refusal; a
    device named by the caller, or no candidate left, raises :class:`GoldenMismatchError`."""
    hw = hardware or probe(runtimes=manifest.backends)
    if golden and backend == device == "auto" and autotune.enabled():
        tuned = _start_tuned(manifest, threads, hw)
        if tuned is not None:
            return tuned
    refused: list[str] = []
    skip: set[tuple[str, str]] = set()
    while True:
        pipeline = _start(manifest, backend, device, threads, hw, skip=skip)
        where = f"{pipeline.choice.backend}/{pipeline.choice.device}"
        problems = _golden_problems(pipeline) if golden else []
        if not problems:
            if refused:
                why = f"{pipeline.choice.reason}; golden vectors failed here on " + "; ".join(
                    refused
                )
                pipeline.choice = replace(pipeline.choice, reason=why)
                log.warning("%s serves on %s: %s", manifest.id, where, why)
            return pipeline
        refused.append(f"{where} ({'; '.join(problems)})")
        skip.add((pipeline.choice.backend, pipeline.choice.device))
        if device != "auto" or not _has_candidate(manifest, hw, backend, skip):
            raise GoldenMismatchError(f"{manifest.id}: refusing to serve on " + "; ".join(refused))


def _start_tuned(manifest: Manifest, threads: int | None, hw: HardwareInfo) -> Pipeline | None:
    """The fastest candidate whose golden vectors hold, measured once per machine
    (backends/autotune.py); None where there is nothing to choose between or nothing started
    and held: the ordinary selection then decides, and refuses with its reasons."""
    usable, _ = candidates(manifest, hw)
    if len(usable) < 2:
        return None
    k = autotune.key(manifest, hw, threads)
    known = autotune.recall(k)
    if known is not None:
        pipeline, _ = _holding(manifest, known.backend, known.device, threads, hw)
        if pipeline is not None:
            return _tuned_choice(pipeline, known, "")
        autotune.forget(k)  # it no longer starts or holds here: measure again
    opened: list[Pipeline] = []
    notes: list[str] = []
    try:
        for c in usable:
            pipeline, note = _holding(manifest, c.backend, c.device, threads, hw)
            if pipeline is not None:
                opened.append(pipeline)
            else:
                notes.append(note)
        if not opened:
            return None
        items = opened[0]._task.golden_inputs(manifest)
        ms = autotune.time_rounds([partial(p.batch, items) for p in opened], len(items))
    except BaseException:
        for pipeline in opened:
            pipeline.close()
        raise
    timings = tuple(
        autotune.Timing(backend=p.choice.backend, device=p.choice.device, ms_per_input=round(t, 4))
        for p, t in zip(opened, ms, strict=True)
    )
    best = min(range(len(opened)), key=ms.__getitem__)
    for i, pipeline in enumerate(opened):
        if i != best:
            pipeline.close()
    chosen = opened[best].choice
    known = autotune.Tuned(
        backend=chosen.backend, device=chosen.device, timings=timings, measured_at=time.time()
    )
    autotune.remember(k, known)
    return _tuned_choice(opened[best], known, "; ".join(notes))


def _holding(
    manifest: Manifest, backend: str, device: str, threads: int | None, hw: HardwareInfo
) -> tuple[Pipeline | None, str]:
    """The pipeline on exactly this backend/device if it starts and its golden vectors hold
    here; else None and why."""
    try:
        pipeline = _start(manifest, backend, device, threads, hw, skip=set())
    except BackendUnavailableError as exc:
        return None, f"{backend}/{device} did not start: {exc}"
    problems = _golden_problems(pipeline)
    if problems:
        return None, f"golden vectors failed here on {backend}/{device} ({'; '.join(problems)})"
    return pipeline, ""


def _golden_problems(pipeline: Pipeline) -> list[str]:
    """The pipeline's golden check here; the pipeline is closed when it fails or raises."""
    try:
        problems = pipeline.check_golden()
    except BaseException:
        pipeline.close()
        raise
    if problems:
        pipeline.close()
    return problems


def _tuned_choice(pipeline: Pipeline, tuned: autotune.Tuned, notes: str) -> Pipeline:
    reason = tuned.reason() + (f"; {notes}" if notes else "")
    pipeline.choice = replace(pipeline.choice, reason=reason)
    pipeline.selection = tuned.summary()
    if notes:
        log.warning("%s serves on %s: %s", pipeline.manifest.id, tuned.backend, reason)
    return pipeline


def _has_candidate(
    manifest: Manifest, hw: HardwareInfo, backend: str, skip: Set[tuple[str, str]]
) -> bool:
    usable, _ = candidates(manifest, hw)
    return any(backend in ("auto", c.backend) and (c.backend, c.device) not in skip for c in usable)


def _start(
    manifest: Manifest,
    backend: str,
    device: str,
    threads: int | None,
    hw: HardwareInfo,
    *,
    skip: Set[tuple[str, str]],
) -> Pipeline:
    """The pipeline of a manifest already checked: backend chosen and opened, task attached."""
    choice, runtime = open_first(manifest, hw, backend, device, threads, skip)
    further = FurtherModels(manifest, choice, hw, threads)
    try:
        return Pipeline(manifest, runtime, choice=choice, further=further)
    except BaseException:
        runtime.close()
        further.close()
        raise
