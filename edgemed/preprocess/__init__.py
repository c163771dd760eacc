"""Stage 2: caller input -> model input tensors, one module per input kind."""

from __future__ import annotations

from .base import Prepared

__all__ = ["Prepared"]
