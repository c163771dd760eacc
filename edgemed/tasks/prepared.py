"""What every preprocessor hands to the backend: tensors plus what the result must remember."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from .. import digest

__all__ = ["Prepared"]


@dataclass(frozen=True, kw_only=True, eq=False)
class Prepared:
    """One input, ready for ``backend.run``.

    ``context`` carries what the postprocessor needs about this input and only this input
    (token counts, letterbox placement, out-of-range flags), so concurrent calls never share it.
    """

    tensors: dict[str, npt.NDArray[Any]]
    input_sha256: str
    input_kind: str  # "text", "tabular", "ecg", "eeg", "image"
    context: Any = None

    @staticmethod
    def array_sha256(array: npt.NDArray[Any]) -> str:
        """sha256 of an array's dtype, shape and C-order bytes (the input's identity)."""
        return digest.array_sha256(array)

    @staticmethod
    def rows_sha256(table: npt.NDArray[Any]) -> list[str]:
        """:meth:`array_sha256` of each row of a 2-D ``table`` taken as a (1, columns) array."""
        return digest.rows_sha256(table)
