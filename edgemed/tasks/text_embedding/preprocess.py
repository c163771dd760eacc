"""Stage 2 for text models: text -> word-piece ids.

Text policy (stated once, tested): input must be non-empty UTF-8 text of at most
``MAX_TEXT_CHARS`` characters; it is tokenized with the model's own tokenizer and truncated to the
manifest's ``max_tokens`` word pieces (the result then says ``truncated=True``). Longer documents
must be chunked by the caller.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from ...errors import InputError, ManifestError, ModelError
from ...manifest import Manifest, parse_section
from ..prepared import Prepared

__all__ = [
    "MAX_TEXT_CHARS",
    "TextContext",
    "TextPreprocess",
    "TextPreprocessor",
    "TextQuery",
    "coerce_text",
]

MAX_TEXT_CHARS = 1_000_000
MAX_TOKENS = 8192  # long-context encoders; the tokenizer truncates to the manifest's figure
# The inputs a BERT-style encoder takes; a model declares the ones it has (input_ids always).
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


def coerce_text(value: object) -> str:
    """Validate caller text (``str`` or UTF-8 ``bytes``) or raise InputError."""
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"text is not valid UTF-8 (byte {exc.start}: {exc.reason})") from exc
    if not isinstance(value, str):
        raise InputError(f"expected text (str or UTF-8 bytes), got {type(value).__name__}")
    if not value.strip():
        raise InputError("text is empty or only whitespace")
    if len(value) > MAX_TEXT_CHARS:
        raise InputError(f"text has {len(value):,} characters; the limit is {MAX_TEXT_CHARS:,}")
    return value


@dataclass(frozen=True)
class TextQuery:
    """A text and what the caller wants back for it. ``nearest=False``: the embedding alone;
    the label search (36,343 ICD-10-CM codes for ``clinical-text-minilm``, about a fifth of the
    call) and the suggestion's judgement are skipped, and the result's ``nearest`` is empty
    with no ``suggestion``/``assertion``. A plain ``str`` is ``TextQuery(text)``::

        encoder(edgemed.TextQuery(note, nearest=False)).embedding
    """

    text: str | bytes
    nearest: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.nearest, bool):
            raise InputError(f"nearest must be True or False, got {self.nearest!r}")


@dataclass(frozen=True, kw_only=True)
class TextPreprocess:
    """The manifest's ``preprocess`` section for text models."""

    max_tokens: int


@dataclass(frozen=True, kw_only=True)
class TextContext:
    n_tokens: int  # real word pieces after truncation
    truncated: bool
    # The caller's text, for the rules that read what the encoder cannot (negation, units);
    # it stays in memory, never in the result (which carries only its sha256).
    text: str = field(default="", repr=False)
    nearest: bool = True  # False: the embedding alone (TextQuery), no label search


def _input_names(manifest: Manifest) -> tuple[str, ...]:
    """The model's inputs, each one this task can fill: ids, mask (ones: one text, no
    padding), segment ids (zeros: one segment) and positions (0..n-1)."""
    names = tuple(t.name for t in manifest.inputs)
    unknown = [n for n in names if n not in TEXT_INPUTS]
    if unknown or "input_ids" not in names:
        raise ManifestError(
            f"manifest.inputs: a text encoder takes input_ids and optionally attention_mask, "
            f"token_type_ids and position_ids; this model takes {list(names)}"
        )
    bad = [t.name for t in manifest.inputs if t.dtype not in ("int64", "int32")]
    if bad:
        raise ManifestError(f"manifest.inputs: {bad} must be int64 or int32 token ids")
    return names


def _tensor(name: str, ids: npt.NDArray[np.int64], mask: list[int]) -> npt.NDArray[np.int64]:
    if name == "input_ids":
        return ids
    if name == "attention_mask":
        return np.array([mask], dtype=np.int64)
    if name == "token_type_ids":
        return np.zeros_like(ids)
    return np.arange(ids.shape[1], dtype=np.int64)[None]  # position_ids


class TextPreprocessor:
    """Tokenize text with the model's tokenizer.json, truncating to ``max_tokens``."""

    def __init__(self, manifest: Manifest) -> None:
        config = parse_section(TextPreprocess, manifest.preprocess, "manifest.preprocess")
        if not 8 <= config.max_tokens <= MAX_TOKENS:
            raise ManifestError(f"manifest.preprocess.max_tokens: must be in [8, {MAX_TOKENS}]")
        _input_names(manifest)
        self._inputs = {t.name: np.dtype(t.dtype) for t in manifest.inputs}
        path = manifest.path("tokenizer")
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on bad files
            raise ModelError(f"cannot load tokenizer {path}: {exc}") from exc
        self._tok.enable_truncation(max_length=config.max_tokens)
        self._tok.no_padding()  # one text per call: padding would only add work
        self.max_tokens = config.max_tokens

    def __call__(self, item: object) -> Prepared:
        nearest = True
        if isinstance(item, TextQuery):
            nearest = item.nearest
            item = item.text
        text = coerce_text(item)
        encoding = self._tok.encode(text)
        if not encoding.ids:  # a tokenizer without special tokens can return none at all
            raise InputError("text gives no tokens with this model's tokenizer")
        ids = np.array([encoding.ids], dtype=np.int64)
        truncated = bool(encoding.overflowing)
        # The rules read only what the encoder saw: the text up to the last word piece kept.
        seen = text[: max(end for _, end in encoding.offsets)] if truncated else text
        return Prepared(
            tensors={
                name: _tensor(name, ids, encoding.attention_mask).astype(dtype, copy=False)
                for name, dtype in self._inputs.items()
            },
            input_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
            input_kind="text",
            context=TextContext(
                n_tokens=ids.shape[1], truncated=truncated, text=seen, nearest=nearest
            ),
        )


def golden_inputs(manifest: Manifest) -> list[object]:
    """The bundle's golden texts: a JSON list of strings, or (bundles from ``edgemed bundle
    build``) an ``.npz`` whose ``texts`` is an array of strings."""
    import json

    path = manifest.path("golden_inputs")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            texts = npz["texts"].tolist() if "texts" in npz.files else None
    else:
        texts = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ManifestError(f"{manifest.id}: golden inputs must be a JSON list of strings")
    return list(texts)
