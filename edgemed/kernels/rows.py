"""Rows of named numbers to one float64 table (``csrc/bindings/rows.cpp``): the plain path of a
tabular batch, read in one native pass.

It holds the GIL (it reads Python objects) and decides nothing: any row off the plain path
gives ``None`` and the caller's own row-by-row checks raise the precise error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ._native import _kernels

__all__ = ["dict_rows"]


def dict_rows(rows: Sequence[Any], names: tuple[str, ...]) -> npt.NDArray[np.float64] | None:
    """``rows`` (a list or tuple of dicts) as a float64 (rows, len(names)) table in ``names``
    order, where every row is a plain ``dict`` with exactly ``names`` as keys and every value
    exactly a ``float`` or an ``int`` within float64 (not a bool, not a NumPy scalar, not a
    string); else ``None``. An empty ``rows`` gives ``None``."""
    table: npt.NDArray[np.float64] | None = _kernels.dict_rows(rows, names)
    return table
