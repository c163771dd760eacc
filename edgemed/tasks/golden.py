"""Which golden-vector limits apply to results computed here (manifest.GoldenTolerance)."""

from __future__ import annotations

from collections.abc import Sequence

from ..manifest import GoldenTolerance, Manifest
from ..results import Result

__all__ = ["golden_limits"]


def golden_limits(
    manifest: Manifest, results: Sequence[Result], cpu_family: str
) -> GoldenTolerance:
    """The limits measured for the backend that produced ``results`` on this CPU family, or
    the manifest's conservative default where that platform was never measured."""
    backend = results[0].provenance.backend if results else ""
    limits, _ = manifest.golden.for_platform(backend, cpu_family)
    return limits
