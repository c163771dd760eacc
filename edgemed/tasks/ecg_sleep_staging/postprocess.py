"""Stage 4 for ECG sleep staging: per-epoch class probabilities -> stages and counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ... import kernels
from ...errors import ManifestError, ModelError
from ...manifest import Manifest, parse_section
from ...results import Result, ResultBuilder, SleepStages, deferred
from ..golden import golden_limits
from .preprocess import SleepContext

__all__ = ["SleepStagePostprocess", "SleepStagePostprocessor", "golden_check"]


@dataclass(frozen=True, kw_only=True)
class SleepStagePostprocess:
    """The manifest's ``postprocess`` section: the model's output classes, in order."""

    classes: list[str]


class SleepStagePostprocessor:
    """Most probable class per epoch (C++ argmax kernel) and epochs per class."""

    def __init__(self, manifest: Manifest) -> None:
        c = parse_section(SleepStagePostprocess, manifest.postprocess, "manifest.postprocess")
        if not isinstance(c.classes, list) or not all(isinstance(s, str) for s in c.classes):
            raise ManifestError("manifest.postprocess.classes: expected a list of names")
        if len(set(c.classes)) != len(c.classes) or len(c.classes) < 2:
            raise ManifestError("manifest.postprocess.classes: need >= 2 distinct names")
        self.classes = tuple(c.classes)
        self._output = manifest.outputs[0].name

    def __call__(
        self, outputs: Mapping[str, npt.NDArray[Any]], context: SleepContext
    ) -> ResultBuilder:
        probs = np.ascontiguousarray(outputs[self._output], dtype=np.float32)
        expected = (1, context.n_epochs, len(self.classes))
        if probs.shape != expected:
            raise ModelError(f"model output {probs.shape}, expected {expected}")
        index = kernels.argmax(probs[0])
        stages = tuple(self.classes[int(i)] for i in index)
        counts = {name: int(np.sum(index == k)) for k, name in enumerate(self.classes)}
        return deferred(
            SleepStages,
            stages=stages,
            probabilities=probs[0],
            classes=self.classes,
            epoch_seconds=context.epoch_seconds,
            counts=counts,
            n_beats=context.n_beats,
            invalid_rri=context.invalid_rri,
            metadata_given=context.metadata_given,
            quality=context.quality.body(),
        )


def golden_check(manifest: Manifest, results: Sequence[Result], cpu_family: str) -> list[str]:
    """Probabilities and stages on the golden recordings against the bundle's expected ones."""
    with np.load(manifest.path("golden_outputs"), allow_pickle=False) as data:
        expected = data["probabilities"]
    got = [r.probabilities for r in results if isinstance(r, SleepStages)]
    if len(got) != len(expected) or any(
        g.shape != e.shape for g, e in zip(got, expected, strict=True)
    ):
        return [f"golden: got {[g.shape for g in got]}, expected {expected.shape}"]
    tol, problems = golden_limits(manifest, results, cpu_family), []
    diff = np.stack(got).astype(np.float64) - expected
    worst = float(np.abs(diff).max())
    if worst > tol.max_abs_diff:
        problems.append(f"golden: max |diff| {worst:.4g} > {tol.max_abs_diff}")
    agree = float(np.mean(np.stack(got).argmax(-1) == expected.argmax(-1)))
    if tol.min_label_agreement is not None and agree < tol.min_label_agreement:
        problems.append(f"golden: stage agreement {agree:.3f} < {tol.min_label_agreement}")
    return problems
