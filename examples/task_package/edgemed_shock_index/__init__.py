"""An edgemed task from outside edgemed: the shock index, heart rate / systolic pressure.

Everything edgemed needs to serve bundles of task ``shock-index`` is here, ending in ``SPEC``,
which this package's ``pyproject.toml`` names in the ``edgemed.tasks`` entry-point group. It
imports only edgemed's public task contract (``edgemed.tasks``), errors, manifest and result
helpers. An illustration of the extension point, not a clinical tool: the formula is textbook
(Allgöwer & Burri 1967); the thresholds below are not a validated triage rule.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edgemed.errors import InputError, ManifestError, ModelError
from edgemed.manifest import Manifest, parse_section
from edgemed.results import Provenance, Result, ResultBuilder, deferred
from edgemed.tasks import OpenModel, Postprocessor, Prepared, Preprocessor, TaskSpec

__all__ = ["SPEC", "ShockIndex"]

# Plausible adult ranges: a value outside is a typo or a unit error, never scored.
HR_RANGE_BPM = (20.0, 300.0)
SBP_RANGE_MMHG = (40.0, 300.0)


@dataclass(frozen=True, kw_only=True)
class ShockIndex:
    """Heart rate / systolic pressure, and whether it is at or above the bundle's threshold."""

    value: float
    elevated: bool
    threshold: float
    provenance: Provenance
    kind: str = "shock-index"

    def body(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "value": round(self.value, 4),
            "elevated": self.elevated,
            "threshold": self.threshold,
        }

    def summary(self) -> dict[str, Any]:
        return self.body()


@dataclass(frozen=True, kw_only=True)
class _Post:
    threshold: float  # the manifest's postprocess section


def _vital(item: Mapping[str, Any], key: str, unit: str, bounds: tuple[float, float]) -> float:
    value = item.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"shock-index: {key!r} must be a number in {unit}, got {value!r}")
    if not bounds[0] <= value <= bounds[1]:
        raise InputError(f"shock-index: {key}={value} {unit} is outside {bounds} (unit error?)")
    return float(value)


def _preprocess(item: object) -> Prepared:
    """{"hr": beats/min, "sbp": mmHg} -> a (1, 2) float32 tensor."""
    if not isinstance(item, Mapping):
        raise InputError(f"shock-index input must be an object with hr and sbp, got {item!r}")
    hr = _vital(item, "hr", "beats/min", HR_RANGE_BPM)
    sbp = _vital(item, "sbp", "mmHg", SBP_RANGE_MMHG)
    vitals = np.array([[hr, sbp]], dtype=np.float32)
    return Prepared(
        tensors={"vitals": vitals},
        input_sha256=Prepared.array_sha256(vitals),
        input_kind="vitals",
    )


def _processors(manifest: Manifest, open_model: OpenModel) -> tuple[Preprocessor, Postprocessor]:
    post = parse_section(_Post, manifest.postprocess, "manifest.postprocess")
    if not 0 < post.threshold < 5:
        raise ManifestError("manifest.postprocess.threshold: expected a value in (0, 5)")

    def postprocess(outputs: Mapping[str, npt.NDArray[Any]], context: Any) -> ResultBuilder:
        value = float(np.asarray(outputs["shock_index"]).reshape(-1)[0])
        if not 0 < value < 15:  # hr/sbp within the accepted ranges is in (0.07, 7.5)
            raise ModelError(f"shock-index: model output {value} is not a shock index")
        return deferred(
            ShockIndex, value=value, elevated=value >= post.threshold, threshold=post.threshold
        )

    return _preprocess, postprocess


def _golden_inputs(manifest: Manifest) -> list[object]:
    cases = json.loads(manifest.path("golden_inputs").read_text(encoding="utf-8"))
    return list(cases)


def _golden_check(manifest: Manifest, results: Sequence[Result], cpu_family: str) -> list[str]:
    expected = json.loads(manifest.path("golden_outputs").read_text(encoding="utf-8"))
    got = [r.body()["value"] for r in results]
    if len(got) != len(expected):
        return [f"golden: {len(got)} results for {len(expected)} expected"]
    limit = manifest.golden.max_abs_diff
    return [
        f"golden case {i}: {g} vs {e} (|diff| > {limit})"
        for i, (g, e) in enumerate(zip(got, expected, strict=True))
        if abs(g - e) > limit
    ]


SPEC = TaskSpec(
    name="shock-index",
    processors=_processors,
    golden_inputs=_golden_inputs,
    golden_check=_golden_check,
    input_contract=lambda m: {"kind": "vitals", "fields": {"hr": "beats/min", "sbp": "mmHg"}},
)
