"""Stage 1: inputs from files, cameras and continuous signals."""

from __future__ import annotations

from .windows import SignalBlock, Windower

__all__ = ["SignalBlock", "Windower"]
