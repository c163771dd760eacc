"""Result payloads of kinds the SDK does not produce yet (NEWS2, seizure), built to the wire
schema (edgemed.result/1) so fleet tests can drive the alert rules through real ingest."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from edgemed.contracts import news2_band
from edgemed.wire import NEWS2_PARAMETERS, RESULT_SCHEMA


def news2_body(**scores: int) -> dict[str, Any]:
    params = {name: scores.get(name, 0) for name in NEWS2_PARAMETERS}
    score = sum(params.values())
    return {
        "kind": "news2",
        "score": score,
        "parameter_scores": params,
        "band": news2_band(score, params),
    }


def monitor_partial_body(
    missing: list[str],
    *,
    max_possible: int | None = None,
    escalation_possible: bool | None = None,
    **scores: int,
) -> dict[str, Any]:
    """A monitor reading whose NEWS2 is partial: ``scores`` for the parameters that were
    scored; ``max_possible``/``escalation_possible`` sent only when given (older devices
    sent neither)."""
    partial: dict[str, Any] = {
        "complete": False,
        "parameter_scores": scores,
        "partial_score": sum(scores.values()),
        "missing": missing,
        "assumed": [],
    }
    if max_possible is not None:
        partial["max_possible_score"] = max_possible
    if escalation_possible is not None:
        partial["escalation_possible"] = escalation_possible
    return {"kind": "monitor-reading", "news2": None, "news2_partial": partial}


def seizure_body(probability: float, threshold: float = 0.5) -> dict[str, Any]:
    """Every field SeizureProbability.body() sends (a 4 s segment, fully evaluated)."""
    return {
        "kind": "seizure-probability",
        "probability": probability,
        "threshold": threshold,
        "seizure": probability >= threshold,
        "segment_start_s": 0.5,
        "segment_end_s": 4.5,
        "trace_step_s": 0.5,
        "trace": [probability] * 8,
        "evaluated_fraction": 1.0,
    }


def result_payload(
    device_id: str,
    seq: int,
    body: dict[str, Any],
    *,
    low: int | None = None,
    model: str = "news2-rcp2017@1.0.0",
    created_at: float | None = None,
    encounter: str | None = None,
) -> bytes:
    model_id, _, version = model.partition("@")
    message = {
        "schema": RESULT_SCHEMA,
        "result_id": str(uuid.uuid4()),
        "device_id": device_id,
        "seq": seq,
        "boot_id": "boot-1",
        "lowest_unacked_seq": low or seq,
        "created_at": time.time() if created_at is None else created_at,
        "clock_synced": True,
        "model": {"id": model_id, "version": version, "sha256": "0" * 64, "backend": "cpu",
                  "device": "cpu", "precision": "fp32"},
        "input": {"sha256": "0" * 64, "kind": "vitals", "window": None},
        "timings_ms": {"preprocess": 0.0, "inference": 0.1, "postprocess": 0.0},
        "edgemed_version": "test",
        "encounter": encounter,
        "result": body,
    }  # fmt: skip
    return json.dumps(message).encode()
