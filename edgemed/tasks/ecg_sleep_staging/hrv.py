"""Heart-rate-variability features per sleep epoch, as sleepecg 0.6 computes them (BSD-3).

What the sleepecg GRU stagers were trained on, for one recording, row per 30 s epoch:

- ``hrv-time`` (26 columns, :data:`edgemed.kernels.HRV_TIME_DOMAIN_FEATURES`): edgemed's C++
  kernel :func:`edgemed.kernels.hrv_time_domain` on the valid RR intervals. sleepecg marks
  intervals outside ``[min_rri, max_rri]`` NaN and keeps them in place; the kernel takes finite
  intervals only, so it runs on the valid ones and two things are corrected here, in NumPy:
  (1) in an epoch whose window holds an invalid interval, successive differences across that
  interval are NaN in sleepecg (not a difference of two non-adjacent beats), so the 13
  difference-based columns (RMSSD ... CVI) are recomputed from the within-run differences;
  (2) pNN50/pNN20 divide by the widest window's interval count *including* invalid intervals.
- ``hrv-frequency`` (7 columns): computed here in NumPy (the kernels have no spectral HRV):
  the RR series linearly interpolated at ``rri_resample_hz`` (NaN outside the beats and next to
  invalid intervals), one window of ``lookback + lookforward`` seconds per epoch, a periodogram
  (boxcar, mean removed, one-sided density; windows with at most ``max_nan_fraction`` NaN use the
  valid samples with a Hann window, zero-padded), trapezoid band powers VLF/LF/HF and ratios.
- metadata (3 columns): recording start as seconds since midnight, age in years, gender
  (0 female, 1 male); constant over the recording, NaN when not given.

Exactly sleepecg's arithmetic (``_hrv_timedomain_features``, ``_hrv_frequencydomain_features``,
``_metadata_features``); the tests compare against sleepecg on a real recording.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ... import kernels

__all__ = [
    "FREQUENCY_FEATURES",
    "METADATA_FEATURES",
    "SLEEP_FEATURES",
    "HrvSettings",
    "frequency_domain",
    "sleep_features",
    "time_domain",
]

FloatArray = npt.NDArray[np.float64]

FREQUENCY_FEATURES = ("total_power", "VLF", "LF", "LF_norm", "HF", "HF_norm", "LF_HF_ratio")
METADATA_FEATURES = ("recording_start_time", "age", "gender")
SLEEP_FEATURES = (*kernels.HRV_TIME_DOMAIN_FEATURES, *FREQUENCY_FEATURES, *METADATA_FEATURES)
"""The 36 columns the sleepecg ``wrn-gru-mesa`` classifier reads, in its order."""

# Columns of the time-domain block that depend on successive differences (sleepecg's ``SD``).
_SD_COLUMNS = tuple(
    kernels.HRV_TIME_DOMAIN_FEATURES.index(name)
    for name in (
        *("RMSSD", "SDSD", "NN50", "NN20", "pNN50", "pNN20", "cvSD"),
        *("SD1", "SD2", "S", "SD1_SD2_ratio", "CSI", "CVI"),
    )
)
_PNN = (
    kernels.HRV_TIME_DOMAIN_FEATURES.index("pNN50"),
    kernels.HRV_TIME_DOMAIN_FEATURES.index("pNN20"),
)
_NN = (
    kernels.HRV_TIME_DOMAIN_FEATURES.index("NN50"),
    kernels.HRV_TIME_DOMAIN_FEATURES.index("NN20"),
)


@dataclass(frozen=True, kw_only=True)
class HrvSettings:
    """sleepecg's ``feature_extraction_params`` for the classifier (seconds and Hz)."""

    epoch_seconds: float = 30.0
    lookback_seconds: float = 120.0
    lookforward_seconds: float = 150.0
    min_rri_seconds: float = 0.3
    max_rri_seconds: float = 2.0
    rri_resample_hz: float = 4.0
    max_nan_fraction: float = 0.5


def _windows(times: FloatArray, starts: FloatArray, s: HrvSettings) -> list[npt.NDArray[np.intp]]:
    """Indices of ``times`` in each epoch's analysis window ``[t - lookback, t + lookforward)``."""
    lo = np.searchsorted(times, starts - s.lookback_seconds, side="left")
    hi = np.searchsorted(times, starts + s.lookforward_seconds, side="left")
    return [np.arange(a, b) for a, b in zip(lo, hi, strict=True)]


def _sd_features(nn: FloatArray, width: int) -> list[float]:
    """sleepecg's difference-based columns (``_SD_COLUMNS`` order) for one window whose ``nn``
    holds NaN: differences next to a NaN interval are NaN and ignored, as ``np.nan*`` do."""
    sd = np.diff(nn)
    ok = sd[np.isfinite(sd)]
    valid = nn[np.isfinite(nn)]
    nan = np.float64(np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        rmssd = np.sqrt(np.mean(ok**2)) if ok.size else nan
        sdsd = np.std(ok, ddof=1) if ok.size > 1 else nan
        sdnn = np.std(valid, ddof=1) if valid.size > 1 else nan
        nn50 = np.float64(np.sum(np.abs(ok) > 0.05))
        nn20 = np.float64(np.sum(np.abs(ok) > 0.02))
        denom = np.float64(width - 1)
        cvsd = sdsd / (np.mean(ok) if ok.size else nan)
        sd1 = (sdsd**2 * 0.5) ** 0.5
        sd2 = (2 * sdnn**2 - sd1**2) ** 0.5
        values = (
            rmssd, sdsd, nn50, nn20, nn50 / denom, nn20 / denom, cvsd, sd1, sd2,
            np.pi * sd1 * sd2, sd1 / sd2, sd2 / sd1, np.log10(sd1 * sd2 * 16),
        )  # fmt: skip
    return [float(v) for v in values]


def time_domain(
    rri: FloatArray, rri_times: FloatArray, starts: FloatArray, s: HrvSettings
) -> FloatArray:
    """The 26 time-domain columns per epoch; ``rri`` holds NaN where an interval is invalid."""
    valid = np.isfinite(rri)
    out = kernels.hrv_time_domain(
        rri[valid], rri_times[valid], starts, s.lookback_seconds, s.lookforward_seconds
    )
    windows = _windows(rri_times, starts, s)
    width = max((w.size for w in windows), default=0)  # sleepecg counts invalid ones too
    with np.errstate(divide="ignore", invalid="ignore"):
        for nn_col, p_col in zip(_NN, _PNN, strict=True):
            out[:, p_col] = out[:, nn_col] / np.float64(width - 1)
    for e, idx in enumerate(windows):
        if not valid[idx].all():
            out[e, list(_SD_COLUMNS)] = _sd_features(rri[idx], width)
    return out


def _interp_nan(x_new: FloatArray, x: FloatArray, y: FloatArray) -> FloatArray:
    """``scipy.interpolate.interp1d(x, y, bounds_error=False)(x_new)`` (linear, NaN outside)."""
    if x.size == 0:
        return np.full(x_new.shape, np.nan)
    y_new = np.interp(x_new, x, y)
    y_new[(x_new < x[0]) | (x_new > x[-1])] = np.nan
    return y_new


def _periodogram(rows: FloatArray, fs: float, nfft: int, hann: bool) -> FloatArray:
    """One-sided PSD density of each row (``scipy.signal.periodogram``, detrend 'constant')."""
    n = rows.shape[-1]
    # scipy's get_window('hann', n) is the periodic Hann window
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n) if hann else np.ones(n)
    detrended = rows - rows.mean(axis=-1, keepdims=True)
    spectrum = np.fft.rfft(detrended * window, n=nfft, axis=-1)
    psd = (np.conjugate(spectrum) * spectrum).real / (fs * float((window * window).sum()))
    if nfft % 2:
        psd[..., 1:] *= 2
    else:
        psd[..., 1:-1] *= 2
    return psd


def _trapezoid(y: FloatArray, x: FloatArray) -> FloatArray:
    """``numpy.trapezoid(y, x)`` along the last axis (same operation order)."""
    d = np.diff(x)
    return np.add.reduce(d * (y[..., 1:] + y[..., :-1]) / 2.0, axis=-1)  # type: ignore[no-any-return]


def frequency_domain(
    rri: FloatArray, rri_times: FloatArray, starts: FloatArray, s: HrvSettings
) -> FloatArray:
    """The 7 frequency-domain columns per epoch (NaN-aware, as sleepecg)."""
    fs = s.rri_resample_hz
    grid = np.arange(
        starts[0] - s.lookback_seconds, stop=starts[-1] + s.lookforward_seconds, step=1 / fs
    )
    series = _interp_nan(grid, rri_times, rri)
    size = int((s.lookback_seconds + s.lookforward_seconds) * fs)
    step = int(fs * s.epoch_seconds)
    rows = np.lib.stride_tricks.sliding_window_view(series, size)[::step][: starts.size]
    if rows.shape[0] != starts.size:  # only if lookback/lookforward/epoch are not on the grid
        raise ValueError(f"{rows.shape[0]} spectral windows for {starts.size} epochs")
    nfft = rows.shape[1]
    psd = np.full((rows.shape[0], nfft // 2 + 1), np.nan)
    nan_fraction = np.mean(np.isnan(rows), axis=1)
    full = nan_fraction == 0
    if full.any():
        psd[full] = _periodogram(rows[full], fs, nfft, hann=False)
    partial = np.flatnonzero((nan_fraction <= s.max_nan_fraction) & ~full & (nan_fraction < 1))
    for i in partial:
        part = rows[i][~np.isnan(rows[i])]
        psd[i] = _periodogram(part[np.newaxis, :], fs, nfft, hann=True)[0]
    freq: FloatArray = np.fft.rfftfreq(nfft, 1.0 / fs).astype(np.float64)
    bands = (
        freq <= 0.4,
        (freq > 0.0033) & (freq <= 0.04),
        (freq > 0.04) & (freq <= 0.15),
        (freq > 0.15) & (freq <= 0.4),
    )
    total, vlf, lf, hf = (_trapezoid(psd[:, m], freq[m]) for m in bands)
    with np.errstate(divide="ignore", invalid="ignore"):
        lf_norm = lf / (lf + hf) * 100
        hf_norm = hf / (lf + hf) * 100
        ratio = lf / hf
    out: FloatArray = np.vstack((total, vlf, lf, lf_norm, hf, hf_norm, ratio)).T
    return out


def sleep_features(
    peaks: npt.NDArray[np.int64],
    fs: float,
    n_epochs: int,
    *,
    start_seconds: float | None,
    age: float | None,
    gender: float | None,
    settings: HrvSettings,
) -> FloatArray:
    """(n_epochs, 36) features of :data:`SLEEP_FEATURES` from R-peak sample indices; NaN where
    a feature is undefined (the caller replaces non-finite values by the mask value)."""
    beat_times = peaks.astype(np.float64) / fs
    rri = kernels.rr_intervals(peaks, fs)
    rri = np.where((rri < settings.min_rri_seconds) | (rri > settings.max_rri_seconds), np.nan, rri)
    rri_times = beat_times[1:]
    starts = np.arange(n_epochs, dtype=np.float64) * settings.epoch_seconds
    meta = np.full((n_epochs, 3), np.nan)
    for col, value in enumerate((start_seconds, age, gender)):
        if value is not None:
            meta[:, col] = value
    return np.hstack(
        (
            time_domain(rri, rri_times, starts, settings),
            frequency_domain(rri, rri_times, starts, settings),
            meta,
        )
    )
