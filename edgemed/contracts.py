"""Valid ranges of every result kind: one definition, two uses.

The fleet checks every result it ingests against these (after the JSON Schemas in
``edgemed/schemas/``, which fix the structure and the sizes); the device's result types check
what they build against the same definitions. Standard library only: both sides import this
leaf, and a check must never raise anything but :class:`ContractError` on any JSON input.

Kinds not listed here pass (a newer device may send kinds this fleet does not act on); the
schema still bounds their size.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Callable, Iterable
from typing import Any

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


class ContractError(ValueError):
    """A result body outside its kind's declared ranges; the message says which field and why.

    A ValueError (not an edgemed error): this module is a stdlib-only leaf. The wire turns it
    into a PayloadError, the device's result types into a ModelError."""


NEWS2_PARAMETERS = (
    "respiration_rate",
    "spo2",
    "air_or_oxygen",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
)
# The scores each parameter can take on the NEWS2 chart (RCP 2017): oxygen is 0 or 2 and
# consciousness 0 or 3, so the aggregate is at most 3 * 5 + 2 + 3 = 20.
NEWS2_SCORES: dict[str, frozenset[int]] = {
    "respiration_rate": frozenset({0, 1, 2, 3}),
    "spo2": frozenset({0, 1, 2, 3}),
    "air_or_oxygen": frozenset({0, 2}),
    "systolic_bp": frozenset({0, 1, 2, 3}),
    "pulse": frozenset({0, 1, 2, 3}),
    "consciousness": frozenset({0, 3}),
    "temperature": frozenset({0, 1, 2, 3}),
}
NEWS2_MAX = sum(max(s) for s in NEWS2_SCORES.values())  # 20


def news2_partial_bound(partial_score: int, unscored: Iterable[str]) -> tuple[int, bool]:
    """(highest NEWS2 still possible, whether an escalation threshold is still reachable) for a
    partial score whose ``unscored`` parameters are unknown: each at its chart maximum; the
    thresholds are an aggregate >= 5 or any single parameter scoring 3 (RCP 2017)."""
    maxima = [max(NEWS2_SCORES[p]) for p in unscored]
    top = partial_score + sum(maxima)
    return top, top >= 5 or 3 in maxima


NEWS2_ASSUMABLE = frozenset({"consciousness", "air_or_oxygen"})  # what a caller may default

# Monitor-reading field -> (unit, lowest, highest) a reading may report. Generous on purpose:
# these bound what can physically be on a patient monitor, not what is normal, and they
# contain the reader's own display ranges (postprocess/vitals_text.PLAUSIBLE) and the NEWS2
# kernel's input limits (csrc/src/vitals.cpp), so the device never builds what the fleet refuses.
VITAL_RANGES: dict[str, tuple[str, float, float]] = {
    "hr": ("/min", 0.0, 350.0),  # 0: asystole shown as 0; > 300 only in infant SVT / artefact
    "spo2": ("%", 0.0, 100.0),  # a saturation, by definition
    "nibp_systolic": ("mmHg", 0.0, 350.0),  # NIBP cuffs measure up to ~300 mmHg
    "nibp_diastolic": ("mmHg", 0.0, 350.0),
    "rr": ("/min", 0.0, 100.0),  # neonates reach ~80/min
    "temperature": ("°C", 20.0, 46.0),  # the NEWS2 kernel's limits; survivable core range
}
# A float16 vector of unit norm keeps its norm within ~5e-4 (10-bit mantissa); well beyond
# that the device did not normalise it.
EMBEDDING_NORM_TOLERANCE = 1e-2
# Cosines of unit vectors may pass 1 by rounding: float32, or the int8 label matrix of
# kernels.cosine_topk_int8 (measured up to 1.4e-3 from the float32 cosine).
_COSINE_SLACK = 1e-2
_MAX_ELEMENTS = 1 << 20  # decoded arrays larger than this are refused before decoding


def check_result_body(kind: str, body: Any) -> None:
    """Raise :class:`ContractError` unless ``body`` (a wire ``result`` object) is within the
    ranges its ``kind`` declares."""
    if not isinstance(body, dict):
        raise ContractError(f"{kind}: the result body must be an object")
    check = _CHECKS.get(kind)
    if check is not None:
        check(body)


def news2_band(score: int, parameter_scores: dict[str, int]) -> str:
    """The chart's risk band of an aggregate (RCP 2017, chart 2)."""
    if score >= 7:
        return "high"
    if score >= 5:
        return "medium"
    return "low-medium" if 3 in parameter_scores.values() else "low"


def check_news2(body: Any, where: str = "news2") -> None:
    """A full NEWS2 body: every parameter scored on its chart, the aggregate their sum."""
    _object(body, where)
    score = _integer(body, "score", where, 0, NEWS2_MAX)
    scores = _news2_scores(
        _object(body.get("parameter_scores"), f"{where}.parameter_scores"), where
    )
    if set(scores) != set(NEWS2_PARAMETERS):
        raise ContractError(
            f"{where}: parameter_scores must give a score for each of {', '.join(NEWS2_PARAMETERS)}"
        )
    if score != sum(scores.values()):
        raise ContractError(f"{where}: score {score} is not the sum of its parameter scores")
    band = body.get("band")
    if band is not None and band != news2_band(score, scores):
        raise ContractError(f"{where}: band does not match score {score}")


def _news2_partial(body: Any, where: str) -> None:
    _object(body, where)
    scores = _news2_scores(
        _object(body.get("parameter_scores"), f"{where}.parameter_scores"), where
    )
    total = _integer(body, "partial_score", where, 0, NEWS2_MAX)
    if total != sum(scores.values()):
        raise ContractError(f"{where}: partial_score is not the sum of its scores")
    missing = _names(body.get("missing", []), f"{where}.missing", set(NEWS2_PARAMETERS))
    _names(body.get("assumed", []), f"{where}.assumed", NEWS2_ASSUMABLE)
    if body.get("complete", False) is not False:
        raise ContractError(f"{where}: a partial score is never complete")
    if not missing:
        raise ContractError(f"{where}: a partial score must name what is missing")
    if missing & set(scores):
        raise ContractError(f"{where}: a parameter cannot be both scored and missing")


def _news2_scores(scores: dict[str, Any], where: str) -> dict[str, int]:
    for name, value in scores.items():
        allowed = NEWS2_SCORES.get(name)
        if allowed is None:
            raise ContractError(f"{where}: parameter_scores has no NEWS2 parameter {name[:40]!r}")
        if type(value) is not int or value not in allowed:
            raise ContractError(
                f"{where}: parameter_scores[{name}] must be one of {sorted(allowed)} (0-3)"
            )
    return scores


def _monitor_reading(body: dict[str, Any]) -> None:
    where = "monitor-reading"
    for name, reading in _object(body.get("fields", {}), f"{where}.fields").items():
        if reading is None:
            continue
        at = f"{where}.fields.{name[:40]}"
        _object(reading, at)
        _number(reading, "confidence", at, 0.0, 1.0)
        if name in VITAL_RANGES:
            unit, lo, hi = VITAL_RANGES[name]
            _number(reading, "value", at, lo, hi)
            if reading.get("unit") != unit:
                raise ContractError(f"{at}: unit must be {unit}")
        else:
            _number(reading, "value", at)
    texts = body.get("texts", [])
    for i, text in enumerate(_array(texts, f"{where}.texts")):
        _object(text, f"{where}.texts[{i}]")
        _number(text, "confidence", f"{where}.texts[{i}]", 0.0, 1.0)
        _number(text, "box_score", f"{where}.texts[{i}]", 0.0, 1.0)
    if body.get("news2") is not None:
        check_news2(body["news2"], f"{where}.news2")
    if body.get("news2_partial") is not None:
        _news2_partial(body["news2_partial"], f"{where}.news2_partial")
    _names(body.get("news2_assumed", []), f"{where}.news2_assumed", NEWS2_ASSUMABLE)


def _seizure(body: dict[str, Any]) -> None:
    where = "seizure-probability"
    for key in ("probability", "threshold"):
        _number(body, key, where, 0.0, 1.0)
    if "evaluated_fraction" in body:
        _number(body, "evaluated_fraction", where, 0.0, 1.0)
    if "segment_start_s" in body or "segment_end_s" in body:
        start = _number(body, "segment_start_s", where, 0.0)
        _number(body, "segment_end_s", where, start)
    if "trace_step_s" in body and _number(body, "trace_step_s", where) <= 0:
        raise ContractError(f"{where}: trace_step_s must be positive")
    for i, value in enumerate(_array(body.get("trace", []), f"{where}.trace")):
        if value is not None:
            _finite(value, f"{where}.trace[{i}]", 0.0, 1.0)


def _sleep(body: dict[str, Any]) -> None:
    where = "sleep-stages"
    if _number(body, "epoch_seconds", where) <= 0:
        raise ContractError(f"{where}: epoch_seconds must be positive")
    n = _integer(body, "n_epochs", where, 0)
    _integer(body, "n_beats", where, 0)
    _integer(body, "invalid_rri", where, 0)
    classes = _array(body.get("classes"), f"{where}.classes")
    if not classes or not all(isinstance(c, str) and c for c in classes):
        raise ContractError(f"{where}: classes must be non-empty names")
    if len(set(classes)) != len(classes):
        raise ContractError(f"{where}: classes repeat")
    hypnogram = body.get("hypnogram")
    if not isinstance(hypnogram, str) or len(hypnogram) != n:
        raise ContractError(f"{where}: hypnogram must hold one letter per epoch")
    if not set(hypnogram) <= {c[0].upper() for c in classes}:
        raise ContractError(f"{where}: hypnogram letters must be the classes' initials")
    counts = _object(body.get("counts"), f"{where}.counts")
    for name in counts:
        if name not in classes:
            raise ContractError(f"{where}: counts has no class {name[:40]!r}")
        _integer(counts, name, f"{where}.counts", 0, n)
    if sum(counts.values()) != n:
        raise ContractError(f"{where}: counts must add up to n_epochs")
    values = _float16s(body.get("probabilities"), f"{where}.probabilities", [n, len(classes)])
    for v in values:
        if not (math.isfinite(v) and 0.0 <= v <= 1.0):
            raise ContractError(f"{where}: probabilities must be in [0, 1]")


def _tabular_classification(body: dict[str, Any]) -> None:
    where = "tabular-classification"
    _number(body, "probability", where, 0.0, 1.0)
    _number(body, "threshold", where, 0.0, 1.0)
    labels = _array(body.get("labels"), f"{where}.labels")
    for key in ("label", "positive_label"):
        if body.get(key) not in labels:
            raise ContractError(f"{where}: {key} must be one of the labels")
    _names(body.get("out_of_range", []), f"{where}.out_of_range")


def _tabular_regression(body: dict[str, Any]) -> None:
    where = "tabular-regression"
    _number(body, "value", where)
    _names(body.get("out_of_range", []), f"{where}.out_of_range")


def _text_embedding(body: dict[str, Any]) -> None:
    where = "text-embedding"
    embedding = _object(body.get("embedding"), f"{where}.embedding")
    shape = embedding.get("shape")
    if not (isinstance(shape, list) and len(shape) == 1):
        raise ContractError(f"{where}.embedding: shape must be [dimensions]")
    values = _float16s(embedding, f"{where}.embedding", shape)
    if not all(math.isfinite(v) for v in values):
        raise ContractError(f"{where}.embedding: values must be finite")
    norm = math.sqrt(math.fsum(v * v for v in values))
    if abs(norm - 1.0) > EMBEDDING_NORM_TOLERANCE:
        raise ContractError(f"{where}.embedding: L2 norm {norm:.4f} is not 1")
    _integer(body, "n_tokens", where, 0)
    for i, near in enumerate(_array(body.get("nearest", []), f"{where}.nearest")):
        at = f"{where}.nearest[{i}]"
        _object(near, at)
        _number(near, "score", at, -1.0 - _COSINE_SLACK, 1.0 + _COSINE_SLACK)
    if body.get("confidence") is not None:  # calibrated probability of the first suggestion
        _number(body, "confidence", where, 0.0, 1.0)
    if body.get("suggestion") is not None:  # a confident suggestion is nearest[0]
        at = f"{where}.suggestion"
        _number(
            _object(body["suggestion"], at), "score", at, -1.0 - _COSINE_SLACK, 1.0 + _COSINE_SLACK
        )


def _signal_classification(body: dict[str, Any]) -> None:
    where = "signal-classification"
    top, previous = _array(body.get("top"), f"{where}.top"), math.inf
    if not top:
        raise ContractError(f"{where}.top: must hold at least the best label")
    for i, pair in enumerate(top):
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ContractError(f"{where}.top[{i}]: must be [label, score]")
        score = _finite(pair[1], f"{where}.top[{i}]", 0.0, 1.0)
        if score > previous:
            raise ContractError(f"{where}.top: must be best first")
        previous = score
    if len({pair[0] for pair in top}) != len(top):
        raise ContractError(f"{where}.top: labels repeat")
    if _number(body, "score", where, 0.0, 1.0) != top[0][1]:
        raise ContractError(f"{where}: score must be the best label's")
    label, abstained = body.get("label"), body.get("abstained")
    if abstained is not None and not (isinstance(abstained, str) and abstained):
        raise ContractError(f"{where}: abstained must be a reason or null")
    if (label is None) == (abstained is None) or label not in (None, top[0][0]):
        raise ContractError(f"{where}: either the best-scored label or why it was withheld")
    if "window_start_s" in body or "window_end_s" in body:
        start = _number(body, "window_start_s", where, 0.0)
        if _number(body, "window_end_s", where, start) <= start:
            raise ContractError(f"{where}: a window must have a length")


def _image_classification(body: dict[str, Any]) -> None:
    where = "image-classification"
    top = _array(body.get("top"), f"{where}.top")
    if not top:
        raise ContractError(f"{where}.top: must hold at least the best label")
    scores: dict[str, float] = {}
    previous = math.inf
    for i, pair in enumerate(top):
        at = f"{where}.top[{i}]"
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ContractError(f"{at}: must be [label, score]")
        score = _finite(pair[1], at, 0.0, 1.0)
        if pair[0] in scores:
            raise ContractError(f"{at}: label repeats")
        if score > previous:
            raise ContractError(f"{where}.top: must be best first")
        scores[pair[0]], previous = score, score
    _number(body, "score", where, 0.0, 1.0)
    label, multi = body.get("label"), body.get("multi_label")
    if not isinstance(multi, bool):
        raise ContractError(f"{where}: multi_label must be true or false")
    if label is not None and not isinstance(label, str):
        raise ContractError(f"{where}: label must be a name or null")
    positive = _array(body.get("positive"), f"{where}.positive")
    if len(_names(positive, f"{where}.positive")) != len(positive):
        raise ContractError(f"{where}.positive: labels repeat")
    abstained = body.get("abstained")
    if abstained is not None and not (isinstance(abstained, str) and abstained):
        raise ContractError(f"{where}: abstained must be a reason or null")
    if abstained is not None and (label is not None or positive):
        raise ContractError(f"{where}: an abstention gives no label")
    if positive[:1] != ([] if label is None else [label]):
        raise ContractError(f"{where}: label must be the first positive label")
    if not multi:
        if len(positive) > 1:
            raise ContractError(f"{where}: a single-label result has at most one label")
        if abstained is None and label != top[0][0]:
            raise ContractError(f"{where}: a single-label result's label is its best score")


def _image_segmentation(body: dict[str, Any]) -> None:
    where = "image-segmentation"
    labels = _array(body.get("labels"), f"{where}.labels")
    if not 2 <= len(_names(labels, f"{where}.labels")) == len(labels) <= 255:
        raise ContractError(f"{where}.labels: must be 2..255 distinct names")
    size = _integer(body, "height", where, 1) * _integer(body, "width", where, 1)
    spacing = body.get("pixel_spacing_mm")
    if spacing is not None and not (isinstance(spacing, list) and len(spacing) == 2):
        raise ContractError(f"{where}.pixel_spacing_mm: must be [row, col] or null")
    mm2 = 0.0 if spacing is None else math.prod(_finite(v, where, 1e-300) for v in spacing)
    classes = _array(body.get("classes"), f"{where}.classes")
    if [c.get("label") if isinstance(c, dict) else None for c in classes] != labels:
        raise ContractError(f"{where}.classes: one object per label, in the labels' order")
    total = _integer(body, "unseen_pixels", where, 0, size)
    for c in classes:
        at = f"{where}.classes[{c['label'][:40]}]"
        n = _integer(c, "pixels", at, 0, size)
        total += n
        _integer(c, "regions", at, 0, n)
        if (c.get("mean_confidence") is None) != (n == 0):
            raise ContractError(f"{at}: mean_confidence is null exactly when pixels is 0")
        if n:
            _number(c, "mean_confidence", at, 0.0, 1.0)
        if (c.get("area_mm2") is None) != (spacing is None):
            raise ContractError(f"{at}: area_mm2 is null exactly when pixel_spacing_mm is")
        if spacing is not None and abs(_number(c, "area_mm2", at) - n * mm2) > 1e-5 * n * mm2:
            raise ContractError(f"{at}: area_mm2 is not pixels x the pixel's area")
    if total != size:
        raise ContractError(f"{where}: class pixels and unseen_pixels must add up to the image")
    _integer(body, "specks_removed", where, 0)
    if body.get("mask") is not None:
        _mask_runs(_object(body["mask"], f"{where}.mask"), len(labels), body)


def _mask_runs(mask: dict[str, Any], n: int, body: dict[str, Any]) -> None:
    """A run-length-encoded class mask: (class, length) varint pairs covering its grid."""
    where, shape = "image-segmentation.mask", mask.get("shape")
    if not (
        mask.get("encoding") == "rle-varint" and isinstance(mask.get("b64"), str)
        and isinstance(shape, list) and len(shape) == 2 and all(type(d) is int for d in shape)
        and 1 <= shape[0] <= body["height"] and 1 <= shape[1] <= body["width"]
    ):  # fmt: skip
        raise ContractError(f"{where}: must be rle-varint, b64, shape [h, w] within the image")
    try:
        raw = base64.b64decode(mask["b64"], validate=True)
    except (binascii.Error, ValueError):
        raise ContractError(f"{where}: b64 is not base64") from None
    values, value, bits = [], 0, 0
    for byte in raw:
        value, bits = value | (byte & 0x7F) << bits, bits + 7
        if not byte & 0x80:
            values.append(value)
            value, bits = 0, 0
    if bits or len(values) % 2 or sum(values[1::2]) != shape[0] * shape[1]:
        raise ContractError(f"{where}: runs must cover its {shape[0]} x {shape[1]} grid")
    if any(v >= n and v != 255 for v in values[0::2]):
        raise ContractError(f"{where}: values must be class indices (or 255: unseen)")


_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "news2": check_news2,
    "image-classification": _image_classification,
    "image-segmentation": _image_segmentation,
    "monitor-reading": _monitor_reading,
    "seizure-probability": _seizure,
    "signal-classification": _signal_classification,
    "sleep-stages": _sleep,
    "tabular-classification": _tabular_classification,
    "tabular-regression": _tabular_regression,
    "text-embedding": _text_embedding,
}


# -- helpers: each checks type and range, so no check can fail with anything but ContractError


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ContractError(f"{where}: must be an object")
    return value


def _array(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ContractError(f"{where}: must be an array")
    return value


def _names(value: Any, where: str, allowed: set[str] | frozenset[str] | None = None) -> set[str]:
    names = _array(value, where)
    if not all(isinstance(n, str) for n in names):
        raise ContractError(f"{where}: must be names")
    if allowed is not None and not set(names) <= allowed:
        raise ContractError(f"{where}: may only name {', '.join(sorted(allowed))}")
    return set(names)


def _finite(value: Any, where: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if type(value) not in (int, float):  # bool is an int subclass: refused here
        raise ContractError(f"{where}: must be a number")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range
        raise ContractError(f"{where}: is not a finite number") from None
    if not math.isfinite(number):
        raise ContractError(f"{where}: is not a finite number")
    if not lo <= number <= hi:
        raise ContractError(f"{where}: {number:g} is outside [{lo:g}, {hi:g}]")
    return number


def _number(
    body: dict[str, Any], key: str, where: str, lo: float = -math.inf, hi: float = math.inf
) -> float:
    if key not in body:
        raise ContractError(f"{where}: field {key!r} is missing")
    return _finite(body[key], f"{where}: {key}", lo, hi)


def _integer(body: dict[str, Any], key: str, where: str, lo: int, hi: int | None = None) -> int:
    value = body.get(key)
    if type(value) is not int:
        raise ContractError(f"{where}: {key} must be an integer")
    if value < lo or (hi is not None and value > hi):
        top = "" if hi is None else f"-{hi}"
        raise ContractError(f"{where}: {key} {value} is outside {lo}{top or ' or more'}")
    return value


def _float16s(packed: Any, where: str, shape: list[Any]) -> tuple[float, ...]:
    """The values of a ``{"dtype": "float16", "shape": [...], "b64": ...}`` array."""
    _object(packed, where)
    if packed.get("dtype") != "float16":
        raise ContractError(f"{where}: dtype must be float16")
    if packed.get("shape") != shape or not all(type(d) is int and d >= 0 for d in shape):
        raise ContractError(f"{where}: shape must be {shape}")
    count = math.prod(shape)
    b64 = packed.get("b64")
    if count > _MAX_ELEMENTS or not isinstance(b64, str):
        raise ContractError(f"{where}: must hold at most {_MAX_ELEMENTS} values in b64")
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ContractError(f"{where}: b64 is not base64") from None
    if len(raw) != 2 * count:
        raise ContractError(f"{where}: b64 holds {len(raw) // 2} values, shape says {count}")
    return struct.unpack(f"<{count}e", raw)
