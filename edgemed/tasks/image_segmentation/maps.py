"""The model's per-class score maps -> one class per pixel of the caller's image.

Each score map (probabilities: after softmax or sigmoid at the model's resolution) is
resized back onto the input image, bilinearly, through the inverse of the preprocessing's
placement (stretch, letterbox padding, centre crop), one map at a time (memory stays a few
maps of the input's size, whatever the number of classes). Then each pixel takes its class:

- ``argmax`` (one map per label): the best score; margin = best - second best.
- ``threshold`` (one map per foreground label, ``labels[0]`` the background): the best
  score among the maps at or above their threshold, else the background (confidence: one
  minus the best foreground score); margin = the distance to the nearest change (a
  threshold crossed, or another passing class overtaking).

Pixels the model did not see (centre crop: outside the crop) are :data:`UNSEEN`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from .preprocess import SegmentationContext

__all__ = ["Decision", "decide_argmax", "decide_threshold", "resized_maps"]

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class Decision:
    mask: npt.NDArray[np.uint8]
    confidence: Floats
    margin: Floats


def _affine(
    ctx: SegmentationContext, model_size: tuple[int, int], map_size: tuple[int, int]
) -> tuple[npt.NDArray[np.float64], bool]:
    """The affine map from input pixel (x, y) to score-map pixel, and whether it is the
    identity. Pixel centres: input (x + 0.5) * scale - offset is the model-input coordinate,
    times map/model the map's."""
    p = ctx.placement
    (mh, mw), (sh, sw) = model_size, map_size
    ax, ay = p.scale_x * sw / mw, p.scale_y * sh / mh
    bx = (0.5 * p.scale_x - p.offset_x) * sw / mw - 0.5
    by = (0.5 * p.scale_y - p.offset_y) * sh / mh - 0.5
    matrix = np.array([[ax, 0.0, bx], [0.0, ay, by]], np.float64)
    identity = (ctx.height, ctx.width) == map_size and np.allclose(
        matrix, [[1, 0, 0], [0, 1, 0]], rtol=0, atol=1e-12
    )
    return matrix, bool(identity)


def seen(ctx: SegmentationContext, model_size: tuple[int, int]) -> npt.NDArray[np.bool_] | None:
    """Which input pixels fall inside the model's input (None: all of them)."""
    p = ctx.placement
    ys = (np.arange(ctx.height) + 0.5) * p.scale_y - p.offset_y
    xs = (np.arange(ctx.width) + 0.5) * p.scale_x - p.offset_x
    rows = (ys >= 0) & (ys < model_size[0])
    cols = (xs >= 0) & (xs < model_size[1])
    if rows.all() and cols.all():
        return None
    return rows[:, None] & cols[None, :]


def resized_maps(
    scores: Floats, ctx: SegmentationContext, model_size: tuple[int, int]
) -> Iterator[Floats]:
    """Each (h, w) map of ``scores`` (C, h, w) resized onto the input image (H, W)."""
    matrix, identity = _affine(ctx, model_size, (scores.shape[1], scores.shape[2]))
    for channel in scores:
        if identity:
            yield np.array(channel, np.float32)
            continue
        out = cv2.warpAffine(
            np.ascontiguousarray(channel),
            matrix,
            (ctx.width, ctx.height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        yield np.asarray(out, np.float32)


def decide_argmax(maps: Iterator[Floats]) -> Decision:
    """The best-scoring class of each pixel (one map per label, in label order)."""
    best = next(maps).copy()
    second = np.full_like(best, -np.inf)
    mask = np.zeros(best.shape, np.uint8)
    for c, score in enumerate(maps, start=1):
        better = score > best
        second = np.where(better, best, np.maximum(second, score))
        best = np.where(better, score, best)
        mask[better] = c
    margin = np.minimum(best - second, 1.0).astype(np.float32)
    return Decision(mask, np.clip(best, 0.0, 1.0), np.maximum(margin, 0.0))


def _one_threshold(score: Floats, threshold: float) -> Decision:
    """One foreground map: the common case, without the multi-class bookkeeping."""
    fg = score >= threshold
    confidence = np.where(fg, score, np.float32(1.0) - score)
    margin = np.abs(score - np.float32(threshold))
    return Decision(
        fg.view(np.uint8),
        np.clip(confidence, 0.0, 1.0, out=confidence),
        np.clip(margin, 0.0, 1.0, out=margin),
    )


def decide_threshold(maps: Iterator[Floats], thresholds: npt.NDArray[np.float32]) -> Decision:
    """Foreground maps (labels[1:]) against their ``thresholds``; the background elsewhere."""
    first = next(maps)
    if len(thresholds) == 1:
        return _one_threshold(first, float(thresholds[0]))
    top_over = first - thresholds[0]  # the highest score - threshold: > 0 somewhere foreground
    top_score = first.copy()
    # The best and second best passing scores; -1 (below any score) where none passes.
    best = np.where(top_over >= 0, first, np.float32(-1.0))
    second = np.full_like(best, -1.0)
    mask = (top_over >= 0).view(np.uint8)
    for c, score in enumerate(maps, start=2):
        over = score - thresholds[c - 1]
        passing = over >= 0
        better = passing & (score > best)
        second = np.where(better, best, np.where(passing, np.maximum(second, score), second))
        best = np.where(better, score, best)
        mask[better] = c
        np.maximum(top_over, over, out=top_over)
        np.maximum(top_score, score, out=top_score)
    fg = mask > 0
    chosen = np.concatenate(([np.float32(0.0)], thresholds)).astype(np.float32)[mask]
    margin = np.where(fg, np.minimum(best - chosen, best - second), -top_over)
    confidence = np.where(fg, best, np.float32(1.0) - top_score)
    return Decision(
        mask,
        np.clip(confidence, 0.0, 1.0).astype(np.float32),
        np.clip(margin, 0.0, 1.0).astype(np.float32),
    )
