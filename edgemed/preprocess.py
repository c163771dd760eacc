"""Stage 2: turn caller input into model input tensors.

Text policy (stated once, tested): input must be non-empty UTF-8 text of at most
``MAX_TEXT_CHARS`` characters; it is tokenized with the model's own tokenizer and truncated to the
manifest's ``max_tokens`` word pieces (the result then says ``truncated=True``). Longer documents
must be chunked by the caller.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from .errors import InputError, ModelError

__all__ = ["MAX_TEXT_CHARS", "TextBatch", "TextPreprocessor", "coerce_text"]

MAX_TEXT_CHARS = 1_000_000


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
class TextBatch:
    input_ids: npt.NDArray[np.int64]
    attention_mask: npt.NDArray[np.int64]
    n_tokens: tuple[int, ...]  # real (unpadded) tokens per row after truncation
    truncated: tuple[bool, ...]
    input_sha256: tuple[str, ...]

    def tensors(self) -> dict[str, npt.NDArray[np.int64]]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}


class TextPreprocessor:
    """Tokenize text with the model's tokenizer.json, truncating to ``max_tokens``."""

    def __init__(self, tokenizer_path: Path, max_tokens: int) -> None:
        try:
            self._tok = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:  # tokenizers raises a bare Exception on bad files
            raise ModelError(f"cannot load tokenizer {tokenizer_path}: {exc}") from exc
        self._tok.enable_truncation(max_length=max_tokens)
        self._tok.enable_padding(pad_id=0, pad_token="[PAD]")
        self.max_tokens = max_tokens

    def __call__(self, texts: list[object]) -> TextBatch:
        clean = [coerce_text(t) for t in texts]
        if not clean:
            raise InputError("no texts given")
        encodings = self._tok.encode_batch(clean)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return TextBatch(
            input_ids=ids,
            attention_mask=mask,
            n_tokens=tuple(int(m.sum()) for m in mask),
            truncated=tuple(bool(e.overflowing) for e in encodings),
            input_sha256=tuple(hashlib.sha256(t.encode("utf-8")).hexdigest() for t in clean),
        )
