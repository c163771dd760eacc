"""The task contract: what a task hands edgemed so that bundles of its ``task`` load and serve.

A task is one module (or small package) ending in one :class:`TaskSpec`. edgemed calls its
parts in this order, and only these:

1. ``processors(manifest, open_model)`` once per loaded model: returns the preprocessor and
   the postprocessor. Parse and validate the manifest's ``preprocess``/``postprocess``
   sections here (raise :class:`~edgemed.errors.ManifestError`), load the bundle's extra
   artifacts, and open any further model the task needs with ``open_model(role)``: it is
   selected like the bundle's main model (same backend and device where the artifact allows,
   same threads and caches) and recorded in every result's provenance.
2. ``preprocessor(item)`` per input: the caller's input -> :class:`Prepared` (tensors named as
   the manifest's ``inputs``, the input's sha256 and kind, and a ``context`` for the
   postprocessor). Bad input raises :class:`~edgemed.errors.InputError`.
3. ``postprocessor(outputs, context)`` per input: the backend's outputs (finite; the pipeline
   refuses NaN/inf before) and that input's context -> a :class:`ResultBuilder`. An output that
   breaks the model's contract raises :class:`~edgemed.errors.ModelError`.
4. ``golden_inputs(manifest)`` and ``golden_check(manifest, results, cpu_family)`` when a
   model loads: the bundle's golden inputs as caller inputs, then one line per problem
   comparing the results with the bundle's expected outputs (none: the model may serve).

Thread-safety: pre- and postprocessors are called from several threads at once (one pipeline
serves concurrent callers), so they keep no per-call state on ``self``; per-input state
travels in ``Prepared.context``. Models opened with ``open_model`` are thread-safe.

A task imports only edgemed's leaves (errors, manifest, results, contracts, kernels...):
never the pipeline, a backend module or another task.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy.typing as npt

from ..extras import EXTRAS
from ..manifest import Manifest
from ..results import Result, ResultBuilder
from .prepared import Prepared

__all__ = [
    "COMMON_ARTIFACTS",
    "BuildSupport",
    "CliInput",
    "ModelRunner",
    "OpenModel",
    "Postprocessor",
    "Prepared",
    "Preprocessor",
    "TaskSpec",
]

# Roles every bundle ships whatever its task (the manifest checks them); a task adds its own.
COMMON_ARTIFACTS = ("model", "golden_inputs", "golden_outputs", "model_card")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


class Preprocessor(Protocol):
    def __call__(self, item: object) -> Prepared: ...


class Postprocessor(Protocol):
    def __call__(self, outputs: Mapping[str, npt.NDArray[Any]], context: Any) -> ResultBuilder: ...


class ModelRunner(Protocol):
    """A further model of the bundle, opened through the backend layer (thread-safe)."""

    input_names: tuple[str, ...]  # the graph's inputs, in its order

    def run(self, inputs: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]: ...


OpenModel = Callable[[str], ModelRunner]  # artifact role -> runner


@dataclass(frozen=True, kw_only=True)
class CliInput:
    """How ``edgemed run MODEL INPUT`` reads INPUT for this task (the CLI does the reading).

    ``text``: inline text, stdin and files of no known type are the input itself (str or
    bytes) instead of JSON. ``dicom``: a ``.dcm`` file holds an image or a waveform.
    ``from_dicom_image``: a DICOM image (an ``edgemed.io.DicomImage``) -> the task's input;
    None: its pixels through the header's window. ``from_signal``: a signal file's chosen channel -> the task's input (a ``Signal`` of one
    channel); None for a streaming task, which is handed the whole signal.
    """

    text: bool = False
    dicom: Literal["image", "waveform"] = "waveform"
    from_dicom_image: Callable[[Any], object] | None = None
    from_signal: Callable[[Any], object] | None = None


Arrays = dict[str, npt.NDArray[Any]]


@dataclass(frozen=True, kw_only=True)
class BuildSupport:
    """What ``edgemed bundle build`` needs from a task to build, gate and document a bundle of
    it (docs/bring-your-own-model.md has the folder formats these read).

    ``read_calibration(folder)``: the caller inputs to calibrate INT8 on (InputError on a file
    that is not one). ``read_evaluation(folder, manifest)``: caller inputs with their truths
    (a label, a mask...), in a stable order (BuildError on a truth the model cannot give).
    ``agreement(fp32, int8)``: in [0, 1], how much the INT8 results say what the FP32 ones say
    (same label; pixels of the same class...). ``golden_order(results)``: every index, the best
    golden candidates first (clear results, far from changing on another CPU's rounding,
    spread over the classes). ``metric(results, truths)``: the user's metric, named
    ``metric_name``, higher is better. ``golden_arrays(manifest, inputs, results)``: the
    golden_inputs and golden_outputs files' arrays, as ``golden_inputs``/``golden_check`` read
    them.
    """

    read_calibration: Callable[[Path], list[object]]
    read_evaluation: Callable[[Path, Manifest], list[tuple[object, Any]]]
    agreement: Callable[[Sequence[Result], Sequence[Result]], float]
    golden_order: Callable[[Sequence[Result]], list[int]]
    metric_name: str
    metric: Callable[[Sequence[Result], Sequence[Any]], float]
    golden_arrays: Callable[[Manifest, Sequence[object], Sequence[Result]], tuple[Arrays, Arrays]]
    # The manifest's ``golden`` limits for the shipped precision ("fp32", "int8") given the
    # golden results; None: the builder's defaults (scores in [0, 1], labels must agree).
    golden_tolerance: Callable[[str, Sequence[Result]], dict[str, float]] | None = None
    # The support for this manifest where it differs by the manifest (a multi-label
    # classifier's); None: this one.
    for_manifest: Callable[[Manifest], BuildSupport] | None = None
    # Figures per class for the build report and the card, given the FP32 and INT8 results
    # and the truths (``agreement[<label>]``, ``fp32_f1[<label>]``...); None: none.
    per_class: (
        Callable[[Sequence[Result], Sequence[Result], Sequence[Any]], dict[str, float]] | None
    ) = None
    # How ``golden_order`` picks, for the model card ("<n> evaluation inputs, <golden_choice>,
    # with the shipped model's outputs").
    golden_choice: str = (
        "the clearest of their classes (largest margin between the first and second score)"
    )


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """One task: the manifest ``task`` it serves and the callables described above."""

    name: str
    processors: Callable[[Manifest, OpenModel], tuple[Preprocessor, Postprocessor]]
    golden_inputs: Callable[[Manifest], list[object]]
    golden_check: Callable[[Manifest, Sequence[Result], str], list[str]]
    required_artifacts: tuple[str, ...] = ()  # beyond COMMON_ARTIFACTS
    input_contract: Callable[[Manifest], dict[str, Any]] | None = None  # `models info`
    cli_input: CliInput = field(default_factory=CliInput)
    build: BuildSupport | None = None  # None: `edgemed bundle build` cannot build this task
    # edgemed extras the task's processors import ("vision" for OpenCV): a model of the task
    # refuses to load without them, naming the extra (edgemed.extras).
    extras: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"task name {self.name!r}: expected lowercase letters, digits, '-'")
        unknown = [e for e in self.extras if e not in EXTRAS]
        if unknown:
            raise ValueError(
                f"task {self.name!r}: unknown extra(s) {unknown}; known: {list(EXTRAS)}"
            )
