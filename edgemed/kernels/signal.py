"""Biosignal kernels (``csrc/src/signal*.cpp``, ``csrc/src/ecg.cpp``): IIR filtering, filter
design, resampling, windowing and R-peak detection.

Signals are ``(samples,)`` or ``(channels, samples)`` arrays, processed along the last axis.
float64 arrays are read in place through their strides (slices, reversed and Fortran-ordered views
included); float32 and integer arrays are converted to float64 first, so results are always
float64 (computed in double precision). NaN or infinity raises :class:`edgemed.InputError`.

The filtering functions follow ``scipy.signal`` semantics exactly (same defaults, same padding,
same ``zi`` layout), without needing SciPy at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ._checks import native, require_finite
from ._native import _kernels

__all__ = [
    "HRV_TIME_DOMAIN_FEATURES",
    "butter_sos",
    "detect_r_peaks",
    "hrv_time_domain",
    "notch_sos",
    "resample_poly",
    "rr_intervals",
    "sliding_windows",
    "sosfilt",
    "sosfilt_zi",
    "sosfiltfilt",
    "zscore_windows",
]

FloatArray = npt.NDArray[np.float64]
PadType = Literal["odd", "even", "constant"]
BandType = Literal["lowpass", "highpass", "bandpass", "bandstop"]

_LAYOUT = "float64 array (samples,) or (channels, samples)"

HRV_TIME_DOMAIN_FEATURES = (
    "meanNN", "maxNN", "minNN", "rangeNN", "SDNN", "RMSSD", "SDSD", "NN50", "NN20", "pNN50",
    "pNN20", "medianNN", "madNN", "iqrNN", "cvNN", "cvSD", "meanHR", "maxHR", "minHR", "stdHR",
    "SD1", "SD2", "S", "SD1_SD2_ratio", "CSI", "CVI",
)  # fmt: skip
"""Column names of :func:`hrv_time_domain`, in order (sleepecg's names)."""


def _require_finite(arr: FloatArray, name: str) -> None:
    """InputError on NaN or infinity, without a signal-sized boolean temporary.

    A finite sum proves every element finite (NaN and +-inf propagate); only an overflowing
    sum of finite values needs the exact element-wise check.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        total = arr.sum()
    if not np.isfinite(total):
        require_finite(arr, name)


def _signal(x: npt.ArrayLike, name: str, *, check: bool = True) -> tuple[FloatArray, bool]:
    """``x`` as a float64 (channels, samples) array (a view when it already is float64).

    ``check=False`` leaves the NaN/infinity check to the kernel (sosfiltfilt checks its output
    while it is in cache, a pass over the signal less)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise InputError(f"{name}: expected a real float or integer array, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2):
        raise InputError(f"{name}: expected {_LAYOUT}, got shape {arr.shape}")
    if arr.dtype != np.float64 or not arr.flags.aligned:  # the kernels read aligned doubles
        arr = arr.astype(np.float64)
    if check:
        _require_finite(arr, name)
    return (arr[np.newaxis, :], True) if arr.ndim == 1 else (arr, False)


def _sos(sos: npt.ArrayLike) -> FloatArray:
    arr = np.atleast_2d(np.asarray(sos, dtype=np.float64))
    if arr.ndim != 2 or arr.shape[1] != 6 or arr.shape[0] == 0:
        raise InputError(f"sos: expected float64 array (n_sections, 6), got shape {arr.shape}")
    require_finite(arr, "sos")
    return np.ascontiguousarray(arr)


@overload
def sosfilt(sos: npt.ArrayLike, x: npt.ArrayLike, zi: None = None) -> FloatArray: ...
@overload
def sosfilt(
    sos: npt.ArrayLike, x: npt.ArrayLike, zi: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]: ...
def sosfilt(
    sos: npt.ArrayLike, x: npt.ArrayLike, zi: npt.ArrayLike | None = None
) -> FloatArray | tuple[FloatArray, FloatArray]:
    """Causal cascade of second-order sections along the last axis (``scipy.signal.sosfilt``).

    Direct Form II transposed with float64 state. ``sos`` is (n_sections, 6) with
    ``sos[:, 3] == 1``. Without ``zi`` returns ``y``; with ``zi`` (initial delays, shape
    (n_sections, 2) for 1-D ``x`` or (n_sections, channels, 2) for 2-D) returns ``(y, zf)``.
    """
    s = _sos(sos)
    arr, one_d = _signal(x, "x")
    state = None
    if zi is not None:
        state = np.asarray(zi, dtype=np.float64)
        require_finite(state, "zi")
        expected = (s.shape[0], 2) if one_d else (s.shape[0], arr.shape[0], 2)
        if state.shape != expected:
            raise InputError(f"zi: expected shape {expected}, got {state.shape}")
        state = state.reshape(s.shape[0], arr.shape[0], 2)
    y, zf = native(_kernels.sosfilt, s, arr, state)
    out = y[0] if one_d else y
    if zf is None:
        return out
    return out, (zf[:, 0, :] if one_d else zf)


def sosfilt_zi(sos: npt.ArrayLike) -> FloatArray:
    """Delays (n_sections, 2) of the cascade's steady state for a unit step
    (``scipy.signal.sosfilt_zi``); scale by the first sample to start without a transient.

    Raises InputError when a section has a pole at z = 1 (no steady state exists).
    """
    return native(_kernels.sosfilt_zi, _sos(sos))


def sosfiltfilt(
    sos: npt.ArrayLike,
    x: npt.ArrayLike,
    padtype: PadType | None = "odd",
    padlen: int | None = None,
) -> FloatArray:
    """Zero-phase forward-backward filter along the last axis (``scipy.signal.sosfiltfilt``).

    Same edge handling as SciPy: the signal is extended by ``padlen`` samples at each end
    (``'odd'``, ``'even'``, ``'constant'`` or ``None`` for no extension), both passes start from
    ``sosfilt_zi`` scaled by the first sample they see, and the default ``padlen`` is
    ``3 * (2 * n_sections + 1 - min(#(sos[:, 2] == 0), #(sos[:, 5] == 0)))``. ``x`` must have
    more samples than ``padlen`` (InputError otherwise, where SciPy raises ValueError).
    Large multichannel inputs are filtered on 2 threads (one when the process's CPU affinity
    allows a single CPU).
    """
    if padtype not in ("odd", "even", "constant", None):
        raise InputError(f"padtype: expected 'odd', 'even', 'constant' or None, got {padtype!r}")
    if padlen is not None and (not isinstance(padlen, (int, np.integer)) or padlen < 0):
        raise InputError(f"padlen: expected a non-negative integer or None, got {padlen!r}")
    s = _sos(sos)
    arr, one_d = _signal(x, "x", check=False)  # the native layer raises on NaN or infinity
    pad = "none" if padtype is None else padtype
    y = native(_kernels.sosfiltfilt, s, arr, pad, -1 if padlen is None else int(padlen))
    return y[0] if one_d else y


def notch_sos(f0: float, q: float, fs: float) -> FloatArray:
    """Second-order IIR notch at ``f0`` Hz with quality factor ``q`` (-3 dB bandwidth f0 / q) as
    one SOS row (1, 6); the coefficients of ``scipy.signal.iirnotch(f0, q, fs)``."""
    return native(_kernels.notch_sos, float(f0), float(q), float(fs))


def butter_sos(
    order: int, cutoff: float | Sequence[float], btype: BandType, fs: float
) -> FloatArray:
    """Digital Butterworth filter as SOS rows, like ``scipy.signal.butter(order, cutoff, btype,
    fs=fs, output='sos')``.

    ``cutoff`` is one frequency in Hz for low/highpass, ``(low, high)`` for band filters, each in
    (0, fs / 2). The transfer function equals SciPy's (prewarped bilinear transform of the analog
    prototype); the grouping of poles and zeros into rows may differ, so compare responses, not
    coefficients.
    """
    if isinstance(cutoff, (int, float, np.integer, np.floating)):
        cuts = [float(cutoff)]
    else:
        cuts = [float(c) for c in cutoff]
    return native(_kernels.butter_sos, int(order), cuts, btype, float(fs))


def resample_poly(x: npt.ArrayLike, up: int, down: int) -> FloatArray:
    """Rational resampling by ``up / down`` along the last axis (``scipy.signal.resample_poly``
    with its defaults: Kaiser (beta 5) windowed-sinc FIR of ``20 * max(up, down) + 1`` taps,
    zero padding outside the signal). Output length is ``ceil(samples * up / down)``."""
    if not isinstance(up, (int, np.integer)) or not isinstance(down, (int, np.integer)):
        raise InputError(f"up and down: expected integers, got {up!r} and {down!r}")
    arr, one_d = _signal(x, "x")
    y = native(_kernels.resample_poly, arr, int(up), int(down))
    return y[0] if one_d else y


def _window_args(window: int, step: int) -> None:
    if window < 1 or step < 1:
        raise InputError(f"window and step: expected >= 1, got {window} and {step}")


def sliding_windows(x: npt.NDArray[Any], window: int, step: int) -> npt.NDArray[Any]:
    """Read-only zero-copy view of the windows of ``window`` samples starting every ``step``
    samples: (n_windows, window) for 1-D ``x``, (n_windows, channels, window) for 2-D, with
    ``n_windows = (samples - window) // step + 1`` (0 when ``samples < window``)."""
    arr = np.asarray(x)
    if arr.ndim not in (1, 2):
        raise InputError(f"x: expected array (samples,) or (channels, samples), got {arr.shape}")
    _window_args(window, step)
    if arr.shape[-1] < window:
        return np.empty((0, *arr.shape[:-1], window), dtype=arr.dtype)
    view = np.lib.stride_tricks.sliding_window_view(arr, window, axis=-1)[..., ::step, :]
    return np.moveaxis(view, -2, 0)


def zscore_windows(
    x: npt.ArrayLike, window: int, step: int, eps: float = 1e-8
) -> npt.NDArray[np.float32]:
    """Per-window, per-channel z-scores as float32, windows as in :func:`sliding_windows`.

    Each window of each channel is centred and divided by its population standard deviation
    (computed in float64). A window whose standard deviation is below ``eps`` (a flat lead or a
    disconnected electrode) becomes all zeros instead of amplified noise. Shape (n_windows,
    window) for 1-D ``x``, (n_windows, channels, window) for 2-D.
    """
    _window_args(window, step)
    if not eps >= 0:
        raise InputError(f"eps: expected >= 0, got {eps}")
    arr, one_d = _signal(x, "x")
    out = native(_kernels.zscore_windows, arr, int(window), int(step), float(eps))
    return out[:, 0, :] if one_d else out


def detect_r_peaks(ecg: npt.ArrayLike, fs: float) -> npt.NDArray[np.int64]:
    """Sample indices of the R peaks (heartbeats) of a single-lead ECG sampled at ``fs`` Hz.

    A port of ``sleepecg.detect_heartbeats`` (Pan & Tompkins with sleepecg's modifications; BSD
    3-clause): a zero-phase 5-30 Hz Butterworth band-pass (designed and applied by edgemed, no
    SciPy), a five-point derivative, 150 ms squared moving integration and adaptive thresholds
    with searchback. Requires ``fs > 60`` and a non-flat signal; units do not matter.
    """
    arr = np.asarray(ecg)
    if arr.ndim != 1:
        raise InputError(f"ecg: expected float64 array (samples,), got shape {arr.shape}")
    sig, _ = _signal(arr, "ecg")
    return native(_kernels.detect_r_peaks, sig[0], float(fs))


def rr_intervals(peaks: npt.ArrayLike, fs: float) -> FloatArray:
    """Intervals in seconds between consecutive R peaks given as sample indices at ``fs`` Hz."""
    arr = np.asarray(peaks)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise InputError(f"peaks: expected 1-D integer sample indices, got {arr.dtype} {arr.shape}")
    if not (np.isfinite(fs) and fs > 0):
        raise InputError(f"fs: expected a positive sampling rate, got {fs}")
    if arr.size and (arr[0] < 0 or np.any(np.diff(arr) <= 0)):
        raise InputError("peaks: expected non-negative, strictly increasing indices")
    return np.diff(arr).astype(np.float64) / float(fs)


def hrv_time_domain(
    rri: npt.ArrayLike,
    rri_times: npt.ArrayLike,
    window_times: npt.ArrayLike,
    lookback: float = 0.0,
    lookforward: float = 30.0,
) -> FloatArray:
    """Time-domain HRV features per analysis window, (n_windows, 26), columns as
    :data:`HRV_TIME_DOMAIN_FEATURES`; the values of sleepecg's ``_hrv_timedomain_features``.

    ``rri`` are RR intervals in seconds observed at ``rri_times`` (seconds, ascending); window w
    covers ``[window_times[w] - lookback, window_times[w] + lookforward)`` (default: 30 s epochs
    starting at each time). Standard deviations use ddof 1. Statistics that need more intervals
    than a window has are NaN. Faithful to sleepecg, pNN50/pNN20 divide by the interval count of
    the longest window minus one (not the window's own count), which biases them low in
    windows with fewer beats.
    """
    arrays = []
    for name, value in (("rri", rri), ("rri_times", rri_times), ("window_times", window_times)):
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim != 1:
            raise InputError(f"{name}: expected a 1-D float64 array, got shape {arr.shape}")
        require_finite(arr, name)
        arrays.append(arr)
    if not (np.isfinite(lookback) and np.isfinite(lookforward)):
        raise InputError("lookback and lookforward: expected finite numbers of seconds")
    return native(_kernels.hrv_time_domain, *arrays, float(lookback), float(lookforward))
