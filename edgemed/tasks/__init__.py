"""Clinical tasks, one room each, and the one place that knows which tasks exist.

Each built-in task is a subpackage here ending in one :class:`TaskSpec` (its contract is in
:mod:`edgemed.tasks.spec`). A separately installed package adds a task without touching
edgemed by naming its spec in the ``edgemed.tasks`` entry-point group::

    [project.entry-points."edgemed.tasks"]
    wound-photo = "my_package.wound:SPEC"     # the name must equal SPEC.name

or by calling :func:`register` before :func:`edgemed.load`. A built-in task cannot be
replaced: a clinical task silently swapped for another package's is the kind of wrong result
this SDK exists to prevent.
"""

from __future__ import annotations

import logging
import threading
from importlib.metadata import entry_points

from .._version import __version__
from ..errors import ManifestError
from ..extras import require
from ..manifest import Manifest
from .spec import (
    COMMON_ARTIFACTS,
    BuildSupport,
    CliInput,
    ModelRunner,
    OpenModel,
    Postprocessor,
    Prepared,
    Preprocessor,
    TaskSpec,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "BuildSupport",
    "CliInput",
    "ModelRunner",
    "OpenModel",
    "Postprocessor",
    "Prepared",
    "Preprocessor",
    "TaskSpec",
    "find_task",
    "register",
    "task_names",
    "task_spec",
]

ENTRY_POINT_GROUP = "edgemed.tasks"
_log = logging.getLogger(__name__)
_lock = threading.Lock()
_specs: dict[str, TaskSpec] = {}
_builtin_names: set[str] = set()
_broken: dict[str, str] = {}  # entry point -> why it could not be loaded
_discovered = False


def _builtins() -> tuple[TaskSpec, ...]:
    # Each task package imports its heavy parts (OpenCV, tokenizers...) only when a model of
    # that task loads, so knowing every task costs next to nothing.
    from . import (
        ecg_sleep_staging,
        eeg_seizure,
        image_classification,
        image_segmentation,
        monitor_reader,
        object_detection,
        signal_classification,
        tabular,
        text_embedding,
    )

    return (
        text_embedding.SPEC,
        ecg_sleep_staging.SPEC,
        eeg_seizure.SPEC,
        monitor_reader.SPEC,
        *tabular.SPECS,
        image_classification.SPEC,
        image_segmentation.SPEC,
        object_detection.SPEC,
        signal_classification.SPEC,
    )


def _add(spec: TaskSpec, origin: str) -> None:
    if not isinstance(spec, TaskSpec):
        raise TypeError(f"{origin}: expected an edgemed.tasks.TaskSpec, got {type(spec).__name__}")
    known = _specs.get(spec.name)
    if known is spec:
        return
    if known is not None:
        who = "built-in" if spec.name in _builtin_names else "already registered"
        raise ValueError(f"{origin}: task {spec.name!r} is {who}; a task cannot be replaced")
    _specs[spec.name] = spec


def _discover() -> None:
    """Built-ins, then installed task packages (once). A broken package is logged and named
    when one of its bundles is loaded; it never stops the other tasks from loading."""
    global _discovered
    if _discovered:
        return
    for spec in _builtins():
        _add(spec, "edgemed")
        _builtin_names.add(spec.name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {ep.name} = {ep.value}"
        try:
            spec = ep.load()
            if isinstance(spec, TaskSpec) and spec.name != ep.name:
                raise ValueError(f"names task {spec.name!r}, not {ep.name!r}")
            _add(spec, origin)
        except Exception as exc:  # any failure of third-party code: report, keep going
            _broken[ep.name] = f"{origin}: {type(exc).__name__}: {exc}"
            _log.warning("task package not loaded: %s", _broken[ep.name])
    _discovered = True


def register(spec: TaskSpec) -> TaskSpec:
    """Add a task (returns ``spec``). Registering the same spec twice is a no-op; another spec
    under a known task name raises ValueError."""
    with _lock:
        _discover()
        _add(spec, "register()")
    return spec


def task_names() -> list[str]:
    """Every task this installation serves: built-in, installed and registered."""
    with _lock:
        _discover()
        return sorted(_specs)


def find_task(name: str) -> TaskSpec | None:
    """The spec serving task ``name``, or None where no installed package serves it."""
    with _lock:
        _discover()
        return _specs.get(name)


def task_spec(manifest: Manifest) -> TaskSpec:
    """The spec serving ``manifest.task``, after checking the bundle ships the artifacts the
    task needs (ManifestError otherwise, or when no installed package serves the task)."""
    spec = find_task(manifest.task)
    if spec is None:
        broken = _broken.get(manifest.task)  # filled by find_task's discovery
        why = f"; {broken}" if broken else ""
        raise ManifestError(
            f"{manifest.id}: task {manifest.task!r} is not served by edgemed {__version__} or "
            f"an installed task package (entry points {ENTRY_POINT_GROUP!r}); known: "
            f"{task_names()}{why}"
        )
    missing = [r for r in (*COMMON_ARTIFACTS, *spec.required_artifacts) if not manifest.has(r)]
    if missing:
        raise ManifestError(f"manifest.artifacts: task {spec.name!r} needs artifact(s) {missing}")
    for extra in spec.extras:
        require(extra, f"model {manifest.id} (task {spec.name})")
    return spec
