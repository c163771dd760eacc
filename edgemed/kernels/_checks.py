"""Boundary checks shared by the kernel facades: arrays in, clear :class:`InputError` out.

The native layer validates again (it must never crash on a bad pointer), but checking here gives
messages that name the argument and the expected layout, and keeps every facade short.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from ..errors import InputError

T = TypeVar("T")


def native(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a native kernel, translating pybind11's TypeError/ValueError into InputError."""
    try:
        return fn(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc)) from exc


def require_dtype(arr: npt.NDArray[Any], name: str, *dtypes: type[np.generic]) -> None:
    if arr.dtype.type not in dtypes:
        expected = " or ".join(np.dtype(d).name for d in dtypes)
        raise InputError(f"{name}: expected dtype {expected}, got {arr.dtype}")


def require_ndim(arr: npt.NDArray[Any], name: str, ndims: tuple[int, ...], layout: str) -> None:
    if arr.ndim not in ndims:
        raise InputError(f"{name}: expected {layout}, got shape {arr.shape}")


def require_finite(arr: npt.NDArray[Any], name: str) -> None:
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError(f"{name}: contains NaN or infinity")
