"""Read caller files into what pipelines take: text, images, DICOM, signals.

Every reader raises :class:`~edgemed.errors.InputError` naming the file and the problem
(missing, unreadable, wrong format, missing sampling rate) and never returns partial data.
Optional formats import their library lazily and say which extra installs it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .. import kernels
from ..errors import InputError
from ..extras import require
from ._arrays import signal_array

__all__ = [
    "DicomImage",
    "Signal",
    "read_dicom_image",
    "read_dicom_waveform",
    "read_image",
    "read_signal",
    "read_text",
]

MAX_TEXT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, kw_only=True, eq=False)
class SignalChunk:
    """A block of a :class:`Signal` as ``Signal.blocks`` yields it (an ``io.SignalBlock``)."""

    values: npt.NDArray[np.float32] = field(repr=False)  # (channels, samples)
    first_index: int  # sample index of values[:, 0] in the recording
    sampling_rate_hz: float
    units: tuple[str, ...]
    host_time: float | None = None  # a file has no live clock: Pipeline.stream's start_time


@dataclass(frozen=True, kw_only=True, eq=False)
class Signal:
    """A multichannel recording in physical units, channels x samples."""

    data: npt.NDArray[np.float32] = field(repr=False)
    sampling_rate_hz: float
    channel_names: tuple[str, ...]
    units: tuple[str, ...]

    @property
    def duration_s(self) -> float:
        return float(self.data.shape[1]) / self.sampling_rate_hz

    def channel(self, name: str) -> npt.NDArray[np.float32]:
        try:
            row: npt.NDArray[np.float32] = self.data[self.channel_names.index(name)]
            return row
        except ValueError:
            raise InputError(f"no channel {name!r}; channels: {list(self.channel_names)}") from None

    def blocks(self, samples: int) -> Iterator[SignalChunk]:
        """Consecutive blocks, as a live source would deliver them, each carrying its position,
        rate and units (``Pipeline.stream`` resamples to the model's rate from them)."""
        for start in range(0, self.data.shape[1], samples):
            yield SignalChunk(
                values=self.data[:, start : start + samples],
                first_index=start,
                sampling_rate_hz=self.sampling_rate_hz,
                units=self.units,
            )

    def pick(self, name: str) -> Signal:
        """This recording with only channel ``name``."""
        row = self.channel(name)
        i = self.channel_names.index(name)
        return Signal(
            data=row[None, :],
            sampling_rate_hz=self.sampling_rate_hz,
            channel_names=(name,),
            units=(self.units[i],),
        )

    @staticmethod
    def blocks_of(data: npt.NDArray[np.float32], samples: int) -> Iterator[npt.NDArray[np.float32]]:
        for start in range(0, data.shape[1], samples):
            yield data[:, start : start + samples]


@dataclass(frozen=True, kw_only=True, eq=False)
class DicomImage:
    """Pixel data after the modality LUT (e.g. Hounsfield units), plus its display window."""

    pixels: npt.NDArray[np.float32] = field(repr=False)  # (rows, cols) or (frames, rows, cols)
    stored: npt.NDArray[Any] = field(repr=False)  # stored values (int16/uint16)
    modality: str
    slope: float
    intercept: float
    window_center: float | None
    window_width: float | None
    # (row, column) mm between pixel centres: Pixel Spacing (0028,0030), else Imager Pixel
    # Spacing (0018,1164) (at the detector, not corrected for magnification); None: unknown.
    pixel_spacing_mm: tuple[float, float] | None = None
    pixel_spacing_source: str | None = None  # "PixelSpacing", "ImagerPixelSpacing" or None

    def spaced(self, *, center: float | None = None, width: float | None = None) -> dict[str, Any]:
        """``{"image", "pixel_spacing_mm", "pixel_spacing_source"}``: the windowed 2-D image
        with its file's pixel spacing (None, None where the file gives none), as
        image-segmentation takes it for areas in mm². A multi-frame image raises InputError."""
        if self.pixels.ndim != 2:
            raise InputError(
                f"DICOM image of shape {self.pixels.shape}: one 2-D frame is needed (a "
                "multi-frame or colour DICOM image is not supported here)"
            )
        spacing = self.pixel_spacing_mm
        return {
            "image": self.windowed(center=center, width=width),
            "pixel_spacing_mm": None if spacing is None else list(spacing),
            "pixel_spacing_source": self.pixel_spacing_source,
        }

    def windowed(
        self, *, center: float | None = None, width: float | None = None
    ) -> npt.NDArray[np.uint8]:
        """The image as 8-bit display values through the VOI LUT (header window by default)."""
        c = center if center is not None else self.window_center
        w = width if width is not None else self.window_width
        if c is None or w is None:
            raise InputError(
                "no window in the DICOM header: pass center= and width= "
                "(edgemed run: --window CENTER,WIDTH)"
            )
        stored = self.stored
        if stored.dtype not in (np.int16, np.uint16):
            stored = stored.astype(np.int16 if stored.min() < 0 else np.uint16)
        out = kernels.window_dicom(
            np.ascontiguousarray(stored),
            center=c,
            width=w,
            slope=self.slope,
            intercept=self.intercept,
            dtype=np.uint8,
        )
        return out  # type: ignore[return-value]


def _existing(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    return p


def read_text(path: str | Path) -> str:
    p = _existing(path)
    raw = p.read_bytes()
    if len(raw) > MAX_TEXT_BYTES:
        raise InputError(f"{p}: {len(raw):,} bytes; text inputs are limited to {MAX_TEXT_BYTES:,}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc


def read_image(path: str | Path) -> npt.NDArray[np.uint8]:
    """An image file (PNG, JPEG, BMP, TIFF...) as uint8 BGR (rows, cols, 3)."""
    require("vision", "reading image files")
    import cv2

    p = _existing(path)
    data = np.fromfile(p, dtype=np.uint8)  # imdecode: works for non-ASCII paths too
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InputError(f"{p}: not an image OpenCV can decode")
    return np.asarray(image, dtype=np.uint8)


def _pydicom() -> Any:
    try:
        import pydicom
    except ImportError as exc:
        raise InputError("DICOM input needs pydicom: pip install 'edgemed[formats]'") from exc
    return pydicom


def _dataset(path: str | Path) -> Any:
    pydicom = _pydicom()
    p = _existing(path)
    try:
        return pydicom.dcmread(p)
    except Exception as exc:  # pydicom raises InvalidDicomError and assorted others
        raise InputError(f"{p}: not a readable DICOM file: {exc}") from exc


def _first(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return (
            float(value[0])
            if hasattr(value, "__len__") and not isinstance(value, str)
            else float(value)
        )
    except (TypeError, ValueError, IndexError):
        return None


def _pixel_spacing(ds: Any) -> tuple[tuple[float, float] | None, str | None]:
    """The file's (row, column) pixel spacing and the attribute it came from: PixelSpacing,
    ImagerPixelSpacing only where PixelSpacing is absent; (None, None) where that attribute
    is missing or not two positive finite numbers (unknown, never guessed)."""
    key = next((k for k in ("PixelSpacing", "ImagerPixelSpacing") if k in ds), None)
    if key is None:
        return None, None
    try:
        numbers = [float(v) for v in ds.get(key)]
    except (TypeError, ValueError):
        return None, None
    if len(numbers) != 2 or not all(np.isfinite(v) and v > 0 for v in numbers):
        return None, None
    return (numbers[0], numbers[1]), key


def read_dicom_image(path: str | Path) -> DicomImage:
    ds = _dataset(path)
    if "PixelData" not in ds:
        raise InputError(f"{path}: DICOM file has no pixel data (modality {ds.get('Modality')})")
    try:
        stored = ds.pixel_array
    except Exception as exc:
        raise InputError(f"{path}: cannot decode DICOM pixel data: {exc}") from exc
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    pixels = (stored.astype(np.float64) * slope + intercept).astype(np.float32)
    spacing, source = _pixel_spacing(ds)
    return DicomImage(
        pixels=pixels,
        stored=stored,
        modality=str(ds.get("Modality", "")),
        slope=slope,
        intercept=intercept,
        window_center=_first(ds.get("WindowCenter")),
        window_width=_first(ds.get("WindowWidth")),
        pixel_spacing_mm=spacing,
        pixel_spacing_source=source,
    )


def read_dicom_waveform(path: str | Path, *, group: int = 0) -> Signal:
    """A DICOM waveform (e.g. a 12-lead ECG) in physical units, with channel names."""
    ds = _dataset(path)
    if "WaveformSequence" not in ds or group >= len(ds.WaveformSequence):
        raise InputError(f"{path}: DICOM file has no waveform group {group}")
    item = ds.WaveformSequence[group]
    try:
        data = ds.waveform_array(group)  # (samples, channels), sensitivity applied
    except Exception as exc:
        raise InputError(f"{path}: cannot decode DICOM waveform: {exc}") from exc
    names, units = [], []
    for i, channel in enumerate(item.ChannelDefinitionSequence):
        source = channel.get("ChannelSourceSequence")
        names.append(str(source[0].CodeMeaning) if source else f"channel {i}")
        unit = channel.get("ChannelSensitivityUnitsSequence")
        units.append(str(unit[0].CodeValue) if unit else "")
    return Signal(
        data=np.ascontiguousarray(np.asarray(data, dtype=np.float32).T),
        sampling_rate_hz=float(item.SamplingFrequency),
        channel_names=tuple(names),
        units=tuple(units),
    )


def _signal(
    data: npt.NDArray[Any], fs: float | None, names: list[str] | None, where: str
) -> Signal:
    if fs is None or not np.isfinite(fs) or fs <= 0:
        raise InputError(f"{where}: sampling rate unknown: pass sampling_rate_hz=")
    out = signal_array(data, where)
    n = out.shape[0]
    return Signal(
        data=out,
        sampling_rate_hz=float(fs),
        channel_names=tuple(names or [f"ch{i}" for i in range(n)]),
        units=("",) * n,
    )


def _read_csv(p: Path, fs: float | None) -> Signal:
    """Columns are channels; an optional header row names them; ``# fs=360`` lines give the rate."""
    lines = p.read_text(encoding="utf-8", errors="strict").splitlines()
    for line in lines:
        if line.startswith("#") and "fs=" in line.replace(" ", ""):
            fs = fs or float(line.replace(" ", "").split("fs=")[1].split(",")[0])
    rows = [
        r
        for r in csv.reader(io.StringIO("\n".join(lines), newline=""))
        if r and not r[0].startswith("#")
    ]
    names = None
    try:
        float(rows[0][0])
    except (ValueError, IndexError):
        names, rows = [c.strip() for c in rows[0]], rows[1:]
    try:
        data = np.array([[float(v) for v in row] for row in rows], dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"{p}: non-numeric value in CSV: {exc}") from exc
    if data.ndim != 2:
        raise InputError(f"{p}: rows have different numbers of columns")
    return _signal(data.T, fs, names, str(p))


def read_signal(
    path: str | Path,
    *,
    sampling_rate_hz: float | None = None,
    format: Literal["auto", "csv", "npy", "npz", "edf", "wfdb"] = "auto",
) -> Signal:
    """A recording from CSV, NumPy (.npy/.npz), EDF/EDF+ or WFDB (.hea + .dat)."""
    p = Path(path)
    kind = format if format != "auto" else p.suffix.lower().lstrip(".")
    if kind == "hea" or kind == "dat":
        kind = "wfdb"
    if kind == "wfdb":
        return _read_wfdb(p)
    p = _existing(p)
    try:
        if kind == "csv":
            return _read_csv(p, sampling_rate_hz)
        if kind == "npy":
            return _signal(np.load(p, allow_pickle=False), sampling_rate_hz, None, str(p))
        if kind == "npz":
            with np.load(p, allow_pickle=False) as npz:
                key = next((k for k in ("signal", "data", "ecg", "eeg") if k in npz), None)
                if key is None:
                    raise InputError(f"{p}: npz needs an array named signal, data, ecg or eeg")
                fs = sampling_rate_hz or next(
                    (float(npz[k]) for k in ("fs", "sampling_rate_hz") if k in npz), None
                )
                return _signal(npz[key], fs, None, str(p))
        if kind == "edf":
            return _read_edf(p)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read as {kind}: {exc}") from exc
    raise InputError(f"{p}: unknown signal format {kind!r}; use csv, npy, npz, edf or wfdb")


def _read_edf(p: Path) -> Signal:
    try:
        import pyedflib
    except ImportError as exc:
        raise InputError("EDF input needs pyedflib: pip install 'edgemed[formats]'") from exc
    try:
        with pyedflib.EdfReader(str(p)) as edf:
            rates = {edf.getSampleFrequency(i) for i in range(edf.signals_in_file)}
            if len(rates) != 1:
                raise InputError(f"{p}: channels have different sampling rates {sorted(rates)}")
            data = np.stack([edf.readSignal(i) for i in range(edf.signals_in_file)])
            signal = _signal(data, rates.pop(), edf.getSignalLabels(), str(p))
            units = tuple(edf.getPhysicalDimension(i) for i in range(edf.signals_in_file))
    except OSError as exc:
        raise InputError(f"{p}: not a readable EDF file: {exc}") from exc
    return Signal(
        data=signal.data,
        sampling_rate_hz=signal.sampling_rate_hz,
        channel_names=signal.channel_names,
        units=units,
    )


def _read_wfdb(p: Path) -> Signal:
    try:
        import wfdb
    except ImportError as exc:
        raise InputError("WFDB input needs wfdb: pip install 'edgemed[formats]'") from exc
    record_name = str(p.with_suffix(""))
    if not Path(record_name + ".hea").is_file():
        raise InputError(f"{record_name}.hea: no such WFDB header")
    try:
        record = wfdb.rdrecord(record_name)
    except Exception as exc:  # wfdb raises assorted errors on bad records
        raise InputError(f"{record_name}: not a readable WFDB record: {exc}") from exc
    signal = _signal(record.p_signal.T, float(record.fs), list(record.sig_name), record_name)
    return Signal(
        data=signal.data,
        sampling_rate_hz=signal.sampling_rate_hz,
        channel_names=signal.channel_names,
        units=tuple(record.units),
    )
