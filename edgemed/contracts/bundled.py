"""Ranges of the results of the bundled clinical tasks (monitor reader, EEG, sleep, tabular, text)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .fields import (
    ContractError,
    as_array,
    as_object,
    finite,
    float16s,
    integer,
    names_in,
    number,
)
from .news2 import NEWS2_ASSUMABLE, check_news2, check_news2_partial

__all__ = ["EMBEDDING_NORM_TOLERANCE", "VITAL_RANGES"]


# Monitor-reading field -> (unit, lowest, highest) a reading may report. Generous on purpose:
# these bound what can physically be on a patient monitor, not what is normal, and they
# contain the reader's own display ranges (tasks/monitor_reader/vital_values.PLAUSIBLE) and the NEWS2
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


def monitor_reading(body: dict[str, Any]) -> None:
    where = "monitor-reading"
    for name, reading in as_object(body.get("fields", {}), f"{where}.fields").items():
        if reading is None:
            continue
        at = f"{where}.fields.{name[:40]}"
        as_object(reading, at)
        number(reading, "confidence", at, 0.0, 1.0)
        if name in VITAL_RANGES:
            unit, lo, hi = VITAL_RANGES[name]
            number(reading, "value", at, lo, hi)
            if reading.get("unit") != unit:
                raise ContractError(f"{at}: unit must be {unit}")
        else:
            number(reading, "value", at)
    texts = body.get("texts", [])
    for i, text in enumerate(as_array(texts, f"{where}.texts")):
        as_object(text, f"{where}.texts[{i}]")
        number(text, "confidence", f"{where}.texts[{i}]", 0.0, 1.0)
        number(text, "box_score", f"{where}.texts[{i}]", 0.0, 1.0)
    if body.get("news2") is not None:
        check_news2(body["news2"], f"{where}.news2")
    if body.get("news2_partial") is not None:
        check_news2_partial(body["news2_partial"], f"{where}.news2_partial")
    names_in(body.get("news2_assumed", []), f"{where}.news2_assumed", NEWS2_ASSUMABLE)


def seizure(body: dict[str, Any]) -> None:
    where = "seizure-probability"
    for key in ("probability", "threshold"):
        number(body, key, where, 0.0, 1.0)
    if "evaluated_fraction" in body:
        number(body, "evaluated_fraction", where, 0.0, 1.0)
    if "segment_start_s" in body or "segment_end_s" in body:
        start = number(body, "segment_start_s", where, 0.0)
        number(body, "segment_end_s", where, start)
    if "trace_step_s" in body and number(body, "trace_step_s", where) <= 0:
        raise ContractError(f"{where}: trace_step_s must be positive")
    for i, value in enumerate(as_array(body.get("trace", []), f"{where}.trace")):
        if value is not None:
            finite(value, f"{where}.trace[{i}]", 0.0, 1.0)


def sleep(body: dict[str, Any]) -> None:
    where = "sleep-stages"
    if number(body, "epoch_seconds", where) <= 0:
        raise ContractError(f"{where}: epoch_seconds must be positive")
    n = integer(body, "n_epochs", where, 0)
    integer(body, "n_beats", where, 0)
    integer(body, "invalid_rri", where, 0)
    classes = as_array(body.get("classes"), f"{where}.classes")
    if not classes or not all(isinstance(c, str) and c for c in classes):
        raise ContractError(f"{where}: classes must be non-empty names")
    if len(set(classes)) != len(classes):
        raise ContractError(f"{where}: classes repeat")
    hypnogram = body.get("hypnogram")
    if not isinstance(hypnogram, str) or len(hypnogram) != n:
        raise ContractError(f"{where}: hypnogram must hold one letter per epoch")
    if not set(hypnogram) <= {c[0].upper() for c in classes}:
        raise ContractError(f"{where}: hypnogram letters must be the classes' initials")
    counts = as_object(body.get("counts"), f"{where}.counts")
    for name in counts:
        if name not in classes:
            raise ContractError(f"{where}: counts has no class {name[:40]!r}")
        integer(counts, name, f"{where}.counts", 0, n)
    if sum(counts.values()) != n:
        raise ContractError(f"{where}: counts must add up to n_epochs")
    values = float16s(body.get("probabilities"), f"{where}.probabilities", [n, len(classes)])
    if not bool(np.all((values >= 0.0) & (values <= 1.0))):  # NaN compares false: refused
        raise ContractError(f"{where}: probabilities must be in [0, 1]")


def tabular_classification(body: dict[str, Any]) -> None:
    where = "tabular-classification"
    number(body, "probability", where, 0.0, 1.0)
    number(body, "threshold", where, 0.0, 1.0)
    labels = as_array(body.get("labels"), f"{where}.labels")
    for key in ("label", "positive_label"):
        if body.get(key) not in labels:
            raise ContractError(f"{where}: {key} must be one of the labels")
    names_in(body.get("out_of_range", []), f"{where}.out_of_range")


def tabular_regression(body: dict[str, Any]) -> None:
    where = "tabular-regression"
    number(body, "value", where)
    names_in(body.get("out_of_range", []), f"{where}.out_of_range")


def text_embedding(body: dict[str, Any]) -> None:
    where = "text-embedding"
    embedding = as_object(body.get("embedding"), f"{where}.embedding")
    shape = embedding.get("shape")
    if not (isinstance(shape, list) and len(shape) == 1):
        raise ContractError(f"{where}.embedding: shape must be [dimensions]")
    values = float16s(embedding, f"{where}.embedding", shape)
    # A NaN or infinity makes the sum of squares NaN or infinite (float16 values square to at
    # most 4.3e9, so a finite float64 sum never overflows). Runs on every result, on the device
    # and again at the fleet: NumPy takes 2 us, the float-by-float sum it replaces 15.
    squares = float(values @ values)
    if not math.isfinite(squares):
        raise ContractError(f"{where}.embedding: values must be finite")
    norm = math.sqrt(squares)
    if abs(norm - 1.0) > EMBEDDING_NORM_TOLERANCE:
        raise ContractError(f"{where}.embedding: L2 norm {norm:.4f} is not 1")
    integer(body, "n_tokens", where, 0)
    for i, near in enumerate(as_array(body.get("nearest", []), f"{where}.nearest")):
        score = near.get("score") if type(near) is dict else None
        if type(score) is float and -1.0 - _COSINE_SLACK <= score <= 1.0 + _COSINE_SLACK:
            continue  # the usual case, decided without building names (NaN falls through)
        at = f"{where}.nearest[{i}]"
        as_object(near, at)
        number(near, "score", at, -1.0 - _COSINE_SLACK, 1.0 + _COSINE_SLACK)
    if body.get("confidence") is not None:  # calibrated probability of the first suggestion
        number(body, "confidence", where, 0.0, 1.0)
    if body.get("suggestion") is not None:  # a confident suggestion is nearest[0]
        at = f"{where}.suggestion"
        number(
            as_object(body["suggestion"], at),
            "score",
            at,
            -1.0 - _COSINE_SLACK,
            1.0 + _COSINE_SLACK,
        )
