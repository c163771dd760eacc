"""Stage 4 for object detectors: the model's outputs -> :class:`ObjectDetection`.

Candidates (``decode.py``, any declared layout) -> the (box, class) pairs whose score reaches
the class's threshold (the ``max_candidates`` best) -> boxes mapped back to the caller's
image through the preprocessing's placement and clipped to it (boxes wholly in letterbox
padding or outside a centre crop vanish) -> non-maximum suppression per class (or across
classes, ``class_agnostic``) in the native kernel -> the ``max_detections`` best. IoU is
unchanged by the per-axis scaling back, so suppressing in image pixels suppresses what the
model's pixels would. Layout ``detections`` (NMS already in the graph; ``detections.py``)
takes the same steps but one: its rows' scores against their class's threshold, the
``max_candidates`` best, mapped back and clipped alike, no NMS again, the ``max_detections``
best.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ... import kernels
from ...errors import ModelError
from ...manifest import Manifest
from ...results import Result, ResultBuilder, deferred
from ...results.detection import ObjectDetection
from ..golden import golden_limits
from .config import parse_postprocess
from .decode import decode
from .detections import read_detections
from .matching import Boxes, match
from .preprocess import DetectionContext

__all__ = ["GOLDEN_MIN_IOU", "DetectionPostprocessor", "golden_check"]

GOLDEN_MIN_IOU = 0.7  # a golden box is found where a box of its class overlaps it this much
Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]
Detected = tuple[Floats, Floats, Ints, bool, str | None]  # boxes, scores, classes, truncated, why


class DetectionPostprocessor:
    """The model's outputs and one input's context -> :class:`ObjectDetection`."""

    def __init__(self, manifest: Manifest, model_size: tuple[int, int]) -> None:
        self.parsed = parse_postprocess(manifest)
        self.config, self.labels = self.parsed.config, self.parsed.labels
        given = self.config.thresholds
        self.thresholds = np.array(
            [float(given.get(label, self.config.score_threshold)) for label in self.labels],
            np.float32,
        )
        self.model_size = model_size

    def _best(self, values: Floats) -> Ints:
        """Indices of the ``max_candidates`` best ``values`` (all if fewer), in order."""
        limit = self.config.max_candidates
        if len(values) <= limit:
            return np.arange(len(values), dtype=np.int64)
        return np.sort(np.argpartition(-values, limit - 1)[:limit]).astype(np.int64)

    def _passing(self, scores: Floats) -> tuple[Ints, Ints]:
        """(candidate, class) of every score at or above its class's threshold, at most
        ``max_candidates`` of them, the best."""
        rows, cols = np.nonzero(scores >= self.thresholds[None, :])
        keep = self._best(scores[rows, cols])
        return rows[keep].astype(np.int64), cols[keep].astype(np.int64)

    def _abstention(self, scores: Floats, classes: Ints, cleared: int, what: str) -> str:
        """Why no box, given every (score, class) pair the model gave (``what`` they are)."""
        if cleared:
            return f"no box: the {cleared} that cleared their thresholds lie outside the image"
        if not scores.size:
            return f"no box: the model gave no {what}s"
        i = int(np.argmax(scores - self.thresholds[classes]))
        c = int(classes[i])
        return (
            f"no box reached its class's score threshold (best {what}: "
            f"{self.labels[c]} {float(scores[i]):.3f} < {float(self.thresholds[c]):g})"
        )

    def _to_image(self, boxes: Floats, ctx: DetectionContext) -> tuple[Floats, npt.NDArray[Any]]:
        """Model-input corners -> the image's pixels, clipped to it; and which keep an area
        (a box wholly in letterbox padding or outside a crop has none)."""
        p = ctx.placement
        shift = np.array([p.offset_x, p.offset_y, p.offset_x, p.offset_y], np.float64)
        scale = np.array([p.scale_x, p.scale_y, p.scale_x, p.scale_y], np.float64)
        limit = np.array([ctx.width, ctx.height, ctx.width, ctx.height], np.float64)
        mapped = np.clip((boxes.astype(np.float64) + shift) / scale, 0.0, limit)
        inside = (mapped[:, 2] > mapped[:, 0]) & (mapped[:, 3] > mapped[:, 1])
        return np.ascontiguousarray(mapped, np.float32), inside

    def _final(self, order: Ints, scores: Floats) -> tuple[Ints, bool]:
        """``order`` best first (ties: lower index), capped at ``max_detections``."""
        order = order[np.lexsort((order, -scores[order]))]
        truncated = len(order) > self.config.max_detections
        return order[: self.config.max_detections], truncated

    def _suppress(self, boxes: Floats, scores: Floats, classes: npt.NDArray[np.int64]) -> Any:
        iou = self.config.iou_threshold
        if self.config.class_agnostic:
            return kernels.nms(boxes, scores, iou)
        kept = []
        for c in np.unique(classes).tolist():
            where = np.flatnonzero(classes == c)
            sub = np.ascontiguousarray(boxes[where])
            kept.append(where[kernels.nms(sub, np.ascontiguousarray(scores[where]), iou)])
        return np.concatenate(kept) if kept else np.zeros(0, np.int64)

    def detect(self, outputs: Mapping[str, npt.NDArray[Any]], ctx: DetectionContext) -> Detected:
        """(boxes in image pixels, scores, classes, truncated, why none) of one image."""
        if self.config.layout == "detections":
            return self._detect_final(outputs, ctx)
        candidates = decode(self.parsed, outputs, self.model_size)
        all_scores = candidates.scores
        rows, classes = self._passing(all_scores)
        mapped, inside = self._to_image(candidates.boxes(rows), ctx)
        boxes = np.ascontiguousarray(mapped[inside])
        scores = np.ascontiguousarray(all_scores[rows, classes][inside], np.float32)
        classes = classes[inside]
        order, truncated = self._final(self._suppress(boxes, scores, classes), scores)
        why = None
        if not len(order):
            every = np.tile(np.arange(len(self.labels), dtype=np.int64), len(all_scores))
            why = self._abstention(all_scores.ravel(), every, len(rows), "candidate")
        return boxes[order], scores[order], classes[order].astype(np.int64), truncated, why

    def _detect_final(
        self, outputs: Mapping[str, npt.NDArray[Any]], ctx: DetectionContext
    ) -> Detected:
        """Layout ``detections``: the graph's rows, thresholded, mapped, clipped; no NMS."""
        found = read_detections(self.parsed, outputs, self.model_size)
        passing = np.flatnonzero(found.scores >= self.thresholds[found.classes])
        passing = passing[self._best(found.scores[passing])]
        mapped, inside = self._to_image(found.boxes[passing], ctx)
        kept = passing[inside]
        order, truncated = self._final(np.arange(len(kept), dtype=np.int64), found.scores[kept])
        why = None
        if not len(order):
            why = self._abstention(found.scores, found.classes, len(passing), "detection")
        boxes = np.ascontiguousarray(mapped[inside][order])
        return boxes, found.scores[kept][order], found.classes[kept][order], truncated, why

    def __call__(self, outputs: Mapping[str, npt.NDArray[Any]], context: Any) -> ResultBuilder:
        if not isinstance(context, DetectionContext):
            raise ModelError("object-detection: postprocessing needs its input's context")
        boxes, scores, classes, truncated, why = self.detect(outputs, context)
        return deferred(
            ObjectDetection,
            labels=self.labels,
            boxes=boxes,
            scores=scores,
            classes=classes,
            height=context.height,
            width=context.width,
            truncated=truncated,
            abstained=why,
        )


def _expected(manifest: Manifest, n: int) -> list[Boxes] | str:
    try:
        with np.load(manifest.path("golden_outputs"), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError) as exc:
        return f"golden: outputs must be an .npz ({type(exc).__name__})"
    want = {f"{k}_{i}" for k in ("boxes", "scores", "classes") for i in range(n)}
    if set(arrays) != want:
        return f"golden: expected arrays boxes_i, scores_i, classes_i (i < {n}), got {sorted(arrays)[:9]}"
    return [
        Boxes(
            arrays[f"boxes_{i}"].astype(np.float32).reshape(-1, 4),
            arrays[f"classes_{i}"].astype(np.int64),
            arrays[f"scores_{i}"].astype(np.float32),
        )
        for i in range(n)
    ]


def golden_check(manifest: Manifest, results: Sequence[Result], cpu_family: str) -> list[str]:
    """Per golden image, with ``max_abs_diff`` as the score tolerance: every expected box
    scored at least that far above its class's threshold (one that drift cannot remove) is
    found, a box of its class overlapping it by IoU >= 0.7, on at least
    ``min_label_agreement`` of them (default: all); every box found that far above its
    threshold matches an expected one; matched scores differ by at most ``max_abs_diff``."""
    rows = [r for r in results if isinstance(r, ObjectDetection)]
    if not rows or len(rows) != len(results):
        return [f"golden: {len(results) - len(rows)} result(s) are not object detections"]
    expected = _expected(manifest, len(rows))
    if isinstance(expected, str):
        return [expected]
    tol, problems = golden_limits(manifest, results, cpu_family), []
    need = 1.0 if tol.min_label_agreement is None else tol.min_label_agreement
    post = manifest.postprocess
    labels = list(post["labels"])
    by_label = post.get("thresholds", {})
    thresholds = np.array(
        [float(by_label.get(x, post.get("score_threshold", 0.5))) for x in labels]
    )
    for i, (r, want) in enumerate(zip(rows, expected, strict=True)):
        got = Boxes(r.boxes, r.classes, r.scores)
        firm_want = want.scores >= thresholds[want.classes] + tol.max_abs_diff
        firm_got = got.scores >= thresholds[got.classes] + tol.max_abs_diff
        pairs = match(want, got, GOLDEN_MIN_IOU)
        found = float(np.mean(pairs[firm_want] >= 0)) if firm_want.any() else 1.0
        if found < need:
            problems.append(
                f"golden: image {i}: {found:.1%} of its {int(firm_want.sum())} clear boxes found "
                f"(same class, IoU >= {GOLDEN_MIN_IOU}; need {need:.1%})"
            )
        extra = sorted(set(np.flatnonzero(firm_got).tolist()) - set(pairs[pairs >= 0].tolist()))
        if extra:
            d = r.detections[extra[0]]
            problems.append(
                f"golden: image {i}: {len(extra)} clear box(es) not expected, e.g. {d.label} "
                f"{d.score:.4f} at {[round(v, 1) for v in d.box]}"
            )
        for a, b in zip(
            np.flatnonzero(pairs >= 0).tolist(), pairs[pairs >= 0].tolist(), strict=True
        ):
            if not abs(float(want.scores[a]) - float(got.scores[b])) <= tol.max_abs_diff:
                problems.append(
                    f"golden: image {i}: {labels[int(want.classes[a])]} box score "
                    f"{float(got.scores[b]):.6f}, expected {float(want.scores[a]):.6f} "
                    f"(> {tol.max_abs_diff} apart)"
                )
    return problems
