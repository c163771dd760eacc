"""What `edgemed run MODEL INPUT` hands the pipeline, read from the command line's INPUT.

INPUT is the text itself, ``-`` (stdin), inline JSON (tabular rows), or ``@FILE``: ``.json``
(decoded), an image (``.png``/``.jpg``/``.bmp``/``.tif``), a DICOM image or waveform
(``.dcm``), or a signal file (``.csv``/``.npy``/``.npz``/``.edf``/``.hea``). What a task
takes from each is its spec's ``cli_input`` (:class:`edgemed.tasks.CliInput`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io import Signal, read_dicom_image, read_dicom_waveform, read_image, read_signal
from ..manifest import Manifest
from ..tasks import CliInput, task_spec

__all__ = ["cli_input"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
SIGNAL_SUFFIXES = {".csv", ".npy", ".npz", ".edf", ".hea", ".dat"}


def _file(
    path: Path,
    manifest: Manifest,
    how: CliInput,
    channel: str | None,
    fs: float | None,
    window: tuple[float, float] | None = None,
) -> Any:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if window is not None and not (suffix == ".dcm" and how.dicom == "image"):
        raise InputError(f"--window applies to DICOM images (.dcm) of image models, not {path}")
    if suffix == ".json":
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not a readable UTF-8 JSON file: {exc}") from exc
    if suffix in IMAGE_SUFFIXES:
        return read_image(path)
    if suffix == ".dcm":
        if how.dicom == "image":
            image = read_dicom_image(path)
            if window is not None:  # the caller's window instead of the header's
                image = replace(image, window_center=window[0], window_width=window[1])
            return image.windowed() if how.from_dicom_image is None else how.from_dicom_image(image)
        return _signal(read_dicom_waveform(path), manifest, how, channel)
    if suffix in SIGNAL_SUFFIXES:
        return _signal(read_signal(path, sampling_rate_hz=fs), manifest, how, channel)
    if how.text:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc}") from exc
    raise InputError(f"{path}: cannot tell how to read a {suffix or 'suffix-less'} file")


def _signal(signal: Signal, manifest: Manifest, how: CliInput, channel: str | None) -> Any:
    if manifest.stream is not None:  # streamed over by the caller (cmd_run)
        return signal
    if how.from_signal is None:
        raise InputError(f"{manifest.task} models do not take a signal file")
    return how.from_signal(signal.pick(channel or signal.channel_names[0]))


def cli_input(
    value: str,
    manifest: Manifest,
    *,
    channel: str | None = None,
    fs: float | None = None,
    window: tuple[float, float] | None = None,
) -> Any:
    """What ``edgemed run MODEL INPUT`` passes the model. ``window``: (center, width) of the
    display window for a DICOM image, instead of its header's (required where it has none)."""
    how = task_spec(manifest).cli_input
    if value.startswith("@"):
        return _file(Path(value[1:]), manifest, how, channel, fs, window)
    if window is not None:
        raise InputError("--window applies to DICOM images (.dcm) of image models, given as @FILE")
    if value == "-":
        data = sys.stdin.buffer.read()
        if how.text:
            return data
        value = data.decode("utf-8", errors="replace")
    if not how.text:
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{manifest.task} input must be a JSON object or array, or @FILE: {exc}"
            ) from exc
    return value
