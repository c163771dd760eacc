"""Stage 4 for segmentation models: per-class score maps -> :class:`ImageSegmentation`.

The manifest's ``postprocess`` section:

- ``labels``: class names, 2..255; ``labels[0]`` is the background (what a pixel is when no
  foreground class claims it, and what ``min_area_px`` gives back specks to).
- ``scores``: what the output ``[batch, C, h, w]`` (or ``[batch, h, w]``: C = 1) holds:
  ``softmax`` (logits, C = labels: each pixel's best class), ``sigmoid`` (logits, C = labels
  - 1: one map per foreground label, thresholded) or ``probabilities`` (already in [0, 1]:
  C = labels - 1 thresholded as sigmoid's, e.g. a single-channel foreground map; or C = labels
  after a softmax inside the graph, best class). The map may be smaller than the model's
  input (a stride): it is resized back with the input.
- ``threshold`` (default 0.5) and ``thresholds`` (label -> value, overriding it): where a
  foreground map counts (sigmoid and thresholded probabilities only).
- ``min_area_px`` (default 0): foreground regions (8-connected) smaller than this many
  pixels of the input image are specks, given back to the background.
- ``mask``: ``none`` (default: the wire carries counts, areas and confidences only) or
  ``rle`` (also the class mask, sampled to at most ``mask_max_side`` pixels a side, default
  256, run-length encoded: ``edgemed.results.segmentation.encode_mask``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from ... import kernels
from ...errors import ManifestError, ModelError
from ...manifest import Manifest, parse_section
from ...results import Result, ResultBuilder, deferred
from ...results.segmentation import UNSEEN, ImageSegmentation, encode_mask
from ..golden import golden_limits
from .maps import Decision, decide_argmax, decide_threshold, resized_maps, seen
from .preprocess import SegmentationContext

__all__ = [
    "SegmentationPostprocess",
    "SegmentationPostprocessor",
    "golden_check",
    "parse_postprocess",
]

SCORES = ("softmax", "sigmoid", "probabilities")
MASKS = ("none", "rle")
MAX_LABELS = UNSEEN  # class indices 0..254: 255 marks unseen pixels
_PROBABILITY_SLACK = 1e-4
_WHERE = "manifest.postprocess"


@dataclass(frozen=True, kw_only=True)
class SegmentationPostprocess:
    """The manifest's ``postprocess`` section for segmentation models."""

    labels: list[Any]
    scores: str  # SCORES
    threshold: float = 0.5
    thresholds: dict[str, Any] = field(default_factory=dict)
    min_area_px: int = 0
    mask: str = "none"  # MASKS
    mask_max_side: int = 256


def _unit(value: Any) -> bool:
    return type(value) in (int, float) and 0.0 <= value <= 1.0


def _check_labels(labels: Any) -> tuple[str, ...]:
    if not (isinstance(labels, list) and all(isinstance(x, str) and x for x in labels)):
        raise ManifestError(f"{_WHERE}.labels: expected a list of non-empty names")
    if not 2 <= len(labels) <= MAX_LABELS or len(set(labels)) != len(labels):
        raise ManifestError(
            f"{_WHERE}.labels: 2..{MAX_LABELS} distinct names, the background first"
        )
    return tuple(labels)


def _check_thresholds(c: SegmentationPostprocess, raw: Mapping[str, Any]) -> None:
    if c.scores == "softmax" and ({"threshold", "thresholds"} & set(raw)):
        raise ManifestError(
            f"{_WHERE}.threshold(s): softmax classes compete (each pixel takes its best); "
            "thresholds are for 'sigmoid' or 'probabilities' maps"
        )
    if not _unit(c.threshold):
        raise ManifestError(f"{_WHERE}.threshold: must be in [0, 1]")
    if not isinstance(c.thresholds, dict):
        raise ManifestError(f"{_WHERE}.thresholds: expected an object label -> threshold")
    for name, value in c.thresholds.items():
        if name not in c.labels[1:]:
            raise ManifestError(f"{_WHERE}.thresholds.{name}: not a foreground label")
        if not _unit(value):
            raise ManifestError(f"{_WHERE}.thresholds.{name}: must be in [0, 1]")


def parse_postprocess(manifest: Manifest) -> tuple[SegmentationPostprocess, tuple[str, ...]]:
    """The section, checked against itself and the manifest's output tensor."""
    c = parse_section(SegmentationPostprocess, manifest.postprocess, _WHERE)
    labels = _check_labels(c.labels)
    if c.scores not in SCORES:
        raise ManifestError(f"{_WHERE}.scores: {c.scores!r} is not one of {list(SCORES)}")
    _check_thresholds(c, manifest.postprocess)
    if c.min_area_px < 0:
        raise ManifestError(f"{_WHERE}.min_area_px: must be >= 0 (0: keep every region)")
    if c.mask not in MASKS:
        raise ManifestError(f"{_WHERE}.mask: {c.mask!r} is not one of {list(MASKS)}")
    if not 8 <= c.mask_max_side <= 4096:
        raise ManifestError(f"{_WHERE}.mask_max_side: must be 8..4096 pixels")
    _check_output(manifest, c.scores, len(labels))
    return c, labels


def channels_allowed(scores: str, n: int) -> tuple[int, ...]:
    """How many score maps a model of ``n`` labels may output for ``scores``."""
    return {"softmax": (n,), "sigmoid": (n - 1,), "probabilities": (n - 1, n)}[scores]


def _check_output(manifest: Manifest, scores: str, n: int) -> None:
    spec = manifest.outputs[0]
    shape = spec.shape
    channels = 1 if len(shape) == 3 else (shape[1] if len(shape) == 4 else None)
    ok = spec.dtype in ("float32", "float16") and channels is not None
    ok = ok and (isinstance(channels, str) or channels in channels_allowed(scores, n))
    if not ok:
        want = " or ".join(str(k) for k in channels_allowed(scores, n))
        raise ManifestError(
            f"manifest.outputs[0]: a segmentation model with {n} labels and scores "
            f"{scores!r} outputs float32 [batch, {want}, h, w]; manifest declares "
            f"{spec.dtype} {list(shape)}"
        )


class SegmentationPostprocessor:
    """The model's score maps and one input's context -> :class:`ImageSegmentation`."""

    def __init__(self, manifest: Manifest, model_size: tuple[int, int]) -> None:
        self.config, self.labels = parse_postprocess(manifest)
        given = self.config.thresholds
        self.thresholds = np.array(
            [float(given.get(label, self.config.threshold)) for label in self.labels[1:]],
            np.float32,
        )
        self.model_size = model_size
        self._output = manifest.outputs[0].name

    def scores(self, outputs: Mapping[str, npt.NDArray[Any]]) -> npt.NDArray[np.float32]:
        """The (C, h, w) score maps in [0, 1]; ModelError where the output breaks the manifest."""
        out, n = outputs.get(self._output), len(self.labels)
        if out is None:
            raise ModelError(f"the model gave no output {self._output!r} (got {sorted(outputs)})")
        allowed = channels_allowed(self.config.scores, n)
        maps = out[0] if out.ndim == 4 and out.shape[0] == 1 else out  # [1, h, w]: one map
        if maps.ndim != 3 or maps.shape[0] not in allowed or min(maps.shape[1:]) < 1:
            raise ModelError(
                f"output {self._output!r}: expected [1, {' or '.join(map(str, allowed))}, h, w] "
                f"score maps ({n} labels, scores {self.config.scores!r}), got shape {out.shape}"
            )
        maps = np.ascontiguousarray(maps, dtype=np.float32)
        kind = self.config.scores
        if kind == "softmax":
            return np.ascontiguousarray(kernels.softmax(maps, axis=0))
        if kind == "sigmoid":
            return kernels.sigmoid(maps)
        if not (maps.min() >= -_PROBABILITY_SLACK and maps.max() <= 1 + _PROBABILITY_SLACK):
            raise ModelError(
                f"output {self._output!r}: scores {maps.min():.4g}..{maps.max():.4g} are not "
                "probabilities (the manifest says scores 'probabilities'; logits need "
                "'softmax' or 'sigmoid')"
            )
        return np.asarray(np.clip(maps, 0.0, 1.0), np.float32)

    def decide(self, outputs: Mapping[str, npt.NDArray[Any]], ctx: SegmentationContext) -> Decision:
        """Each input pixel's class, confidence and margin (before specks are removed)."""
        maps = self.scores(outputs)
        resized = resized_maps(maps, ctx, self.model_size)
        if maps.shape[0] == len(self.labels):
            decision = decide_argmax(resized)
        else:
            decision = decide_threshold(resized, self.thresholds)
        inside = seen(ctx, self.model_size)
        if inside is not None:
            for values in (decision.mask, decision.confidence, decision.margin):
                values[~inside] = UNSEEN if values.dtype == np.uint8 else 0
        return decision

    def __call__(self, outputs: Mapping[str, npt.NDArray[Any]], context: Any) -> ResultBuilder:
        if not isinstance(context, SegmentationContext):
            raise ModelError("image-segmentation: postprocessing needs its input's context")
        d = self.decide(outputs, context)
        removed, regions = _regions(d, len(self.labels), self.config.min_area_px)
        n = len(self.labels)
        pixels, means = _class_stats(d, n)
        encoded = None
        if self.config.mask == "rle":
            encoded = encode_mask(d.mask, self.config.mask_max_side)
        return deferred(
            ImageSegmentation,
            labels=self.labels,
            mask=d.mask,
            confidence=d.confidence,
            margin=d.margin,
            pixels=pixels,
            mean_confidence=means,
            regions=regions,
            pixel_spacing_mm=context.pixel_spacing_mm,
            pixel_spacing_source=context.pixel_spacing_source,
            specks_removed=removed,
            encoded_mask=encoded,
        )


def _present(mask: npt.NDArray[np.uint8], n: int) -> set[int]:
    """The classes in ``mask`` (a histogram: OpenCV's is ~6x faster than NumPy's here)."""
    hist = np.ravel(cv2.calcHist([mask], [0], None, [n], [0, n]))
    return {c for c in range(n) if hist[c] > 0}


def _class_stats(d: Decision, n: int) -> tuple[tuple[int, ...], tuple[float | None, ...]]:
    """Each class's exact pixel count and mean confidence (None where absent)."""
    present = _present(d.mask, n)
    pixels: list[int] = [0] * n
    means: list[float | None] = [None] * n
    for c in present:
        where = (d.mask == c).view(np.uint8)
        pixels[c] = int(cv2.countNonZero(where))
        means[c] = float(cv2.mean(d.confidence, mask=where)[0])
    return tuple(pixels), tuple(means)


def _regions(d: Decision, n: int, min_area: int) -> tuple[int, tuple[int, ...]]:
    """Remove foreground specks under ``min_area`` pixels (in place), then count each class's
    8-connected regions. Returns (specks removed, regions per class)."""
    present = _present(d.mask, n)
    counts = [0] * n
    removed = 0
    for c in range(1, n):
        if c not in present:
            continue
        k, comp, stats, _ = cv2.connectedComponentsWithStats(
            (d.mask == c).view(np.uint8), connectivity=8
        )
        small = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] < min_area) + 1
        if len(small):
            is_small = np.zeros(k, np.bool_)
            is_small[small] = True
            speck = is_small[comp]
            d.mask[speck], d.confidence[speck], d.margin[speck] = 0, 0.0, 0.0
            removed += len(small)
        counts[c] = int(k - 1 - len(small))
    if (d.mask == 0).any():
        counts[0] = (
            int(cv2.connectedComponents((d.mask == 0).view(np.uint8), connectivity=8)[0]) - 1
        )
    return removed, tuple(counts)


def _expected(manifest: Manifest, n: int, labels: int) -> dict[str, npt.NDArray[Any]] | str:
    try:
        with np.load(manifest.path("golden_outputs"), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError) as exc:
        return f"golden: outputs must be an .npz ({type(exc).__name__})"
    want = {"mean_confidence"} | {f"{k}_{i}" for k in ("mask", "margin") for i in range(n)}
    if set(arrays) != want or arrays["mean_confidence"].shape != (n, labels):
        return (
            f"golden: expected arrays mask_i, margin_i (i < {n}) and mean_confidence "
            f"[{n}, {labels}], got {sorted(arrays)[:8]}"
        )
    return arrays


def golden_check(manifest: Manifest, results: Sequence[Result], cpu_family: str) -> list[str]:
    """Per golden image: every pixel whose expected margin exceeds ``max_abs_diff`` (one a
    drift within the tolerance cannot flip) has its expected class on at least
    ``min_label_agreement`` of them (default: all); each class's mean confidence is within
    ``max_abs_diff`` of the expected one."""
    rows = [r for r in results if isinstance(r, ImageSegmentation)]
    if not rows or len(rows) != len(results):
        return [f"golden: {len(results) - len(rows)} result(s) are not image segmentations"]
    labels = manifest.postprocess["labels"]
    expected = _expected(manifest, len(rows), len(labels))
    if isinstance(expected, str):
        return [expected]
    tol, problems = golden_limits(manifest, results, cpu_family), []
    need = 1.0 if tol.min_label_agreement is None else tol.min_label_agreement
    for i, r in enumerate(rows):
        mask, margin = expected[f"mask_{i}"], expected[f"margin_{i}"]
        if r.mask.shape != mask.shape:
            problems.append(f"golden: image {i}: mask {r.mask.shape}, expected {mask.shape}")
            continue
        firm = margin.astype(np.float32) > tol.max_abs_diff
        agree = float((r.mask[firm] == mask[firm]).mean()) if firm.any() else 1.0
        if agree < need:
            problems.append(
                f"golden: image {i}: {agree:.4%} of its {int(firm.sum())} clear pixels have "
                f"the expected class (< {need:.4%})"
            )
        for label, got, want in zip(
            labels, r.mean_confidence, expected["mean_confidence"][i], strict=True
        ):
            if got is not None and want >= 0 and not abs(got - want) <= tol.max_abs_diff:
                problems.append(
                    f"golden: image {i}: {label} mean confidence {got:.6f}, expected "
                    f"{want:.6f} (> {tol.max_abs_diff} apart)"
                )
    return problems
