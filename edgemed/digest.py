"""sha256 of input arrays: the identity every result's provenance records for its input.

A leaf (hashlib and NumPy only): tasks hash what they hand the backend, and a tabular table's
results hash each of its rows when they are expanded, with the same definition."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["array_sha256", "row_hasher", "rows_sha256"]


def array_sha256(array: npt.NDArray[Any]) -> str:
    """sha256 of an array's dtype, shape and C-order bytes."""
    contiguous = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{contiguous.dtype.str}{contiguous.shape}".encode())
    digest.update(contiguous.data.cast("B"))
    return digest.hexdigest()


def row_hasher(dtype: np.dtype[Any], columns: int) -> hashlib._Hash:
    """sha256 that has taken :func:`array_sha256`'s prefix for a (1, ``columns``) array of
    ``dtype``: ``copy()`` it and ``update`` with one C-order row's bytes for that row's digest
    (the prefix hashed once for many rows)."""
    return hashlib.sha256(f"{dtype.str}{(1, columns)}".encode())


def rows_sha256(table: npt.NDArray[Any]) -> list[str]:
    """:func:`array_sha256` of each row of a 2-D ``table`` taken as a (1, columns) array: the
    same digests, the shared dtype-and-shape prefix hashed once."""
    contiguous = np.ascontiguousarray(table)
    head = row_hasher(contiguous.dtype, contiguous.shape[1])
    digests = []
    for row in contiguous:
        digest = head.copy()
        digest.update(row.data.cast("B"))
        digests.append(digest.hexdigest())
    return digests
