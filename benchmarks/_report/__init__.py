"""Rendering benchmarks/README.md from README.in.md and benchmarks/results/*.json.

One formatter per benchmark script (``kernels``, ``models``, ``fleet``), keyed by the result
keys of ``record.BENCHES``; ``render`` fills the template's placeholders with them.
"""

from __future__ import annotations

from pathlib import Path

from . import fleet, kernels, models
from .render import Formatter
from .render import render as _render

FORMATTERS: dict[str, Formatter] = {**kernels.FORMATTERS, **models.FORMATTERS, **fleet.FORMATTERS}


def render(template: str, results: Path) -> str:
    """README.md's text: ``template`` with every placeholder filled from ``results``."""
    return _render(template, results, FORMATTERS)
