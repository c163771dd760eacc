"""Task ``text-embedding``: clinical text -> a sentence embedding and, with a label set, the
nearest codes judged for confidence (assertion, plausibility, calibration).

Any encoder with a ``tokenizer.json`` (pooling in the graph or declared in the manifest), built
by ``edgemed bundle build``; the bundled ``clinical-text-minilm`` adds an ICD-10-CM label set.
Parts: ``preprocess`` (text policy, tokenizer), ``postprocess`` (pooling, normalise, top-k
search, golden check), ``build`` (what the builder needs), ``code_confidence`` with
``assertion`` and ``plausibility`` (whether the first code may be offered).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...manifest import Manifest
from ...results import Result
from ..spec import CliInput, OpenModel, Postprocessor, Preprocessor, TaskSpec
from .build import BUILD

__all__ = ["SPEC"]


def _processors(manifest: Manifest, open_model: OpenModel) -> tuple[Preprocessor, Postprocessor]:
    from .postprocess import EmbeddingPostprocessor
    from .preprocess import TextPreprocessor

    return TextPreprocessor(manifest), EmbeddingPostprocessor(manifest)


def _golden_inputs(manifest: Manifest) -> list[object]:
    from .preprocess import golden_inputs

    return golden_inputs(manifest)


def _golden_check(manifest: Manifest, results: Sequence[Result], cpu_family: str) -> list[str]:
    from .postprocess import golden_check

    return golden_check(manifest, results, cpu_family)


def _input_contract(m: Manifest) -> dict[str, Any]:
    from .preprocess import MAX_TEXT_CHARS

    return {
        "kind": "text",
        "encoding": "utf-8",
        "max_chars": MAX_TEXT_CHARS,
        "max_tokens": m.preprocess["max_tokens"],  # longer text is truncated, result says so
        "language": m.preprocess.get("language"),  # None: the manifest does not state one
    }


SPEC = TaskSpec(
    name="text-embedding",
    processors=_processors,
    golden_inputs=_golden_inputs,
    golden_check=_golden_check,
    required_artifacts=("tokenizer",),
    input_contract=_input_contract,
    cli_input=CliInput(text=True),
    build=BUILD,
)
