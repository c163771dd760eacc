"""Argument types the commands share (a bad value is a usage error, status 2, naming what was
expected), and the type of a command's subparsers."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING, TypeAlias

__all__ = ["Subparsers", "dicom_window", "host_port", "positive_int"]

if TYPE_CHECKING:  # generic only in the type stubs
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction  # what add_subparsers returns


def host_port(value: str) -> str:
    _, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def dicom_window(value: str) -> tuple[float, float]:
    """``CENTER,WIDTH`` of a DICOM display window (VOI LUT), e.g. ``40,400`` for soft tissue."""
    try:
        center, width = (float(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CENTER,WIDTH, got {value!r}") from None
    if not (math.isfinite(center) and math.isfinite(width) and width >= 1):
        raise argparse.ArgumentTypeError(
            f"expected a finite center and a width >= 1, got {value!r}"
        )
    return center, width
