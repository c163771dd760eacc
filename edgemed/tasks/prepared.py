"""What every preprocessor hands to the backend: tensors plus what the result must remember."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

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
        contiguous = np.ascontiguousarray(array)
        digest = hashlib.sha256(f"{contiguous.dtype.str}{contiguous.shape}".encode())
        digest.update(contiguous.data.cast("B"))
        return digest.hexdigest()

    @staticmethod
    def rows_sha256(table: npt.NDArray[Any]) -> list[str]:
        """:meth:`array_sha256` of each row of a 2-D ``table`` taken as a (1, columns) array:
        the same digests, the shared dtype-and-shape prefix hashed once."""
        contiguous = np.ascontiguousarray(table)
        head = hashlib.sha256(f"{contiguous.dtype.str}{(1, contiguous.shape[1])}".encode())
        digests = []
        for row in contiguous:
            digest = head.copy()
            digest.update(row.data.cast("B"))
            digests.append(digest.hexdigest())
        return digests
