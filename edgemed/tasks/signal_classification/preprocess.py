"""Stage 2 for signal classifiers: one multi-lead window -> the model's one float32 tensor.

The window is the manifest's ``stream`` section: ``channels`` leads of ``samples`` samples at
``sampling_rate_hz`` (``Pipeline.stream`` cuts and resamples a longer signal into such windows
for any rate in ``[min_sampling_rate_hz, max_sampling_rate_hz]``). ``preprocess`` says what the
model reads: ``leads`` (their names, in the model's channel order), the ``units`` the samples
must be in, the per-window ``normalize`` (``none``, ``zscore`` per lead, or ``fixed``:
``(x - offset[lead]) / scale[lead]``) and the input ``layout`` (``ncs`` [batch, channels,
samples] or ``nsc`` [batch, samples, channels]).

Input policy (stated once, tested). One window, as one of:

* ``{"signal": array (channels, samples), "fs": rate in Hz, "units": optional}``: the caller's
  form. ``signal`` is floating point (a JSON list is read as float64), 1-D for a one-lead
  model; ``units`` (one string, or one per lead) is converted where both are volts (V, mV,
  uV) and refused where it differs otherwise; absent, the samples are taken to be in ``units``.
* an ``edgemed.io.Signal`` (a file read with ``read_signal``): the model's leads are picked by
  name and their units converted as above.
* a bare array (channels, samples): the model's window exactly, at ``sampling_rate_hz`` and in
  ``units`` -- what ``Pipeline.stream`` hands over after windowing and resampling.

The window must last exactly the model's window at its own rate (InputError: too short, or
longer -- ``Pipeline.stream`` handles longer signals); a rate outside the supported range, a
rate with no whole-sample window, another channel count, a dtype that is not floating point
(integer ADC counts have no units: convert them first), NaN or infinity raise
:class:`InputError`. A rate other than the model's is resampled with ``kernels.resample_poly``
as ``Pipeline.stream`` does (io/rates.py). Under ``zscore`` a constant lead (std < 1e-8, a
disconnected electrode) becomes zeros rather than amplified noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from ... import kernels
from ...errors import InputError, ManifestError
from ...manifest import Manifest, StreamWindow, parse_section
from ..prepared import Prepared

__all__ = [
    "SignalPreprocess",
    "SignalPreprocessor",
    "golden_inputs",
    "read_window_file",
    "unit_factor",
]

NORMALIZE = ("none", "zscore", "fixed")
LAYOUTS = ("ncs", "nsc")
VOLTS = {"V": 1.0, "mV": 1e-3, "uV": 1e-6, "µV": 1e-6, "μV": 1e-6}
ZSCORE_EPS = 1e-8
MAX_RATIO_TERM = 10_000  # as io/rates.py: resampling filters stay small
_WHERE = "manifest.preprocess"
_ITEM_KEYS = frozenset({"signal", "fs", "units"})

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True, kw_only=True)
class SignalPreprocess:
    """The manifest's ``preprocess`` section for signal classifiers."""

    leads: list[Any]  # lead names in the model's channel order; as many as stream.channels
    units: str  # what the model's samples are in ("mV", "uV", "mmHg", ...)
    normalize: str  # NORMALIZE
    layout: str  # LAYOUTS
    offset: list[Any] | None = None  # normalize "fixed": per lead, in `units`
    scale: list[Any] | None = None  # normalize "fixed": per lead, > 0


def unit_factor(given: str, wanted: str) -> float | None:
    """What samples in ``given`` units are multiplied by to be in ``wanted``; None: no
    conversion known (only volts convert)."""
    if given == wanted:
        return 1.0
    if given in VOLTS and wanted in VOLTS:
        return VOLTS[given] / VOLTS[wanted]
    return None


def _per_lead(values: Any, key: str, n: int, positive: bool) -> npt.NDArray[np.float64]:
    ok = isinstance(values, list) and len(values) == n
    ok = ok and all(type(v) in (int, float) and math.isfinite(v) for v in values)
    if not ok or (positive and min(values) <= 0):
        what = "positive " if positive else ""
        raise ManifestError(f"{_WHERE}.{key}: expected {n} finite {what}number(s), one per lead")
    return np.array(values, dtype=np.float64)[:, np.newaxis]


def _stream(manifest: Manifest, leads: int) -> StreamWindow:
    stream = manifest.stream
    if stream is None:
        raise ManifestError(
            "manifest.stream: a signal classifier needs its window (sampling_rate_hz, channels, "
            "samples, hop and the rate range it accepts)"
        )
    if stream.channels != leads:
        raise ManifestError(
            f"manifest.stream.channels: {stream.channels}, but preprocess.leads names {leads}"
        )
    return stream


def parse_preprocess(
    manifest: Manifest,
) -> tuple[SignalPreprocess, StreamWindow, tuple[npt.NDArray[np.float64], ...] | None]:
    """The section and the stream window, checked against each other and the model's input;
    with the fixed (offset, scale) columns of ``normalize: fixed``."""
    c = parse_section(SignalPreprocess, manifest.preprocess, _WHERE)
    leads = c.leads
    if not (isinstance(leads, list) and leads and all(isinstance(x, str) and x for x in leads)):
        raise ManifestError(f"{_WHERE}.leads: expected a non-empty list of lead names")
    if len(set(leads)) != len(leads):
        raise ManifestError(f"{_WHERE}.leads: names repeat")
    if not c.units.strip():
        raise ManifestError(f"{_WHERE}.units: state the units the model's samples are in")
    for key, value, allowed in (
        ("normalize", c.normalize, NORMALIZE),
        ("layout", c.layout, LAYOUTS),
    ):
        if value not in allowed:
            raise ManifestError(f"{_WHERE}.{key}: {value!r} is not one of {list(allowed)}")
    stream = _stream(manifest, len(leads))
    fixed = None
    if c.normalize == "fixed":
        fixed = (
            _per_lead(c.offset, "offset", len(leads), positive=False),
            _per_lead(c.scale, "scale", len(leads), positive=True),
        )
    elif c.offset is not None or c.scale is not None:
        raise ManifestError(f"{_WHERE}: offset and scale are for normalize 'fixed' only")
    _check_input(manifest, c.layout, stream)
    return c, stream, fixed


def _check_input(manifest: Manifest, layout: str, stream: StreamWindow) -> None:
    spec = manifest.inputs[0]
    want = (
        (stream.channels, stream.samples) if layout == "ncs" else (stream.samples, stream.channels)
    )
    shape = spec.shape
    ok = len(manifest.inputs) == 1 and spec.dtype == "float32" and len(shape) == 3
    ok = ok and all(isinstance(d, str) or d == w for d, w in zip(shape[1:], want, strict=True))
    if not ok:
        axes = "channels, samples" if layout == "ncs" else "samples, channels"
        raise ManifestError(
            f"manifest.inputs: a signal classifier takes one float32 input [batch, {axes}] = "
            f"[batch, {want[0]}, {want[1]}] (stream channels and samples, preprocess layout); "
            f"manifest declares {[(s.name, s.dtype, list(s.shape)) for s in manifest.inputs]}"
        )


def _samples(values: Any, channels: int) -> npt.NDArray[np.float64]:
    """The caller's samples as finite float64 (channels, n)."""
    if isinstance(values, list):  # JSON: numbers without a dtype
        try:
            values = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"signal: a list of numbers is expected ({exc})") from None
    if not isinstance(values, np.ndarray):
        raise InputError(
            f"signal: expected an array (channels, samples), got {type(values).__name__}"
        )
    if values.dtype.kind != "f":
        raise InputError(
            f"signal: expected floating-point samples in physical units, got dtype {values.dtype} "
            "(integer ADC counts must be converted to the model's units first)"
        )
    arr = values[np.newaxis] if values.ndim == 1 and channels == 1 else values
    if arr.ndim != 2 or arr.shape[0] != channels:
        one = " or (samples,)" if channels == 1 else ""
        raise InputError(
            f"signal: expected {channels} lead(s), shape ({channels}, samples){one}, got "
            f"{values.shape}"
        )
    out = np.asarray(arr, dtype=np.float64)
    if not np.isfinite(out).all():
        raise InputError("signal: contains NaN or infinity (gaps must not reach the model)")
    return out


@dataclass(frozen=True)
class _Window:
    """A caller window before it is checked against the model's."""

    values: Any
    fs: Any  # None: the model's rate (a bare array)
    units: tuple[str, ...] | None  # None: the model's units


def _unpack(item: object, c: SignalPreprocess) -> _Window:
    if isinstance(item, np.ndarray):
        return _Window(item, None, None)
    if isinstance(item, dict):
        unknown = sorted(map(str, set(item) - _ITEM_KEYS))
        if unknown or "signal" not in item or "fs" not in item:
            raise InputError(
                f"signal window: expected {{'signal': array, 'fs': Hz, 'units': optional}}, got "
                f"keys {sorted(map(str, item))}"
            )
        units = item.get("units")
        if isinstance(units, str):
            units = [units] * len(c.leads)
        if units is not None and not (
            isinstance(units, list | tuple) and all(isinstance(u, str) for u in units)
        ):
            raise InputError("signal window: units must be a string or one string per lead")
        return _Window(item["signal"], item["fs"], None if units is None else tuple(units))
    if all(hasattr(item, a) for a in ("data", "sampling_rate_hz", "channel_names", "units")):
        return _pick(item, c)  # an edgemed.io.Signal
    raise InputError(
        "expected one signal window: {'signal': array (channels, samples), 'fs': Hz}, an "
        f"edgemed.io.Signal, or the model's window as an array; got {type(item).__name__}"
    )


def _pick(signal: Any, c: SignalPreprocess) -> _Window:
    names = list(signal.channel_names)
    missing = [lead for lead in c.leads if lead not in names]
    if missing:
        raise InputError(
            f"signal has no lead(s) {missing} (the model reads {c.leads}; has {names})"
        )
    rows = [names.index(lead) for lead in c.leads]
    units = tuple(signal.units[i] for i in rows)
    return _Window(np.asarray(signal.data)[rows], signal.sampling_rate_hz, units)


class SignalPreprocessor:
    """One window -> the model's input (1, channels, samples) or (1, samples, channels)."""

    def __init__(self, manifest: Manifest) -> None:
        self.config, self.stream, self._fixed = parse_preprocess(manifest)
        self._input = manifest.inputs[0].name

    def window(self, item: object) -> tuple[Floats, str]:
        """The caller's window validated, in the model's units and at its rate, float32
        (channels, samples); and the sha256 of the window as given (float32 samples)."""
        w = _unpack(item, self.config)
        data = _samples(w.values, self.stream.channels)
        sha = Prepared.array_sha256(data.astype(np.float32))
        data = self._convert_units(data, w.units)
        fs = self.stream.sampling_rate_hz if w.fs is None else self._rate(w.fs)
        return self._at_model_rate(data, fs), sha

    def _convert_units(
        self, data: npt.NDArray[np.float64], units: tuple[str, ...] | None
    ) -> npt.NDArray[np.float64]:
        if units is None:
            return data
        wanted = self.config.units
        if len(units) != data.shape[0]:
            raise InputError(f"signal: {len(units)} units for {data.shape[0]} lead(s)")
        factors = [unit_factor(u, wanted) for u in units]
        if None in factors:
            bad = sorted({u for u, f in zip(units, factors, strict=True) if f is None})
            raise InputError(f"signal in {bad}: the model reads {wanted} (only volts convert)")
        if all(f == 1.0 for f in factors):
            return data
        return data * np.array(factors, dtype=np.float64)[:, np.newaxis]

    def _rate(self, fs: Any) -> float:
        s = self.stream
        low = s.min_sampling_rate_hz or s.sampling_rate_hz
        high = s.max_sampling_rate_hz or s.sampling_rate_hz
        number = isinstance(fs, int | float | np.integer | np.floating) and not isinstance(fs, bool)
        rate = float(fs) if number else math.nan
        if not (math.isfinite(rate) and rate > 0):
            raise InputError(
                f"fs: expected the sampling rate in Hz (a positive number), got {fs!r}"
            )
        if not low <= rate <= high:
            raise InputError(
                f"signal at {rate:g} Hz: this model supports {low:g}-{high:g} Hz (it runs at "
                f"{s.sampling_rate_hz:g} Hz); resample the recording or use another model"
            )
        return rate

    def _at_model_rate(self, data: npt.NDArray[np.float64], fs: float) -> Floats:
        s = self.stream
        model_hz, samples = s.sampling_rate_hz, s.samples
        ratio = Fraction(model_hz).limit_denominator(MAX_RATIO_TERM) / Fraction(
            fs
        ).limit_denominator(MAX_RATIO_TERM)
        up, down = ratio.numerator, ratio.denominator
        exact = samples * fs / model_hz
        need = round(exact)
        if abs(need - exact) > 1e-6 * exact or -(-need * up // down) != samples:
            raise InputError(
                f"signal at {fs:g} Hz: no whole number of samples makes the model's "
                f"{samples / model_hz:g} s window; resample it to {model_hz:g} Hz first"
            )
        n = data.shape[1]
        if n != need:
            what = "too short" if n < need else "longer than one window (use Pipeline.stream)"
            raise InputError(
                f"signal: {n} samples at {fs:g} Hz is {what}: the model reads exactly {need} "
                f"({samples / model_hz:g} s)"
            )
        if up != down:
            data = kernels.resample_poly(data, up, down)[:, :samples]
        return np.ascontiguousarray(data, dtype=np.float32)

    def normalized(self, window: Floats) -> Floats:
        """``normalize`` applied to one model-rate window (channels, samples)."""
        kind = self.config.normalize
        if kind == "zscore":
            n = window.shape[1]
            z: Floats = kernels.zscore_windows(window, n, n, ZSCORE_EPS)[0]
            return z
        if kind == "fixed" and self._fixed is not None:
            offset, scale = self._fixed
            return ((window - offset) / scale).astype(np.float32)
        return window

    def __call__(self, item: object) -> Prepared:
        window, sha = self.window(item)
        x = self.normalized(window)
        if self.config.layout == "nsc":
            x = np.ascontiguousarray(x.T)
        return Prepared(tensors={self._input: x[np.newaxis]}, input_sha256=sha, input_kind="signal")


def read_window_file(path: Any) -> dict[str, Any] | npt.NDArray[Any]:
    """A window file as a caller input: ``.npy`` (channels, samples) at the model's rate, or
    ``.npz`` with ``signal`` and ``fs`` (and optionally ``units``). OSError/ValueError/KeyError
    on a file that is not one (the builder names the file)."""
    if str(path).endswith(".npz"):
        with np.load(path, allow_pickle=False) as npz:
            item: dict[str, Any] = {"signal": npz["signal"], "fs": float(npz["fs"])}
            if "units" in npz.files:
                item["units"] = [str(u) for u in np.atleast_1d(npz["units"])]
        return item
    array: npt.NDArray[Any] = np.load(path, allow_pickle=False)
    return array


def golden_inputs(manifest: Manifest) -> list[object]:
    """The bundle's golden windows: an .npz of float32 ``signal_0``, ``signal_1``, ... and
    ``fs`` (one rate per window), each a caller input {"signal", "fs"}."""
    path = manifest.path("golden_inputs")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{manifest.id}: golden inputs {path.name}: not an .npz") from exc
    rates = np.atleast_1d(arrays.pop("fs", np.zeros(0)))
    expected = [f"signal_{i}" for i in range(len(arrays))]
    if not arrays or sorted(arrays) != sorted(expected) or rates.shape != (len(arrays),):
        raise ManifestError(
            f"{manifest.id}: golden inputs must be arrays signal_0 .. signal_<n-1> and fs "
            f"(one rate each), got {sorted(arrays)[:8]} and fs {rates.shape}"
        )
    return [{"signal": arrays[n], "fs": float(r)} for n, r in zip(expected, rates, strict=True)]
