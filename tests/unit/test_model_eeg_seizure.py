"""The bundled iEEG seizure watch: preprocessing and probabilities against brainmaze-eeg-models'
own functions, golden vectors on both backends, streaming, bad input, wire round trip."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator

import numpy as np
import pytest
from brainmaze_eeg_models.seizure import (
    TRAINED_MODELS,
    infer_seizure_probability,
    predict_channel_seizure_probability,
    preprocess_input,
)
from scipy.signal import get_window

import edgemed
from edgemed.errors import InputError
from edgemed.results import SeizureProbability
from edgemed.tasks.eeg_seizure.postprocess import seizure_episodes
from edgemed.tasks.eeg_seizure.preprocess import tukey_periodic
from edgemed.wire import decode_result, encode_result

FS = 500
WINDOW = 300 * FS
HOP = 20 * FS
REPORT = slice(539, 579)  # columns centred 270.0-289.5 s


@pytest.fixture(scope="module")
def pipe() -> Iterator[edgemed.Pipeline]:
    with edgemed.load("eeg-seizure-watch", backend="onnxruntime") as p:
        yield p


@pytest.fixture(scope="module")
def golden(pipe: edgemed.Pipeline) -> np.ndarray:
    return np.load(pipe.manifest.path("golden_inputs"))


def _signal(seconds: int, seed: int) -> np.ndarray:
    """Brown-ish background with a 6 Hz rhythmic discharge from 40 s to 5 s before the end."""
    rng = np.random.default_rng(seed)
    n = seconds * FS
    x = np.cumsum(rng.standard_normal(n)) * 0.05 + rng.standard_normal(n)
    t = np.arange(n) / FS
    burst = (t > seconds - 40) & (t < seconds - 5)
    x[burst] += (
        6 * np.sign(np.sin(2 * np.pi * 6 * t[burst])) * np.abs(np.sin(2 * np.pi * 6 * t[burst]))
    )
    return (40 * x).astype(np.float32)


def _trace(result: SeizureProbability) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in result.trace])


def test_shipped_model_is_the_packages_published_model(pipe: edgemed.Pipeline) -> None:
    m = pipe.manifest
    digest = hashlib.sha256(m.path("model").read_bytes()).hexdigest()
    assert digest == TRAINED_MODELS["modelA"][1] == m.model_sha256
    assert m.license == "BSD-3-Clause" and m.medical_device is False
    assert m.stream is not None and (m.stream.channels, m.stream.samples, m.stream.hop) == (
        1,
        WINDOW,
        HOP,
    )


def test_tukey_window_is_scipys() -> None:
    for n in (200, 256, 500, 1000, 1024):
        assert np.array_equal(tukey_periodic(n, 0.25), get_window(("tukey", 0.25), n))


def test_preprocessing_matches_package(pipe: edgemed.Pipeline, golden: np.ndarray) -> None:
    flat = _signal(300, 3)
    flat[100 * FS : 104 * FS] = flat[100 * FS]  # a flat stretch: columns with ~no power
    for window in (golden[0, 0], golden[1, 0], flat):
        ours = pipe.preprocess(window).tensors["x"]
        ref = preprocess_input(window.astype(np.float64), FS)
        assert ours.shape == ref.shape == (1, 100, 599) and ours.dtype == np.float32
        assert np.abs(ours - ref).max() < 1e-5


def test_probabilities_match_package_inference(pipe: edgemed.Pipeline, golden: np.ndarray) -> None:
    windows = golden[:, 0]
    ref = infer_seizure_probability(preprocess_input(windows.astype(np.float64), FS), "modelA")
    for window, ref_row in zip(windows, ref, strict=True):
        result = pipe(window)
        assert isinstance(result, SeizureProbability)
        assert np.abs(_trace(result) - ref_row[REPORT]).max() < 1e-5
        assert result.probability == pytest.approx(float(ref_row[REPORT].max()), abs=1e-5)
        assert result.seizure == (result.probability >= result.threshold)
        assert (result.segment_start_s, result.segment_end_s) == (270.0, 290.0)
    assert {pipe(w).seizure for w in windows} == {True, False}  # golden spans both decisions


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_golden_vectors(backend: str, golden: np.ndarray) -> None:
    with edgemed.load("eeg-seizure-watch", backend=backend) as p:  # load runs the golden check
        assert p.backend.name == backend
        m = p.manifest
        expected = np.load(m.path("golden_outputs"))
        got = np.stack([_trace(p(w)) for w in golden])
        assert np.abs(got - expected).max() <= m.golden.max_abs_diff
        assert np.array_equal(got.max(axis=1) >= 0.5, expected.max(axis=1) >= 0.5)


def test_stream_in_odd_blocks_equals_direct_windows(pipe: edgemed.Pipeline) -> None:
    signal = _signal(365, 1)  # 4 windows at hop 20 s, 5 s left over
    sizes = np.random.default_rng(0).integers(1, 9973, size=400)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    bounds = [*bounds[bounds < signal.size].tolist(), signal.size]
    blocks = (signal[a:b] for a, b in itertools.pairwise(bounds))
    results = list(pipe.stream(blocks, sampling_rate_hz=FS, start_time=1_000.0))
    assert len(results) == 4
    _, package_trace = predict_channel_seizure_probability(signal, FS, "modelA")
    for k, r in enumerate(results):
        assert isinstance(r, SeizureProbability)
        w = r.provenance.window
        assert w is not None
        assert (w.start_sample, w.samples, w.sampling_rate_hz) == (k * HOP, WINDOW, FS)
        assert w.start_time == pytest.approx(1_000.0 + 20.0 * k)
        direct = pipe(signal[k * HOP : k * HOP + WINDOW])
        assert np.array_equal(_trace(r), _trace(direct))
        assert r.provenance.input_sha256 == direct.provenance.input_sha256
        # The package's offline trace takes the max over every window covering a time point,
        # so it is never below the value reported by the one window edgemed streams.
        grid = 2 * k * 20 + 1 + np.arange(REPORT.start, REPORT.stop)
        assert np.all(package_trace[grid] >= _trace(r) - 1e-5)
    assert results[-1].seizure and not results[0].seizure  # burst only in the last window
    # The reported traces tile the stream: [270, 350) s, and the burst (325-360 s) gives one
    # episode (the BiLSTM reads the window both ways: it may start a column or two early).
    episodes = seizure_episodes(results)
    assert len(episodes) == 1
    ep = episodes[0]
    assert 1_000.0 + 320 <= ep.start_time < ep.peak_time < ep.end_time <= 1_000.0 + 350
    assert isinstance(ep.start_time, float) and ep.end_time == 1_000.0 + 350
    assert ep.peak_probability == pytest.approx(results[-1].probability, abs=1e-6)
    assert seizure_episodes(results, high=1.01) == []


def test_flat_stretch_is_not_evaluated(pipe: edgemed.Pipeline) -> None:
    window = _signal(300, 2)
    window[275 * FS : 280 * FS] = 0.0  # 5 s dropout inside the reported segment
    result = pipe(window)
    assert 0 < result.evaluated_fraction < 1
    nulls = [i for i, v in enumerate(result.trace) if v is None]
    assert nulls and all(v is not None for i, v in enumerate(result.trace) if i not in nulls)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (np.zeros((2, WINDOW), np.float32), "one channel"),
        (np.full(WINDOW, np.nan, np.float32), "NaN"),
        (np.ones(WINDOW - 1, np.float32), "150000 samples"),
        (np.ones(WINDOW + 1, np.float32), "150000 samples"),
        (np.full(WINDOW, 7.0, np.float32), "flat"),
        (np.zeros(WINDOW, np.complex64), "real numbers"),
        ([0.0] * 10, "numpy array"),
    ],
)
def test_bad_input(pipe: edgemed.Pipeline, item: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        pipe(item)


def test_stream_refuses_nan_and_wrong_channels(pipe: edgemed.Pipeline) -> None:
    with pytest.raises(InputError, match="NaN"):
        list(pipe.stream([np.array([1.0, np.nan], np.float32)], sampling_rate_hz=FS))
    with pytest.raises(InputError, match="expected shape"):
        list(pipe.stream([np.zeros((3, 100), np.float32)], sampling_rate_hz=FS))


def test_body_round_trips_through_the_wire(pipe: edgemed.Pipeline, golden: np.ndarray) -> None:
    window = golden[1, 0].copy()
    window[280 * FS : 282 * FS] = 0.0  # a null in the trace must survive JSON
    result = pipe(window)
    raw = encode_result(
        result, device_id="dev-1", seq=1, boot_id="b", lowest_unacked_seq=1, clock_synced=True
    )
    msg = decode_result(raw, topic_device_id="dev-1")
    body = msg.body["result"]
    assert msg.kind == "seizure-probability" and body == json.loads(json.dumps(result.body()))
    assert 0.0 <= body["probability"] <= 1.0 and body["threshold"] == 0.5
    assert body["seizure"] is True and None in body["trace"] and len(body["trace"]) == 40
    assert msg.body["input"]["kind"] == "eeg"


def test_card_and_metrics_are_honest(pipe: edgemed.Pipeline) -> None:
    m = pipe.manifest
    card = m.path("model_card").read_text()
    for required in ("Not a medical device", "Intended use", "synthetic", "Licence", "Metrics"):
        assert required.lower() in card.lower(), required
    assert "Nothing here measures seizure-detection accuracy" in card
    assert str(m.metrics["int8_gate"]) in card and str(m.metrics["int8_gate"]).startswith("failed")
    assert m.precision == "fp32"
    assert "Redistribution and use" in m.path("license").read_text()  # BSD-3 text ships
    assert str(m.metrics["int8_dynamic_flipped_windows"]) in card
    assert float(m.metrics["preprocess_vs_package_max_abs"]) < 1e-5
    assert float(m.metrics["openvino_fp32_vs_ort_max_abs"]) < 1e-4
