"""The one check every signal input passes: real, finite numbers as float32 (channels, samples)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InputError


def signal_array(
    values: Any, where: str, *, channels: int | None = None, allow_empty: bool = False
) -> npt.NDArray[np.float32]:
    """``values`` as C-contiguous float32 (channels, samples); a 1-D array is one channel."""
    array = np.asarray(values)
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if channels is not None and (array.ndim != 2 or array.shape[0] != channels):
        raise InputError(
            f"{where}: expected shape ({channels}, samples)"
            + (" or (samples,)" if channels == 1 else "")
            + f", got {array.shape}"
        )
    if array.ndim != 2 or (0 in array.shape and not allow_empty):
        raise InputError(f"{where}: expected channels x samples, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise InputError(f"{where}: expected real numbers, got dtype {array.dtype}")
    out = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(out).all():
        raise InputError(f"{where}: contains NaN or infinite samples")
    return out
