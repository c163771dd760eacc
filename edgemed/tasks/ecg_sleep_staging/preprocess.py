"""Stage 2 for ECG sleep staging: one night of single-lead ECG -> HRV features per 30 s epoch.

Caller input (one recording): an :class:`EcgRecording`, or a mapping with the same keys::

    {"ecg": samples, "fs": 256.0, "start_time": "23:10", "age": 64, "gender": "female"}

- ``ecg``: 1-D array of samples, finite, at least one epoch (30 s) long.
- ``units`` (optional): "V", "mV", "uV"/"µV"; converted to mV. Only the beat timing is used, so
  the gain does not change the stages (tested: mV and µV give identical results), but the
  result's ``quality`` reports the amplitude, flat stretches and clipping, and flags an
  amplitude implausible for the unit (undeclared: mV assumed).
- ``fs``: sampling rate in Hz, within the manifest's ``[min_fs_hz, max_fs_hz]``.
- ``start_time`` (optional): clock time of the first sample, as ``datetime.time``/``datetime``,
  ``"HH:MM[:SS]"`` or seconds since midnight. ``age`` (years) and ``gender`` (``"female"``/``"male"``
  or 0/1) are optional too. The classifier was trained with all three (MESA cohort): leaving
  them out is allowed (they become the mask value -1, exactly as sleepecg does) but moves the
  input away from the training data.

Steps: R peaks (:func:`edgemed.kernels.detect_r_peaks`) -> RR intervals -> the 36 features of
:mod:`edgemed.tasks.ecg_sleep_staging.hrv` per epoch -> non-finite values replaced by ``mask_value`` ->
tensor ``features`` (1, epochs, 36) float32. Epochs are ``floor(duration / 30 s)``, the first
starting at the first sample; a trailing partial epoch is not staged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ... import kernels
from ...errors import InputError, ManifestError, ModelError
from ...manifest import Manifest, parse_section
from ..prepared import Prepared
from .hrv import SLEEP_FEATURES, HrvSettings, sleep_features
from .quality import SignalQuality, assess, to_unit

# Robust peak-to-peak of a surface ECG lead, mV: R waves are ~0.5-3 mV; generous both ways
# (low-gain leads, large QRS), so only a unit error (x1000) falls outside.
ECG_PLAUSIBLE_MV = (0.05, 20.0)

__all__ = [
    "EcgRecording",
    "SleepContext",
    "SleepFeaturePreprocess",
    "SleepFeaturePreprocessor",
    "coerce_recording",
    "golden_inputs",
]

_GENDERS = {"female": 0.0, "f": 0.0, "male": 1.0, "m": 1.0}


@dataclass(frozen=True, kw_only=True, eq=False)
class EcgRecording:
    """One single-lead ECG recording and the optional facts the sleep stager uses."""

    ecg: npt.ArrayLike
    fs: float
    start_time: dt.time | dt.datetime | str | float | None = None
    age: float | None = None
    gender: str | int | None = None
    units: str | None = None  # of ``ecg``; None: mV assumed (and checked for plausibility)


@dataclass(frozen=True, kw_only=True)
class SleepFeaturePreprocess:
    """The manifest's ``preprocess`` section for ECG sleep staging (sleepecg's parameters)."""

    epoch_seconds: float
    lookback_seconds: float
    lookforward_seconds: float
    min_rri_seconds: float
    max_rri_seconds: float
    rri_resample_hz: float
    max_nan_fraction: float
    mask_value: float
    min_fs_hz: float
    max_fs_hz: float
    max_hours: float
    features: list[str]


@dataclass(frozen=True, kw_only=True)
class SleepContext:
    n_epochs: int
    epoch_seconds: float
    n_beats: int
    invalid_rri: int  # RR intervals outside [min_rri, max_rri] (ignored by the features)
    metadata_given: tuple[str, ...]  # which of start_time, age, gender the caller gave
    quality: SignalQuality


def coerce_recording(item: object) -> EcgRecording:
    """An :class:`EcgRecording` from the caller's input, or InputError naming the problem."""
    if isinstance(item, EcgRecording):
        return item
    if not isinstance(item, Mapping):
        raise InputError(
            "expected an EcgRecording or a mapping {'ecg': samples, 'fs': Hz, ...}, "
            f"got {type(item).__name__}"
        )
    allowed = {"ecg", "fs", "start_time", "age", "gender", "units"}
    unknown = sorted(str(k) for k in item if k not in allowed)
    if unknown:
        raise InputError(f"unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    for key in ("ecg", "fs"):
        if key not in item:
            raise InputError(f"missing key {key!r}")
    return EcgRecording(**{str(k): v for k, v in item.items()})


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InputError(f"{name}: expected a number, got {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out):
        raise InputError(f"{name}: expected a finite number, got {out}")
    return out


def _start_seconds(value: object) -> float | None:
    """Seconds since midnight (sleepecg's ``_time_to_sec``: whole seconds)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        value = value.time()
    if isinstance(value, dt.time):
        return float(value.hour * 3600 + value.minute * 60 + value.second)
    if isinstance(value, str):
        try:
            parsed = dt.time.fromisoformat(value.strip())
        except ValueError:
            raise InputError(f"start_time: expected 'HH:MM[:SS]', got {value!r}") from None
        return _start_seconds(parsed)
    seconds = _number(value, "start_time")
    if not 0 <= seconds < 86400:
        raise InputError(f"start_time: seconds since midnight must be in [0, 86400), got {value}")
    return float(math.floor(seconds))


def _age(value: object) -> float | None:
    if value is None:
        return None
    age = _number(value, "age")
    if not 0 <= age <= 130:
        raise InputError(f"age: expected years in [0, 130], got {age}")
    return age


def _gender(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() in _GENDERS:
        return _GENDERS[value.strip().lower()]
    if not isinstance(value, bool) and isinstance(value, int | np.integer) and value in (0, 1):
        return float(value)
    raise InputError(f"gender: expected 'female'/'male' or 0/1 (sleepecg's Gender), got {value!r}")


class SleepFeaturePreprocessor:
    """ECG -> R peaks -> RR intervals -> (1, epochs, 36) features for the GRU stager."""

    def __init__(self, manifest: Manifest) -> None:
        c = parse_section(SleepFeaturePreprocess, manifest.preprocess, "manifest.preprocess")
        if list(c.features) != list(SLEEP_FEATURES):
            raise ManifestError(
                "manifest.preprocess.features: this edgemed computes "
                f"{list(SLEEP_FEATURES)}, the model expects {c.features}"
            )
        if not (c.epoch_seconds > 0 and c.lookback_seconds >= 0 and c.lookforward_seconds > 0):
            raise ManifestError("manifest.preprocess: epoch/lookback/lookforward out of range")
        if not 60 < c.min_fs_hz < c.max_fs_hz:
            raise ManifestError("manifest.preprocess: need 60 < min_fs_hz < max_fs_hz")
        self.config = c
        self.settings = HrvSettings(
            epoch_seconds=c.epoch_seconds,
            lookback_seconds=c.lookback_seconds,
            lookforward_seconds=c.lookforward_seconds,
            min_rri_seconds=c.min_rri_seconds,
            max_rri_seconds=c.max_rri_seconds,
            rri_resample_hz=c.rri_resample_hz,
            max_nan_fraction=c.max_nan_fraction,
        )
        self._input = manifest.inputs[0].name

    def _signal(self, rec: EcgRecording) -> tuple[npt.NDArray[np.float64], float]:
        c = self.config
        fs = _number(rec.fs, "fs")
        if not c.min_fs_hz <= fs <= c.max_fs_hz:
            raise InputError(f"fs: {fs} Hz is outside [{c.min_fs_hz}, {c.max_fs_hz}] Hz")
        ecg = np.asarray(rec.ecg)
        if ecg.dtype.kind not in "fiu" or ecg.ndim != 1:
            raise InputError(
                f"ecg: expected a 1-D real array of samples, got {ecg.dtype} {ecg.shape}"
            )
        ecg = ecg.astype(np.float64, copy=False)
        if not np.isfinite(ecg).all():
            bad = int(np.flatnonzero(~np.isfinite(ecg))[0])
            raise InputError(f"ecg: sample {bad} is not finite (NaN or infinity)")
        seconds = ecg.size / fs
        if seconds < c.epoch_seconds:
            raise InputError(
                f"ecg: {seconds:.1f} s is shorter than one {c.epoch_seconds:g} s epoch"
            )
        if seconds > c.max_hours * 3600:
            raise InputError(f"ecg: {seconds / 3600:.1f} h exceeds {c.max_hours:g} h")
        if rec.units is not None:
            ecg = to_unit(ecg, str(rec.units), "mV")
        return ecg, fs

    def __call__(self, item: object) -> Prepared:
        rec = coerce_recording(item)
        ecg, fs = self._signal(rec)
        quality = assess(
            ecg, fs, unit="mV", declared=rec.units is not None, plausible=ECG_PLAUSIBLE_MV
        )
        meta = {
            "start_time": _start_seconds(rec.start_time),
            "age": _age(rec.age),
            "gender": _gender(rec.gender),
        }
        peaks = kernels.detect_r_peaks(ecg, fs)
        if peaks.size < 2:
            raise InputError(f"ecg: {peaks.size} heartbeat(s) detected; is this an ECG lead?")
        n_epochs = int(ecg.size / fs // self.config.epoch_seconds)
        features = sleep_features(
            peaks,
            fs,
            n_epochs,
            start_seconds=meta["start_time"],
            age=meta["age"],
            gender=meta["gender"],
            settings=self.settings,
        )
        mask = self.config.mask_value
        features[~np.isfinite(features)] = mask  # sleepecg.stage() does the same
        if np.any(np.all(features == mask, axis=1)):
            # Keras would skip such an epoch (Masking); the ONNX graph has no masking. Cannot
            # happen: NN50 is a count (>= 0) in every epoch.
            raise ModelError("an epoch has every feature equal to the mask value")
        rr = np.diff(peaks) / fs
        invalid = int(
            np.sum((rr < self.settings.min_rri_seconds) | (rr > self.settings.max_rri_seconds))
        )
        return Prepared(
            tensors={self._input: features[np.newaxis].astype(np.float32)},
            input_sha256=_input_sha256(ecg, fs, meta),
            input_kind="ecg",
            context=SleepContext(
                n_epochs=n_epochs,
                epoch_seconds=self.config.epoch_seconds,
                n_beats=int(peaks.size),
                invalid_rri=invalid,
                metadata_given=tuple(k for k, v in meta.items() if v is not None),
                quality=quality,
            ),
        )


def _input_sha256(ecg: npt.NDArray[np.float64], fs: float, meta: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(Prepared.array_sha256(ecg).encode())
    digest.update(json.dumps({"fs": fs, **meta}, sort_keys=True).encode())
    return digest.hexdigest()


def golden_inputs(manifest: Manifest) -> list[object]:
    """The bundle's golden recordings: one ECG (int16 microvolts) under several metadata cases
    (``start_seconds``/``age``/``gender`` arrays, NaN meaning not given)."""
    with np.load(manifest.path("golden_inputs"), allow_pickle=False) as data:
        ecg = data["ecg_uv"].astype(np.float64) / 1000.0
        fs = float(data["fs"])
        cases = zip(data["start_seconds"], data["age"], data["gender"], strict=True)
        items: list[object] = []
        for start, age, gender in cases:
            items.append(
                EcgRecording(
                    ecg=ecg,
                    fs=fs,
                    start_time=None if np.isnan(start) else float(start),
                    age=None if np.isnan(age) else float(age),
                    gender=None if np.isnan(gender) else int(gender),
                )
            )
    return items
