"""Stage 4 for the monitor reader: detector map -> text boxes -> recognised text -> vital signs.

The pipeline's backend runs the PP-OCR text *detector* (manifest role ``model``). Reading the
boxes needs a second network, the text *recogniser* (role ``recognizer``), on crops whose number
and sizes are only known once the detector's map is decoded, so it cannot be one more output of
the backend call. The postprocessor opens it through the backend layer (``open_model``: selected
like the detector, thread-safe, named in each result's provenance): the pipeline contract stays
"one backend call per input", and the recogniser's time is reported inside ``postprocess_ms``.

Steps: ``db_boxes`` (C++ DB post-processing, rapidocr's thresholds) -> boxes ordered clockwise,
clipped, tiny ones dropped -> each box cut out by a perspective warp (cubic, rotated upright when
taller than wide) -> resized to height 48 and normalised by ``preprocess_image`` (C++), right
padded with zeros to a width bucket -> recogniser -> ``ctc_greedy_decode`` (C++) ->
texts below ``min_text_confidence`` dropped -> :func:`~edgemed.tasks.monitor_reader.vitals_text.pair_fields`
-> NEWS2 (C++ kernel) when every input is known.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ... import kernels
from ...contracts import NEWS2_PARAMETERS
from ...errors import ManifestError
from ...manifest import Manifest, parse_section
from ...results import (
    MONITOR_FIELDS,
    MonitorReading,
    News2Partial,
    OcrText,
    Result,
    ResultBuilder,
    VitalReading,
    Withheld,
    deferred,
)
from ..golden import golden_limits
from ..spec import OpenModel
from .box_crops import crop_box, order_clockwise, widened_crop
from .box_split import Recognised, cut_mixed
from .closer_look import look_closer
from .field_confidence import FieldConfidence
from .panels import Panels
from .preprocess import DetectorPreprocess, MonitorContext, MonitorFrame, detector_input
from .vitals_text import Box, Candidate, pair_fields
from .whole_value import whole_values

__all__ = ["MonitorPostprocess", "MonitorPostprocessor", "golden_check", "news2_of"]


@dataclass(frozen=True, kw_only=True)
class MonitorPostprocess:
    """The manifest's ``postprocess`` section for the monitor reader."""

    thresh: float  # DB binarisation threshold
    box_thresh: float  # minimum mean probability of a box
    unclip_ratio: float
    max_candidates: int
    rec_height: int  # recogniser input height
    rec_min_width: int  # crops are right-padded to at least this width...
    rec_width_step: int  # ...and to a multiple of this step (a crop's result never
    # depends on the other crops of the screen: each is padded by its own width only)
    rec_max_width: int
    rec_mean: float
    rec_std: float
    min_text_confidence: float
    field_confidence: dict[str, Any]  # weights, bias, threshold (field_confidence.py)


def _emitting(best: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
    """The CTC steps that emit a character in the greedy decode: not blank (class 0), not a
    repeat of the previous step's class."""
    return np.asarray((best != 0) & np.concatenate(([True], best[1:] != best[:-1])))


def _emitted(
    probs: npt.NDArray[np.float32], space: int, padded_over_width: float
) -> tuple[float, ...]:
    """Centres of the CTC steps that emit a character other than a space, as fractions of
    the crop's width (the steps span the padded input; the crop fills ``width`` of it)."""
    best = probs.argmax(axis=1)
    step = padded_over_width / len(best)
    keep = _emitting(best) & (best != space)
    return tuple(float((i + 0.5) * step) for i in np.flatnonzero(keep))


def _digits(text: str) -> str:
    return re.sub(r"[^0-9./]", "", text)


def _least_sure(probs: npt.NDArray[np.float32]) -> float:
    """The lowest max-probability over the CTC steps that emit a character (blank is class 0,
    a repeat of the previous step's class is merged, as in the greedy decode)."""
    keep = _emitting(probs.argmax(axis=1))
    return float(probs.max(axis=1)[keep].min()) if keep.any() else 0.0


def _colour(crop: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """Unit BGR vector of a crop's text pixels (the brightest fifth)."""
    pixels = crop.reshape(-1, 3).astype(np.float64)
    bright = pixels.sum(axis=1)
    chosen = pixels[bright >= np.percentile(bright, 80)]
    mean = chosen.mean(axis=0) - pixels.min(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else np.full(3, 1 / math.sqrt(3))


class MonitorPostprocessor:
    """Detector map + photo -> :class:`~edgemed.results.MonitorReading`."""

    def __init__(self, manifest: Manifest, open_model: OpenModel) -> None:
        c = parse_section(MonitorPostprocess, manifest.postprocess, "manifest.postprocess")
        if not (0 < c.thresh < 1 and 0 < c.box_thresh < 1 and c.unclip_ratio > 0):
            raise ManifestError("manifest.postprocess: thresh, box_thresh in (0, 1), unclip > 0")
        if not (8 <= c.rec_height <= 128 and 1 <= c.rec_width_step <= c.rec_min_width):
            raise ManifestError("manifest.postprocess: bad recogniser geometry")
        if c.rec_max_width < c.rec_min_width or c.rec_std <= 0:
            raise ManifestError("manifest.postprocess: rec_max_width >= rec_min_width, std > 0")
        self.config = c
        self.field_confidence = FieldConfidence.from_manifest(c.field_confidence)
        self._output = manifest.outputs[0].name
        chars = manifest.path("charset").read_text(encoding="utf-8").splitlines()
        self.charset = kernels.ppocr_charset(chars)
        self.recognizer = open_model("recognizer")
        self._rec_input = self.recognizer.input_names[0]
        # The detector again, for a closer look at small labels (closer_look.py).
        self._det = parse_section(DetectorPreprocess, manifest.preprocess, "manifest.preprocess")
        self.detector = open_model("model")
        self._det_input = self.detector.input_names[0]

    def read_boxes(
        self, prob: npt.NDArray[np.float32], image: npt.NDArray[np.uint8]
    ) -> list[tuple[npt.NDArray[np.float32], float]]:
        """Detector probability map (H, W) -> boxes in source pixels, top to bottom."""
        c = self.config
        h, w = image.shape[:2]
        boxes, scores = kernels.db_boxes(
            np.ascontiguousarray(prob, dtype=np.float32),
            dest_size=(h, w),
            thresh=c.thresh,
            box_thresh=c.box_thresh,
            unclip_ratio=c.unclip_ratio,
            max_candidates=c.max_candidates,
        )
        kept = []
        for box, score in zip(boxes, scores, strict=True):
            pts = order_clockwise(box.astype(np.float32))
            pts[:, 0] = np.clip(pts[:, 0], 0, w - 1).astype(np.int32)
            pts[:, 1] = np.clip(pts[:, 1], 0, h - 1).astype(np.int32)
            if (
                int(np.linalg.norm(pts[0] - pts[1])) <= 3
                or int(np.linalg.norm(pts[0] - pts[3])) <= 3
            ):
                continue
            kept.append((pts, float(score)))
        kept.sort(key=lambda b: (float(b[0][0, 1]), float(b[0][0, 0])))
        return kept

    def recognise(self, crops: Sequence[npt.NDArray[np.uint8]]) -> list[Recognised]:
        """Crops -> what each says, its confidences and where each character was emitted;
        crops of the same padded width share one run."""
        c = self.config
        tensors: list[npt.NDArray[np.float32]] = []
        widths: list[int] = []
        for crop in crops:
            ratio = crop.shape[1] / crop.shape[0]
            width = min(c.rec_max_width, max(1, math.ceil(c.rec_height * ratio)))
            padded = max(c.rec_min_width, math.ceil(width / c.rec_width_step) * c.rec_width_step)
            transform = kernels.ImageTransform(
                size=(c.rec_height, width),
                input_order="bgr",
                output_order="bgr",
                mean=(c.rec_mean,) * 3,
                std=(c.rec_std,) * 3,
            )
            out = np.zeros((3, c.rec_height, min(padded, c.rec_max_width)), np.float32)
            out[:, :, :width] = kernels.preprocess_image(crop, transform)[0]
            tensors.append(out)
            widths.append(width)
        results: list[Recognised] = [Recognised("", 0.0, 0.0, ())] * len(crops)
        for padded in sorted({t.shape[2] for t in tensors}):
            idx = [i for i, t in enumerate(tensors) if t.shape[2] == padded]
            batch = np.stack([tensors[i] for i in idx])
            probs = np.ascontiguousarray(
                next(iter(self.recognizer.run({self._rec_input: batch}).values())),
                dtype=np.float32,
            )
            decoded = kernels.ctc_greedy_decode(probs, self.charset)
            for row, i, (text, conf) in zip(probs, idx, decoded, strict=True):
                where = _emitted(row, len(self.charset) - 1, padded / widths[i])
                results[i] = Recognised(text, conf, _least_sure(row), where)
        return results

    def detect(self, image: npt.NDArray[np.uint8]) -> list[tuple[npt.NDArray[np.float32], float]]:
        """The detector on ``image`` (a region enlarged for a closer look): boxes in its pixels."""
        tensor = detector_input(image, self._det)
        prob = next(iter(self.detector.run({self._det_input: tensor}).values()))[0, 0]
        return self.read_boxes(prob, image)

    def second_read(
        self,
        candidates: list[Candidate],
        image: npt.NDArray[np.uint8],
        kept: list[npt.NDArray[np.float32]],
        texts: list[OcrText],
    ) -> None:
        """Read every candidate value's box again from a widened, softened crop and record in
        its features whether the digits agree (one recogniser batch per screen)."""
        boxes = sorted(
            {c.value_box for c in candidates if c.value is not None and c.value_box is not None}
        )
        if not boxes:
            return
        second = self.recognise([widened_crop(image, kept[i]) for i in boxes])
        agree = {
            i: _digits(texts[i].text) == _digits(again.text)
            for i, again in zip(boxes, second, strict=True)
        }
        for c in candidates:
            if c.value is not None and c.value_box is not None:
                c.features["agree"] = float(agree[c.value_box])

    def __call__(
        self, outputs: Mapping[str, npt.NDArray[Any]], context: MonitorContext
    ) -> ResultBuilder:
        prob = np.asarray(outputs[self._output])[0, 0]
        image = context.image
        boxes = self.read_boxes(prob, image)
        crops = [crop_box(image, pts) for pts, _ in boxes]
        recognised = self.recognise(crops)
        boxes, crops, recognised = cut_mixed(
            image, boxes, crops, recognised, self.recognise, self.config.min_text_confidence
        )
        look_closer(image, boxes, crops, recognised, self.detect, self.recognise,
                    self.config.min_text_confidence)  # fmt: skip
        texts: list[OcrText] = []
        pairing_boxes: list[Box] = []
        kept: list[npt.NDArray[np.float32]] = []
        read: list[tuple[npt.NDArray[np.uint8], tuple[float, ...]]] = []  # crop, char positions
        for (pts, score), (text, conf, least, where), crop in zip(
            boxes, recognised, crops, strict=True
        ):
            if conf < self.config.min_text_confidence or not text.strip():
                continue
            kept.append(pts)
            read.append((crop, where))
            corners = tuple((int(x), int(y)) for x, y in pts)
            pairing_boxes.append(
                Box(len(texts), text, pts.astype(np.float64), _colour(crop), conf, least)
            )
            texts.append(OcrText(text=text, confidence=float(conf), box=corners, box_score=score))
        panels = Panels(image)
        paired = pair_fields(pairing_boxes, panels.apart)
        candidates = whole_values(paired, image, kept, read, [t.text for t in texts], panels)
        self.second_read(candidates, image, kept, texts)
        fields, withheld = read_fields(candidates, texts, self.field_confidence)
        full, part, assumed = news2_of(fields, context.frame)
        return deferred(
            MonitorReading,
            fields=fields,
            texts=tuple(texts),
            news2=full,
            news2_partial=part,
            news2_assumed=assumed,
            withheld=withheld,
        )


_SPLIT = {"nibp": ("nibp_systolic", "nibp_diastolic")}


def read_fields(
    candidates: list[Candidate], texts: list[OcrText], confidence: FieldConfidence
) -> tuple[dict[str, VitalReading | None], dict[str, Withheld]]:
    """Candidates -> one reading or one withholding per reported field.

    Never guess: a parameter whose every candidate was withheld, whose candidates disagree, or
    whose confidence is below the operating threshold is None, with the reason."""
    per_name: dict[str, list[Candidate]] = {}
    for c in candidates:
        per_name.setdefault(c.name, []).append(c)
    fields: dict[str, VitalReading | None] = {k: None for k in MONITOR_FIELDS}
    withheld: dict[str, Withheld] = {}
    for name in ("hr", "spo2", "nibp", "rr", "temperature"):
        found = per_name.get(name, [])
        limits = next((c.alarm_limits for c in found if c.alarm_limits), None)
        reason = _no_single_value(found, texts, limits)
        if reason is None:
            read = _confident_readings(name, found, texts, confidence, limits)
            if isinstance(read, Withheld):
                reason = read
            else:
                fields.update(read)
        if reason is not None:
            for key in _SPLIT.get(name, (name,)):
                withheld[key] = reason
    return fields, withheld


def _no_single_value(
    found: list[Candidate], texts: list[OcrText], limits: tuple[float, float] | None
) -> Withheld | None:
    """Why a parameter's candidates give no one value (none, all withheld, disagreeing)."""
    valued = [c for c in found if c.value is not None]
    if not found:
        return Withheld(reason="not-shown", detail="no label of this parameter was read")
    if not valued:
        c = found[0]
        return Withheld(reason=c.reason or "no-value", detail=c.detail, alarm_limits=limits)
    if len({c.value for c in valued}) > 1 or len(valued) < len(found):
        shown = ", ".join(repr(texts[c.value_box].text) for c in valued if c.value_box is not None)
        return Withheld(
            reason="conflicting-readings",
            detail=f"read more than once: {shown}"
            + ("" if len(valued) == len(found) else " and once without a value"),
            alarm_limits=limits,
        )
    return None


def _confident_readings(
    name: str,
    found: list[Candidate],
    texts: list[OcrText],
    confidence: FieldConfidence,
    limits: tuple[float, float] | None,
) -> dict[str, VitalReading] | Withheld:
    """The agreed value of ``name`` (every candidate has it) as readings of its fields, or
    ``low-confidence`` when its least confident candidate is below the threshold."""
    best = found[0]
    score = min(confidence(c.features) for c in found)
    if score < confidence.threshold:
        return Withheld(
            reason="low-confidence",
            detail=f"{texts[best.value_box].text!r} read with confidence {score:.2f}"
            if best.value_box is not None
            else "low confidence",
            alarm_limits=limits,
            confidence=score,
        )
    assert best.value is not None and best.value_box is not None
    label = texts[best.label_box] if best.label_box not in (None, best.value_box) else None
    readings: dict[str, VitalReading] = {}
    for key, v in zip(_SPLIT.get(name, (name,)), best.value, strict=True):
        value: float | int = round(v, 1) if key == "temperature" else int(v)
        readings[key] = VitalReading(
            value=value,
            unit=MONITOR_FIELDS[key],
            source=texts[best.value_box],
            label=label,
            confidence=score,
            alarm_limits=limits if name != "nibp" else None,
            unit_shown=best.unit_shown,
        )
    return readings


_READ = {
    "respiration_rate": "rr",
    "spo2": "spo2",
    "systolic_bp": "nibp_systolic",
    "pulse": "hr",
    "temperature": "temperature",
}
_NEUTRAL = {  # stand-ins for unknown inputs; their scores are dropped, never reported
    "respiration_rate": 16.0,
    "spo2": 97.0,
    "systolic_bp": 120.0,
    "pulse": 70.0,
    "temperature": 37.0,
}


def news2_of(
    fields: Mapping[str, VitalReading | None], frame: MonitorFrame
) -> tuple[dict[str, Any] | None, News2Partial | None, tuple[str, ...]]:
    """(full NEWS2 body or None, partial scores or None, assumptions made).

    Each NEWS2 parameter scores independently on the chart, so the scores of the known
    parameters are exact even when others are unknown; the sum of those is only a lower bound
    and is reported as partial, never as NEWS2.
    """
    consciousness, on_oxygen = frame.consciousness, frame.on_oxygen
    assumed: list[str] = []
    if frame.assume_alert_on_room_air:
        if consciousness is None:
            consciousness = "A"
            assumed.append("consciousness")
        if on_oxygen is None:
            on_oxygen = False
            assumed.append("air_or_oxygen")
    known = {k: fields[v].value for k, v in _READ.items() if fields[v] is not None}  # type: ignore[union-attr]
    missing = [k for k in _READ if k not in known]
    if consciousness is None:
        missing.append("consciousness")
    if on_oxygen is None:
        missing.append("air_or_oxygen")
    vitals = kernels.VitalSigns(
        respiration_rate=float(known.get("respiration_rate", _NEUTRAL["respiration_rate"])),
        spo2=float(known.get("spo2", _NEUTRAL["spo2"])),
        on_oxygen=bool(on_oxygen) if on_oxygen is not None else False,
        systolic_bp=float(known.get("systolic_bp", _NEUTRAL["systolic_bp"])),
        pulse=float(known.get("pulse", _NEUTRAL["pulse"])),
        consciousness=consciousness or "A",
        temperature=float(known.get("temperature", _NEUTRAL["temperature"])),
        spo2_scale=frame.spo2_scale,
    )
    score = kernels.news2(vitals)
    if not missing:
        return score.body(), None, tuple(assumed)
    # SpO2's score depends on air/oxygen (scale 2), so it is unknown when oxygen is.
    unknown = set(missing) | ({"spo2"} if on_oxygen is None and frame.spo2_scale == 2 else set())
    scores = {k: v for k, v in score.parameter_scores.items() if k not in unknown}
    ordered = {k: scores[k] for k in NEWS2_PARAMETERS if k in scores}
    return (
        None,
        News2Partial(
            parameter_scores=ordered,
            missing=tuple(missing),
            assumed=tuple(assumed),
            unscored=tuple(k for k in NEWS2_PARAMETERS if k in unknown),
        ),
        tuple(assumed),
    )


def golden_check(manifest: Manifest, results: Sequence[Result], cpu_family: str) -> list[str]:
    """Field values on the golden screens must be exact; box scores within ``max_abs_diff``."""
    spec = json.loads(manifest.path("golden_outputs").read_text(encoding="utf-8"))
    cases = spec["cases"]
    readings = [r for r in results if isinstance(r, MonitorReading)]
    if len(readings) != len(cases):
        return [f"golden: got {len(readings)} readings for {len(cases)} screens"]
    problems = []
    tol = golden_limits(manifest, results, cpu_family).max_abs_diff
    for case, reading in zip(cases, readings, strict=True):
        got = {k: reading.value(k) for k in MONITOR_FIELDS}
        if got != case["fields"]:
            problems.append(f"golden {case['image']}: read {got}, expected {case['fields']}")
        for text, expected in case["box_scores"].items():
            match = [t.box_score for t in reading.texts if t.text == text]
            if not match:
                problems.append(f"golden {case['image']}: text {text!r} not read")
            elif abs(match[0] - expected) > tol:
                problems.append(
                    f"golden {case['image']}: box {text!r} score {match[0]:.4f}, "
                    f"expected {expected:.4f} +- {tol}"
                )
    return problems
