"""Which preprocessor and postprocessor serve each manifest task (a composition root).

A preprocessor is built from the manifest and maps one caller input to a
:class:`~edgemed.preprocess.Prepared`; a postprocessor maps the backend's outputs and the
prepared input's ``context`` to a :class:`~edgemed.results.ResultBuilder` (the result, waiting
for its provenance).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy.typing as npt

from ._version import __version__
from .errors import ManifestError
from .manifest import Manifest
from .preprocess import Prepared
from .results import ResultBuilder

__all__ = ["Postprocessor", "Preprocessor", "processors"]


class Preprocessor(Protocol):
    def __call__(self, item: object) -> Prepared: ...


class Postprocessor(Protocol):
    def __call__(self, outputs: Mapping[str, npt.NDArray[Any]], context: Any) -> ResultBuilder: ...


def _text(manifest: Manifest) -> tuple[Preprocessor, Postprocessor]:
    from .postprocess.text import EmbeddingPostprocessor
    from .preprocess.text import TextPreprocessor

    return TextPreprocessor(manifest), EmbeddingPostprocessor(manifest)


_TASKS: dict[str, Callable[[Manifest], tuple[Preprocessor, Postprocessor]]] = {
    "text-embedding": _text,
}


def processors(manifest: Manifest) -> tuple[Preprocessor, Postprocessor]:
    try:
        factory = _TASKS[manifest.task]
    except KeyError:
        raise ManifestError(
            f"{manifest.id}: task {manifest.task!r} is not supported by edgemed "
            f"{__version__}; supported: {sorted(_TASKS)}"
        ) from None
    return factory(manifest)
