"""A mixed stream of result payloads of every kind the SDK produces, built to the wire schema
(each decodes with ``wire.decode_result``), for the fleet's export tests."""

from __future__ import annotations

import base64
import random
from typing import Any

import numpy as np
from payloads import news2_body, result_payload, seizure_body

from edgemed.contracts import NEWS2_SCORES

KINDS = (
    "monitor-reading",
    "news2",
    "seizure-probability",
    "sleep-stages",
    "tabular-classification",
    "tabular-regression",
    "text-embedding",
)
MODELS = {
    "monitor-reading": "monitor-reader@1.2.0",
    "news2": "news2-rcp2017@1.0.0",
    "seizure-probability": "seizure-ieeg@1.0.0",
    "sleep-stages": "sleep-ecg@0.3.0",
    "tabular-classification": "breast-cancer-lr@1.0.0",
    "tabular-regression": "diabetes-ridge@1.0.0",
    "text-embedding": "clinical-text-minilm@1.0.0",
}
ICD = [("R07.9", "Chest pain, unspecified"), ("I10", "Essential (primary) hypertension"),
       ("E11.9", "Type 2 diabetes mellitus without complications"), ("J18.9", "Pneumonia, unspecified organism")]  # fmt: skip


def _f16(values: np.ndarray) -> dict[str, Any]:
    arr = np.ascontiguousarray(values, dtype="<f2")
    return {
        "dtype": "float16",
        "shape": list(arr.shape),
        "b64": base64.b64encode(arr.tobytes()).decode(),
    }


def _reading(value: float, unit: str) -> dict[str, Any]:
    box = [[0, 0], [10, 0], [10, 5], [0, 5]]
    return {
        "value": value,
        "unit": unit,
        "confidence": 0.97,
        "text": str(value),
        "box": box,
        "label": None,
    }


def _scores(rng: random.Random) -> dict[str, int]:
    """NEWS2 parameter scores, each one its parameter can take; mostly low."""
    return {n: rng.choice(sorted(v)) if rng.random() < 0.3 else 0 for n, v in NEWS2_SCORES.items()}


def monitor_body(rng: random.Random) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "hr": _reading(rng.randint(40, 160), "/min"),
        "spo2": _reading(rng.randint(85, 100), "%"),
        "nibp_systolic": _reading(rng.randint(80, 180), "mmHg"),
        "nibp_diastolic": _reading(rng.randint(40, 100), "mmHg"),
        "rr": _reading(rng.randint(8, 30), "/min"),
        "temperature": _reading(round(rng.uniform(35.0, 40.0), 1), "°C"),
    }
    for name in rng.sample(sorted(fields), rng.randint(0, 2)):
        fields[name] = None  # unread values
    complete = all(v is not None for v in fields.values()) and rng.random() < 0.7
    scores = _scores(rng)
    return {
        "kind": "monitor-reading",
        "fields": fields,
        "texts": [],
        "news2": news2_body(**scores) if complete else None,
        "news2_partial": None if complete else {
            "complete": False, "parameter_scores": {"pulse": scores["pulse"]},
            "partial_score": scores["pulse"], "missing": ["spo2"], "assumed": [],
        },
        "news2_assumed": [],
    }  # fmt: skip


def sleep_body(rng: random.Random) -> dict[str, Any]:
    classes = ["undefined", "wake", "rem", "nrem"]
    n = rng.randint(1, 40)
    probs = np.random.default_rng(rng.randint(0, 2**31)).dirichlet(np.ones(4), size=n)
    stages = [classes[int(i)] for i in probs.argmax(axis=1)]
    counts = {c: stages.count(c) for c in classes if stages.count(c)}
    return {
        "kind": "sleep-stages", "epoch_seconds": 30.0, "n_epochs": n, "classes": classes,
        "hypnogram": "".join(s[0].upper() for s in stages), "counts": counts,
        "probabilities": _f16(probs), "n_beats": 40 * n, "invalid_rri": 0,
        "metadata_given": [],
        "quality": {"units": "mV", "amplitude": 1.2, "flat_fraction": 0.0,
                    "clipped_fraction": 0.0, "warnings": []},
    }  # fmt: skip


def text_body(rng: random.Random) -> dict[str, Any]:
    vec = np.random.default_rng(rng.randint(0, 2**31)).normal(size=32)
    vec /= np.linalg.norm(vec)
    labelled = rng.random() < 0.85
    nearest = [
        {"code": code, "text": text, "score": round(0.9 - 0.1 * i, 3)}
        for i, (code, text) in enumerate(rng.sample(ICD, 3))
    ] if labelled else []  # fmt: skip
    body: dict[str, Any] = {
        "kind": "text-embedding", "embedding": _f16(vec), "nearest": nearest,
        "n_tokens": rng.randint(5, 200), "truncated": False,
    }  # fmt: skip
    if labelled:
        abstain = rng.random() < 0.3
        body |= {
            "suggestion": None if abstain else nearest[0],
            "confidence": round(rng.uniform(0.2, 0.99), 3),
            "assertion": rng.choice(["present", "negated", "uncertain"]),
            "abstained": abstain,
            "abstain_reason": "below the operating point" if abstain else None,
        }
    return body


def body_of(kind: str, rng: random.Random) -> dict[str, Any]:
    if kind == "monitor-reading":
        return monitor_body(rng)
    if kind == "news2":
        return news2_body(**_scores(rng))
    if kind == "seizure-probability":
        return seizure_body(round(rng.random(), 4), 0.5)
    if kind == "sleep-stages":
        return sleep_body(rng)
    if kind == "tabular-classification":
        p = round(rng.random(), 6)
        return {
            "kind": kind, "label": "malignant" if p >= 0.5 else "benign", "probability": p,
            "positive_label": "malignant", "threshold": 0.5, "labels": ["benign", "malignant"],
            "out_of_range": rng.choice([[], ["mean radius"]]),
        }  # fmt: skip
    if kind == "tabular-regression":
        return {"kind": kind, "name": "disease_progression", "value": round(rng.uniform(25, 346), 3),
                "unit": "score", "out_of_range": []}  # fmt: skip
    if kind == "text-embedding":
        return text_body(rng)
    raise ValueError(kind)


def stream(
    n: int, *, seed: int = 7, devices: int = 5, t0: float = 1_700_000_000.0
) -> list[tuple[str, bytes]]:
    """``n`` (device_id, payload) pairs cycling through every kind; some carry an encounter."""
    rng = random.Random(seed)
    seqs: dict[str, int] = {}
    out = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        device = f"bed-{i % devices}"
        seqs[device] = seqs.get(device, 0) + 1
        raw = result_payload(device, seqs[device], body_of(kind, rng), model=MODELS[kind],
                             created_at=t0 + i, encounter=f"enc-{device}" if i % 3 else None)  # fmt: skip
        out.append((device, raw))
    return out
