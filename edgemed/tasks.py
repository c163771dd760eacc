"""What serves each manifest task: its processors and its golden-vector check (a composition root).

A preprocessor is built from the manifest and maps one caller input to a
:class:`~edgemed.preprocess.Prepared`; a postprocessor maps the backend's outputs and the
prepared input's ``context`` to a :class:`~edgemed.results.ResultBuilder` (the result, waiting
for its provenance). ``golden_inputs`` reads the bundle's golden inputs as caller inputs and
``golden_check`` compares the results on them with the bundle's expected outputs, returning
one line per problem (none: the model may serve).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy.typing as npt

from ._version import __version__
from .errors import ManifestError
from .manifest import Manifest
from .preprocess import Prepared
from .results import Result, ResultBuilder

__all__ = ["Postprocessor", "Preprocessor", "TaskSpec", "task_spec"]


class Preprocessor(Protocol):
    def __call__(self, item: object) -> Prepared: ...


class Postprocessor(Protocol):
    def __call__(self, outputs: Mapping[str, npt.NDArray[Any]], context: Any) -> ResultBuilder: ...


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    processors: Callable[[Manifest], tuple[Preprocessor, Postprocessor]]
    golden_inputs: Callable[[Manifest], list[object]]
    golden_check: Callable[[Manifest, Sequence[Result]], list[str]]


def _text() -> TaskSpec:
    from .postprocess import text as post
    from .preprocess import text as pre

    return TaskSpec(
        processors=lambda m: (pre.TextPreprocessor(m), post.EmbeddingPostprocessor(m)),
        golden_inputs=pre.golden_inputs,
        golden_check=post.golden_check,
    )


def _monitor() -> TaskSpec:
    from .postprocess import monitor as post
    from .preprocess import image as pre

    return TaskSpec(
        processors=lambda m: (pre.DetectorPreprocessor(m), post.MonitorPostprocessor(m)),
        golden_inputs=pre.golden_inputs,
        golden_check=post.golden_check,
    )


# Task -> a function importing its modules only when a model of that task is loaded.
_TASKS: dict[str, Callable[[], TaskSpec]] = {
    "text-embedding": _text,
    "monitor-reader": _monitor,
}


def task_spec(manifest: Manifest) -> TaskSpec:
    try:
        factory = _TASKS[manifest.task]
    except KeyError:
        raise ManifestError(
            f"{manifest.id}: task {manifest.task!r} is not supported by edgemed "
            f"{__version__}; supported: {sorted(_TASKS)}"
        ) from None
    return factory()
