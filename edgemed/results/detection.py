"""Results of object detectors: boxes in the caller's image pixels, each with its class and
score, best first; or none, saying why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ..contracts.detection import MAX_DETECTIONS
from .base import Provenance, timings_summary

__all__ = ["MAX_DETECTIONS", "Detection", "ObjectDetection"]

_BOX_DIGITS = 1  # box corners on the wire: tenths of a pixel
_SCORE_DIGITS = 4


class Detection(NamedTuple):
    """One box: its class, score in [0, 1], and corners (x1, y1, x2, y2) in input pixels."""

    label: str
    score: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True, kw_only=True, eq=False)
class ObjectDetection:
    """What an object detector (task ``object-detection``) says about one image.

    ``boxes`` (n, 4) float32 holds each detection's corners x1, y1, x2, y2 in pixels of the
    image as the caller passed it (x to the right, y down, 0 <= x1 < x2 <= width), the model's
    boxes mapped back through the preprocessing (stretch, letterbox or centre crop) and clipped
    to the image; ``scores`` (n,) their scores in [0, 1] and ``classes`` (n,) their indices
    into ``labels``, best score first. Each box cleared its class's threshold and survived
    non-maximum suppression; at most ``max_detections`` are kept (``truncated``: more cleared
    it).

    No box is a valid result, never an error: ``abstained`` then says why (no candidate
    reached its class's threshold, with the best one's score), and is None whenever there is a
    box.
    """

    labels: tuple[str, ...]
    boxes: npt.NDArray[np.float32] = field(repr=False)
    scores: npt.NDArray[np.float32] = field(repr=False)
    classes: npt.NDArray[np.int64] = field(repr=False)
    height: int
    width: int
    truncated: bool
    abstained: str | None
    provenance: Provenance
    kind: str = "object-detection"

    @property
    def detections(self) -> tuple[Detection, ...]:
        return tuple(
            Detection(
                self.labels[int(c)], float(s), (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
            )
            for b, s, c in zip(self.boxes, self.scores, self.classes, strict=True)
        )

    def of(self, label: str) -> tuple[Detection, ...]:
        """The detections of class ``label`` (KeyError naming the labels if it is not one)."""
        if label not in self.labels:
            raise KeyError(f"{label!r} is not one of {list(self.labels)}")
        return tuple(d for d in self.detections if d.label == label)

    def counts(self) -> dict[str, int]:
        """Boxes per label, for the labels found."""
        found: dict[str, int] = {}
        for c in self.classes.tolist():
            found[self.labels[c]] = found.get(self.labels[c], 0) + 1
        return found

    def body(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "height": self.height,
            "width": self.width,
            "detections": [
                {
                    "label": d.label,
                    "score": round(d.score, _SCORE_DIGITS),
                    "box": [round(v, _BOX_DIGITS) for v in d.box],
                }
                for d in self.detections
            ],
            "truncated": self.truncated,
            "abstained": self.abstained,
        }

    def summary(self) -> dict[str, Any]:
        return {
            **timings_summary(self.provenance),
            "size": [self.height, self.width],
            "count": len(self.scores),
            "counts": self.counts(),
            "best": [
                [d.label, round(d.score, 4), [round(v, 1) for v in d.box]]
                for d in self.detections[:5]
            ],
            "truncated": self.truncated,
            "abstained": self.abstained,
        }
