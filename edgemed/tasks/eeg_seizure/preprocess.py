"""Stage 2 for the iEEG seizure model: one raw window -> normalised 1 Hz spectrogram.

The model (brainmaze-eeg-models ``seizure`` 'modelA', Sladky et al. 2022) reads a spectrogram,
not raw samples. This module reproduces the package's ``preprocess_input`` exactly (checked
against it in the tests):

1. z-score the window's raw samples in float64 (population std; see ``spectrogram_features``);
2. cut 1 s segments (``nperseg = fs``) every 0.5 s (C++ kernel ``sliding_windows``, a view);
3. per segment: remove the mean, multiply by a periodic Tukey window (alpha 0.25), FFT, keep
   bins 0-99 Hz, PSD density scaling (``scipy.signal.spectrogram`` defaults) -- **NumPy**, as the
   kernels have no STFT;
4. z-score every frequency bin over time, over the columns with non-zero power (NumPy).

Input policy: one channel, exactly ``window_samples`` finite samples at ``sampling_rate_hz``
(the manifest's stream window), as ``(samples,)`` or ``(1, samples)``. NaN/inf, a wrong length or
channel count, or a window with no signal (flat everywhere) raise :class:`InputError`. The package
zero-fills NaN inside a window; we refuse instead, as ``Pipeline.stream`` does for gaps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ... import kernels
from ...errors import InputError, ManifestError
from ...manifest import Manifest, parse_section
from ..prepared import Prepared

__all__ = [
    "EEGContext",
    "EEGSeizurePreprocess",
    "EEGSeizurePreprocessor",
    "golden_inputs",
    "spectrogram_features",
    "tukey_periodic",
]


@dataclass(frozen=True, kw_only=True)
class EEGSeizurePreprocess:
    """The manifest's ``preprocess`` section for the seizure model."""

    sampling_rate_hz: int  # whole, even, >= 200 (the 1 Hz / 0.5 s spectrogram grid)
    window_samples: int  # raw samples per model input (300 s for the published model)
    freq_bins: int  # spectrogram rows kept: 0 .. freq_bins-1 Hz
    tukey_alpha: float  # scipy.signal.spectrogram's default window ('tukey', 0.25)


@dataclass(frozen=True, kw_only=True)
class EEGContext:
    """Per input: which 1 s spectrogram columns saw real signal (not a flat stretch)."""

    valid_columns: npt.NDArray[np.bool_]  # (n_columns,), column j centred (j + 1) * 0.5 s


def tukey_periodic(n: int, alpha: float) -> npt.NDArray[np.float64]:
    """``scipy.signal.get_window(('tukey', alpha), n)``: the periodic (DFT-even) Tukey window."""
    m = n + 1  # periodic = symmetric window of n + 1 points without its last point
    k = np.arange(m, dtype=np.float64)
    width = math.floor(alpha * (m - 1) / 2.0)
    w = np.ones(m)
    w[: width + 1] = 0.5 * (1 + np.cos(np.pi * (-1 + 2.0 * k[: width + 1] / alpha / (m - 1))))
    tail = k[m - width - 1 :]
    w[m - width - 1 :] = 0.5 * (
        1 + np.cos(np.pi * (-2.0 / alpha + 1 + 2.0 * tail / alpha / (m - 1)))
    )
    return w[:n]


def spectrogram_features(
    signal: npt.NDArray[np.float64], fs: int, freq_bins: int, alpha: float
) -> npt.NDArray[np.float32]:
    """Steps 1-4 of the module docstring for one channel ``(samples,)`` -> (freq_bins, n_cols)."""
    # float64 z-score, not kernels.zscore_windows: that kernel returns float32, and on an exactly
    # flat stretch float32 rounding turns the package's tiny-but-non-zero column power into 0,
    # which changes the per-bin statistics (measured max |diff| 1.09 against the package).
    sd = float(signal.std())
    z = (signal - signal.mean()) / (sd if sd > 0 else 1.0)
    hop = fs // 2
    frames = kernels.sliding_windows(z, fs, hop)  # (n_cols, fs) zero-copy view
    window = tukey_periodic(fs, alpha)
    segs = (frames - frames.mean(axis=1, keepdims=True)) * window
    spec = np.fft.rfft(segs, n=fs, axis=1)[:, :freq_bins]
    power = (spec.real**2 + spec.imag**2) / (fs * float(np.sum(window**2)))
    power[:, 1:] *= 2.0  # one-sided density; the Nyquist bin (fs/2 >= 100) is never kept
    sxx = np.ascontiguousarray(power.T)  # (freq_bins, n_cols)
    valid = sxx.sum(axis=0) != 0
    if valid.any():
        sub = sxx[:, valid]
        mu = sub.mean(axis=1, keepdims=True)
        sd = sub.std(axis=1, keepdims=True)
        sxx[:, valid] = (sub - mu) / np.where(sd > 0, sd, 1.0)
    return sxx.astype(np.float32)


def _flat_columns(signal: npt.NDArray[np.float64], fs: int) -> npt.NDArray[np.bool_]:
    """Column j (samples [j*hop, j*hop + fs)) is valid unless the signal is constant there
    (the package's rule for "not evaluated": disconnected or saturated lead)."""
    hop = fs // 2
    blocks = signal[: (signal.shape[0] // hop) * hop].reshape(-1, hop)
    hi, lo = blocks.max(axis=1), blocks.min(axis=1)
    return np.asarray(np.maximum(hi[:-1], hi[1:]) > np.minimum(lo[:-1], lo[1:]))


class EEGSeizurePreprocessor:
    """One raw iEEG window (1 channel, ``window_samples`` at ``sampling_rate_hz``) -> ``x``."""

    def __init__(self, manifest: Manifest) -> None:
        config = parse_section(EEGSeizurePreprocess, manifest.preprocess, "manifest.preprocess")
        fs = config.sampling_rate_hz
        if fs < 200 or fs % 2:
            raise ManifestError("manifest.preprocess.sampling_rate_hz: must be even and >= 200")
        if config.window_samples < 2 * fs or config.window_samples % (fs // 2):
            raise ManifestError(
                "manifest.preprocess.window_samples: must be >= 2 s and a whole number of 0.5 s"
            )
        if not 1 <= config.freq_bins <= fs // 2 or not 0 < config.tukey_alpha <= 1:
            raise ManifestError("manifest.preprocess: freq_bins or tukey_alpha out of range")
        stream = manifest.stream
        if stream is not None and (
            stream.channels != 1
            or stream.samples != config.window_samples
            or stream.sampling_rate_hz != fs
        ):
            raise ManifestError("manifest.stream: must match preprocess (1 channel, same window)")
        self.config = config
        self.n_columns = (config.window_samples - fs) // (fs // 2) + 1
        self._input = manifest.inputs[0].name

    def signal(self, item: object) -> npt.NDArray[np.float64]:
        """Validate one caller window and return it as float64 (samples,)."""
        c = self.config
        if not isinstance(item, np.ndarray):
            raise InputError(
                f"expected a numpy array (1, {c.window_samples}) of raw iEEG at "
                f"{c.sampling_rate_hz} Hz, got {type(item).__name__}"
            )
        if item.dtype.kind not in "fiu":
            raise InputError(f"expected real numbers, got dtype {item.dtype}")
        arr = item[0] if item.ndim == 2 and item.shape[0] == 1 else item
        if arr.ndim != 1:
            raise InputError(
                f"expected one channel, shape (1, {c.window_samples}) or ({c.window_samples},), "
                f"got {item.shape}: the model reads one channel; run one pipeline per channel"
            )
        if arr.shape[0] != c.window_samples:
            raise InputError(
                f"expected {c.window_samples} samples ({c.window_samples / c.sampling_rate_hz:g} s "
                f"at {c.sampling_rate_hz} Hz), got {arr.shape[0]}; use Pipeline.stream for "
                "longer signals"
            )
        sig = arr.astype(np.float64)
        if not np.isfinite(sig).all():
            raise InputError("signal contains NaN or infinity (gaps must not reach the model)")
        return sig

    def __call__(self, item: object) -> Prepared:
        sig = self.signal(item)
        c = self.config
        valid = _flat_columns(sig, c.sampling_rate_hz)
        if not valid.any():
            raise InputError("signal is flat over the whole window (disconnected electrode?)")
        x = spectrogram_features(sig, c.sampling_rate_hz, c.freq_bins, c.tukey_alpha)
        return Prepared(
            tensors={self._input: x[np.newaxis]},
            # (samples,) and (1, samples) are the same window: hash the (1, samples) form.
            input_sha256=Prepared.array_sha256(np.asarray(item).reshape(1, -1)),
            input_kind="eeg",
            context=EEGContext(valid_columns=valid),
        )


def golden_inputs(manifest: Manifest) -> list[object]:
    """The bundle's golden windows: ``golden/inputs.npy``, float32 (n, 1, window_samples)."""
    windows: Any = np.load(manifest.path("golden_inputs"), allow_pickle=False)
    if windows.ndim != 3 or windows.shape[1] != 1 or windows.dtype != np.float32:
        raise ManifestError(f"{manifest.id}: golden inputs must be float32 (n, 1, samples)")
    return [np.ascontiguousarray(w) for w in windows]
