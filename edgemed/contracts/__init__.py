"""Valid ranges of every result kind: one definition, two uses.

The fleet checks every result it ingests against these (after the JSON Schemas in
``edgemed/schemas/``, which fix the structure and the sizes); the device's result types check
what they build against the same definitions. Standard library only: both sides import this
leaf, and a check must never raise anything but :class:`ContractError` on any JSON input.

Kinds not listed here pass (a newer device may send kinds this fleet does not act on); the
schema still bounds their size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import bundled, detection, generic
from .bundled import EMBEDDING_NORM_TOLERANCE, VITAL_RANGES
from .fields import ContractError
from .news2 import (
    NEWS2_MAX,
    NEWS2_PARAMETERS,
    NEWS2_SCORES,
    check_news2,
    news2_band,
    news2_partial_bound,
)

__all__ = [
    "EMBEDDING_NORM_TOLERANCE",
    "NEWS2_MAX",
    "NEWS2_PARAMETERS",
    "NEWS2_SCORES",
    "VITAL_RANGES",
    "ContractError",
    "check_news2",
    "check_result_body",
    "news2_band",
    "news2_partial_bound",
]


_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "news2": check_news2,
    "object-detection": detection.object_detection,
    "image-classification": generic.image_classification,
    "image-segmentation": generic.image_segmentation,
    "monitor-reading": bundled.monitor_reading,
    "seizure-probability": bundled.seizure,
    "signal-classification": generic.signal_classification,
    "sleep-stages": bundled.sleep,
    "tabular-classification": bundled.tabular_classification,
    "tabular-regression": bundled.tabular_regression,
    "text-embedding": bundled.text_embedding,
}


def check_result_body(kind: str, body: Any) -> None:
    """Raise :class:`ContractError` unless ``body`` (a wire ``result`` object) is within the
    ranges its ``kind`` declares."""
    if not isinstance(body, dict):
        raise ContractError(f"{kind}: the result body must be an object")
    check = _CHECKS.get(kind)
    if check is not None:
        check(body)
