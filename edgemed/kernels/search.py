"""Cosine top-k and L2 normalisation of embedding rows (``csrc/src/search.cpp``)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .. import _kernels
from ..errors import InputError

__all__ = ["cosine_topk", "l2_normalize"]

FloatArray = npt.NDArray[np.float32]


def _as_rows(x: npt.ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(x)
    if arr.dtype != np.float32:
        raise InputError(f"{name}: expected dtype float32, got {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2:
        raise InputError(f"{name}: expected shape (dim,) or (rows, dim), got {arr.shape}")
    if arr.shape[1] == 0:
        raise InputError(f"{name}: dim must be > 0")
    if not np.isfinite(arr).all():
        raise InputError(f"{name}: contains NaN or infinity")
    return arr


def l2_normalize(x: npt.ArrayLike, *, out: FloatArray | None = None) -> FloatArray:
    """Rows scaled to unit L2 norm (zero rows stay zero). Writes into ``out`` when given."""
    arr = _as_rows(x, "x")
    if out is None:
        out = np.array(arr, dtype=np.float32, order="C")
    elif out.shape != arr.shape or out.dtype != np.float32:
        raise InputError(f"out: expected float32 {arr.shape}, got {out.dtype} {out.shape}")
    elif out is not arr:
        out[...] = arr
    try:
        _kernels.l2_normalize_inplace(out)
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc)) from exc
    return out.reshape(np.shape(x)) if np.ndim(x) == 1 else out


def cosine_topk(
    queries: npt.ArrayLike, matrix: npt.ArrayLike, k: int
) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Indices and cosine scores (best first) of the ``k`` matrix rows nearest each query row.

    ``queries`` is (dim,) or (n, dim); ``matrix`` is (rows, dim); both float32 with contiguous
    rows (row-sliced views are used without copying). Returns arrays of shape (n, k).
    """
    q = _as_rows(queries, "queries")
    m = _as_rows(matrix, "matrix")
    if q.shape[1] != m.shape[1]:
        raise InputError(f"queries dim {q.shape[1]} != matrix dim {m.shape[1]}")
    if not 1 <= k <= m.shape[0]:
        raise InputError(f"k must be in [1, {m.shape[0]}], got {k}")
    try:
        return _kernels.cosine_topk(q, m, k)
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc)) from exc
