"""Stage 1: inputs from files, cameras and continuous signals."""

from __future__ import annotations

from .camera import Frame, frames
from .files import (
    DicomImage,
    Signal,
    read_dicom_image,
    read_dicom_waveform,
    read_image,
    read_signal,
    read_text,
)
from .windows import SignalBlock, Window, Windower

__all__ = [
    "DicomImage",
    "Frame",
    "Signal",
    "SignalBlock",
    "Window",
    "Windower",
    "frames",
    "read_dicom_image",
    "read_dicom_waveform",
    "read_image",
    "read_signal",
    "read_text",
]
