"""Metamorphic tests of the EEG seizure watch: the same recording at another sampling rate, in
another file format, shifted in time, must give the same answer; the same samples declared at
the wrong rate must not. The reference resampling is SciPy's, not the SDK's own kernel.

Tolerances (stated in docs/kernels.md and the model card): |probability difference| <= 0.005
for 250-1024 Hz recordings against the same recording at the model's 500 Hz; <= 0.05 at 200 Hz,
where the source's Nyquist frequency (100 Hz) sits on the model's highest spectrogram bin (99 Hz).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy.signal import resample_poly

import edgemed
from edgemed.cli import main as cli_main
from edgemed.errors import InputError
from edgemed.io import Signal
from edgemed.tasks import task_spec

FS = 500.0


@pytest.fixture(scope="module")
def pipe() -> Iterator[edgemed.Pipeline]:
    with edgemed.load("eeg-seizure-watch", threads=1) as pipeline:
        yield pipeline


@pytest.fixture(scope="module")
def recording(pipe: edgemed.Pipeline) -> npt.NDArray[np.float64]:
    """7 minutes at 500 Hz built from the bundle's golden windows (seizure and background)."""
    windows = task_spec(pipe.manifest).golden_inputs(pipe.manifest)
    trace = np.concatenate([np.asarray(w, dtype=np.float64)[0] for w in windows])
    return trace[: int(FS * 420)]


def _at(trace: npt.NDArray[np.float64], fs: float) -> npt.NDArray[np.float64]:
    ratio = Fraction(int(fs), int(FS))
    return np.asarray(resample_poly(trace, ratio.numerator, ratio.denominator))


def _stream(
    pipe: edgemed.Pipeline, x: npt.NDArray[np.float64], fs: float, start_time: float = 0.0
) -> list[tuple[float, float]]:
    """(window start in seconds, probability) per window."""
    out = []
    for r in pipe.stream([x.astype(np.float32)], sampling_rate_hz=fs, start_time=start_time):
        w = r.provenance.window
        assert w is not None and w.sampling_rate_hz == fs
        out.append((w.start_sample / fs, r.probability))  # type: ignore[attr-defined]
    return out


@pytest.fixture(scope="module")
def reference(
    pipe: edgemed.Pipeline, recording: npt.NDArray[np.float64]
) -> list[tuple[float, float]]:
    ref = _stream(pipe, recording, FS)
    assert len(ref) == 7 and max(p for _, p in ref) > 0.9 and min(p for _, p in ref) < 0.1
    return ref


@pytest.mark.parametrize(("fs", "tolerance"), [(250, 0.005), (256, 0.005), (1000, 0.005),
                                               (1024, 0.005), (200, 0.05)])  # fmt: skip
def test_same_recording_at_another_rate_gives_the_same_answer(
    pipe: edgemed.Pipeline,
    recording: npt.NDArray[np.float64],
    reference: list[tuple[float, float]],
    fs: int,
    tolerance: float,
) -> None:
    got = _stream(pipe, _at(recording, fs), float(fs))
    assert [t for t, _ in got] == pytest.approx([t for t, _ in reference])
    worst = max(abs(a - b) for (_, a), (_, b) in zip(got, reference, strict=True))
    assert worst <= tolerance, f"{fs} Hz: max |difference| {worst:.4f}"


def test_samples_declared_at_the_wrong_rate_give_another_answer(
    pipe: edgemed.Pipeline, recording: npt.NDArray[np.float64]
) -> None:
    """A 250 Hz recording declared as 500 Hz is another signal (twice as fast, spectrum
    stretched): the answers must differ; declared as 250 Hz it agrees with the 500 Hz one."""
    x250 = _at(np.concatenate([recording, recording]), 250)  # long enough for 500 Hz windows
    right = _stream(pipe, x250, 250.0)
    wrong = _stream(pipe, x250, 500.0)
    truth = _stream(pipe, np.concatenate([recording, recording]), FS)
    n = min(len(right), len(wrong))
    assert max(abs(a - b) for (_, a), (_, b) in zip(right[:n], truth[:n], strict=True)) < 0.005
    assert max(abs(a - b) for (_, a), (_, b) in zip(right[:n], wrong[:n], strict=True)) > 0.2


def test_time_shift_moves_the_windows_and_nothing_else(
    pipe: edgemed.Pipeline,
    recording: npt.NDArray[np.float64],
    reference: list[tuple[float, float]],
) -> None:
    spec = pipe.manifest.stream
    assert spec is not None
    lead = recording[-spec.hop :]  # one hop of real signal in front
    shifted = _stream(pipe, np.concatenate([lead, recording]), FS, start_time=1_000.0)
    hop_s = spec.hop / FS
    assert [t - hop_s for t, _ in shifted[1:]] == pytest.approx([t for t, _ in reference])
    assert [p for _, p in shifted[1:]] == pytest.approx([p for _, p in reference], abs=1e-6)
    later = list(pipe.stream([recording.astype(np.float32)], sampling_rate_hz=FS, start_time=9e8))
    assert [r.provenance.window.start_time - 9e8 for r in later] == pytest.approx(  # type: ignore[union-attr]
        [t for t, _ in reference]
    )


def test_rate_is_never_assumed(pipe: edgemed.Pipeline) -> None:
    block = np.zeros(1000, np.float32)
    with pytest.raises(InputError, match="sampling rate is unknown"):
        next(pipe.stream([block]))
    with pytest.raises(InputError, match="supports 200-4096 Hz"):
        next(pipe.stream([block], sampling_rate_hz=128.0))
    signal = Signal(data=block[None, :], sampling_rate_hz=256.0, channel_names=("C3",),
                    units=("uV",))  # fmt: skip
    with pytest.raises(InputError, match="declared"):
        next(pipe.stream(signal.blocks(100), sampling_rate_hz=500.0))
    with pytest.raises(InputError, match="no whole number of samples"):
        next(pipe.stream([block], sampling_rate_hz=333.333))


def test_cli_honours_the_files_rate_and_positions_windows(
    tmp_path: Path,
    recording: npt.NDArray[np.float64],
    reference: list[tuple[float, float]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An EDF at 256 Hz (rate in its header) and a .npy with --fs agree with the 500 Hz
    recording; each line says where its window and segment lie in the recording."""
    pyedflib = pytest.importorskip("pyedflib")
    x256 = _at(recording, 256)
    edf = tmp_path / "rec.edf"
    writer = pyedflib.EdfWriter(str(edf), 1, file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        lo, hi = float(np.floor(x256.min())) - 1, float(np.ceil(x256.max())) + 1
        writer.setSignalHeaders([{"label": "C3", "dimension": "uV", "sample_frequency": 256,
                                  "physical_min": lo, "physical_max": hi,
                                  "digital_min": -32768, "digital_max": 32767}])  # fmt: skip
        writer.writeSamples([x256])
    finally:
        writer.close()
    np.save(tmp_path / "rec.npy", x256.astype(np.float32))
    for args in (["@" + str(edf)], ["@" + str(tmp_path / "rec.npy"), "--fs", "256"]):
        assert cli_main(["run", "eeg-seizure-watch", *args]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [line["window_start_s"] for line in lines] == pytest.approx(
            [t for t, _ in reference]
        )
        for line, (start, p) in zip(lines, reference, strict=True):
            # EDF stores 16-bit samples: quantisation moves probabilities a little more.
            assert line["probability"] == pytest.approx(p, abs=0.01)
            seg = line["segment_s"]
            assert line["recording_segment_s"] == pytest.approx([start + seg[0], start + seg[1]])
