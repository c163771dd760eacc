"""Property-based fuzz of fleet ingest: valid payloads mutated with boundary values.

Each example feeds one batch through ``Ingest._store_batch`` (what the ingest worker runs on
every batch: parse, schema + semantic checks, store, ack) into a real SQLite store: a mutated
result or status from one device, and next to it (same batch, sometimes the same message) a
valid result of another device. Properties: nothing escapes, what is stored satisfies the
schema and the ranges (a created_at outside the plausible window only when marked
clock_suspect), and the valid results keep being stored and acknowledged.

Derandomized: CI runs the same 2,500 examples every time (2,000 results, 500 statuses);
``EDGEMED_FUZZ_RESULTS`` and ``EDGEMED_FUZZ_STATUSES`` set other counts (``scripts/soak.sh
fuzz`` runs 25,000).
"""

from __future__ import annotations

import base64
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from payloads import news2_body, result_payload, seizure_body

from edgemed.config import BrokerConfig
from edgemed.contracts import check_result_body
from edgemed.fleet import Ingest, SQLiteStore
from edgemed.fleet.validation import EARLIEST_CREATED_AT, PayloadValidator, load_schema
from edgemed.wire import encode_status

RESULT_EXAMPLES = int(os.environ.get("EDGEMED_FUZZ_RESULTS", 2_000))
STATUS_EXAMPLES = int(os.environ.get("EDGEMED_FUZZ_STATUSES", 500))
SKEW = PayloadValidator().max_clock_skew_s
NOW = time.time()  # generation must not depend on when it runs (derandomized replay)
# Independent of the validator under test: fresh validators of the published schemas.
RESULT_SCHEMA = Draft202012Validator(load_schema("result-1"))
STATUS_SCHEMA = Draft202012Validator(load_schema("status-1"))
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _unit_embedding(dim: int) -> dict[str, Any]:
    v = np.random.default_rng(dim).standard_normal(dim)
    packed = (v / np.linalg.norm(v)).astype("<f2")
    return {"kind": "text-embedding", "n_tokens": 7, "truncated": False,
            "nearest": [{"code": "R06.0", "text": "dyspnoea", "score": 0.61}],
            "embedding": {"dtype": "float16", "shape": [dim],
                          "b64": base64.b64encode(packed.tobytes()).decode()}}  # fmt: skip


def _sleep() -> dict[str, Any]:
    probs = np.full((3, 4), 0.25, dtype="<f2")
    return {"kind": "sleep-stages", "epoch_seconds": 30.0, "n_epochs": 3,
            "classes": ["undefined", "wake", "rem", "nrem"], "hypnogram": "WNN",
            "counts": {"undefined": 0, "wake": 1, "rem": 0, "nrem": 2},
            "probabilities": {"dtype": "float16", "shape": [3, 4],
                              "b64": base64.b64encode(probs.tobytes()).decode()},
            "n_beats": 400, "invalid_rri": 0, "metadata_given": []}  # fmt: skip


def _box() -> list[list[int]]:
    return [[10, 10], [60, 10], [60, 30], [10, 30]]


def _monitor() -> dict[str, Any]:
    text = {"text": "98", "confidence": 0.97, "box": _box(), "box_score": 0.9}
    spo2 = {"value": 98, "unit": "%", "confidence": 0.97, "text": "98", "box": _box(),
            "label": "SpO2"}  # fmt: skip
    partial = {"complete": False, "parameter_scores": {"spo2": 0}, "partial_score": 0,
               "missing": ["respiration_rate", "consciousness"], "assumed": []}  # fmt: skip
    return {"kind": "monitor-reading", "fields": {"spo2": spo2, "hr": None}, "texts": [text],
            "news2": None, "news2_partial": partial, "news2_assumed": []}  # fmt: skip


BODIES: list[dict[str, Any]] = [
    news2_body(),
    news2_body(respiration_rate=3, spo2=3, air_or_oxygen=2, systolic_bp=3, pulse=3,
               consciousness=3, temperature=3),  # fmt: skip  (20: the top of the chart)
    seizure_body(0.93, 0.5),
    _monitor(),
    {**_monitor(), "news2": news2_body(pulse=2), "news2_partial": None},
    _unit_embedding(8),
    _sleep(),
    {"kind": "tabular-classification", "label": "benign", "probability": 0.0,
     "positive_label": "malignant", "threshold": 0.5, "labels": ["benign", "malignant"],
     "out_of_range": []},
    {"kind": "tabular-regression", "name": "progression", "value": -1.5, "unit": "",
     "out_of_range": ["bmi"]},
    {"kind": "some-future-kind", "score": 1},
]  # fmt: skip

TEMPLATES = [json.loads(result_payload("bed-fuzz", 1, body)) for body in BODIES]
# A monitor reading that names its recogniser: the optional model.components (wire.py).
TEMPLATES[3]["model"]["components"] = [
    {"role": "recognizer", "sha256": "c" * 64, "backend": "onnxruntime", "device": "cpu"}
]
BOUNDARY: list[Any] = [
    0, -1, 1, 2, 3, 4, 7, 20, 21, 100, 101, 350, 351, 2**31, 2**63 - 1, 2**63, -(2**63), 2**64,
    0.0, -0.0, 0.5, 1.0, 1.0000001, -1e-9, 5e-324, 1e18, -1e18, 1.7976931348623157e308,
    EARLIEST_CREATED_AT - 1, True, False, None, "", "x", "x" * 64, "x" * 65, "x" * 1025,
    "x" * 300_000, "é" * 100, "\u0000", [], [0] * 65, [None] * 2049, ["m@1"] * 65, {},
    {f"k{i}": i for i in range(300)}, {"kind": "news2"}, "NaN", "online", "offline",
]  # fmt: skip
# Raw JSON text no encoder writes: non-finite numbers (Python's json reads them), overflow,
# integers past the 4300-digit limit, deep nesting.
RAW_TOKENS = [
    "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "1" * 5000,
    "[" * 3000 + "]" * 3000, '{"a":' * 600 + "0" + "}" * 600, "[" * 200 + "]" * 200,
]  # fmt: skip
SENTINEL = "\u2063sentinel\u2063"
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=4,
)  # fmt: skip


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every location in a JSON value (the first 3 items of arrays)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value[:3]):
            yield from _paths(item, (*prefix, i))


def _clone(value: Any) -> Any:
    """A deep copy of JSON data (several times faster than copy.deepcopy)."""
    return json.loads(json.dumps(value)) if isinstance(value, dict | list) else value


def _set(root: Any, path: tuple[Any, ...], value: Any, *, delete: bool = False) -> Any:
    if not path:
        return value
    parent = root
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return root


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    """``base`` with 0-3 locations replaced by boundary values, deleted or added, or its text
    broken (non-finite numbers, overflow, deep nesting, bad bytes, truncation, newlines)."""
    data = _clone(base)
    raw_token = None
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 3]))):  # 0: the sound base itself
        paths = list(_paths(data))
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["boundary", "boundary", "json", "delete", "add", "raw"]))
        if action == "boundary":
            data = _set(data, path, _clone(draw(st.sampled_from(BOUNDARY))))
        elif action == "json":
            data = _set(data, path, draw(JSON_VALUES))
        elif action == "delete" and path:
            data = _set(data, path, None, delete=True)
        elif action == "add" and path and isinstance(_get(data, path[:-1]), dict):
            key = draw(st.sampled_from(["epoch", "keepalive_s", "x" * 40, "kind", "__proto__"]))
            _get(data, path[:-1])[key] = _clone(draw(st.sampled_from(BOUNDARY)))
        elif action == "raw" and path and raw_token is None:
            raw_token = draw(st.sampled_from(RAW_TOKENS))
            data = _set(data, path, SENTINEL)
    text = json.dumps(data, separators=(",", ":"))
    if raw_token is not None:
        text = text.replace(json.dumps(SENTINEL), raw_token)
    raw = text.encode()
    breakage = draw(st.sampled_from(["none"] * 9 + ["truncate", "bytes", "newline"]))
    if breakage != "none":
        at = draw(st.integers(0, len(raw)))
        raw = {"truncate": raw[:at], "bytes": raw[:at] + b"\xff\xfe" + raw[at:],
               "newline": raw[:at] + b"\n" + raw[at:]}[breakage]  # fmt: skip
    return raw


def _get(root: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        root = root[key]
    return root


@st.composite
def result_bases(draw: st.DrawFn) -> dict[str, Any]:
    # around both ends of the plausible window (an hour inside and outside: the test's run time
    # moves the server clock by far less)
    created = draw(st.sampled_from([NOW, NOW - 3600, NOW + SKEW - 3600, NOW + SKEW + 3600,
                                    EARLIEST_CREATED_AT, EARLIEST_CREATED_AT - 1, 0.0, 1e18,
                                    -1.0]))  # fmt: skip
    # large seqs mostly: fewer repeats (a repeat is a duplicate or a conflict, not stored)
    seq = draw(st.sampled_from([1, 2, 2**62, 2**63 - 1]) | st.integers(2**32, 2**63 - 1))
    message: dict[str, Any] = _clone(draw(st.sampled_from(TEMPLATES)))
    message.update(seq=seq, lowest_unacked_seq=seq, created_at=created, result_id=f"r-{seq}")
    return message  # not a fresh uuid4 or time: the same draws make the same bytes


def _status_base(draw: st.DrawFn) -> dict[str, Any]:
    birth = encode_status(
        "online", device_id="bed-fuzz", boot_id="b-1", connection=draw(st.integers(0, 2**63 - 1)),
        edgemed_version="1.0.0", models=["clinical-text-minilm@1.0.0"], outbox_depth=3,
    )  # fmt: skip
    death = encode_status("offline", device_id="bed-fuzz", boot_id="b-1", connection=1)
    message: dict[str, Any] = json.loads(draw(st.sampled_from([birth, death])))
    return message


class _Acks:
    def __init__(self) -> None:
        self.sent: dict[str, int] = {}

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        self.sent[topic] = json.loads(payload)["ack_seq"]


class _Fleet:
    """A real store behind a never-started Ingest; the valid device's next seq."""

    def __init__(self, path: Path) -> None:
        self.store = SQLiteStore(path)
        # Not what this test is about: an fsync per transaction would be most of its run time.
        self.store._db.execute("PRAGMA synchronous=OFF")
        self.ingest = Ingest(self.store, BrokerConfig())
        self.acks = _Acks()
        self.ingest._client = self.acks  # type: ignore[assignment]
        self.next_seq = 1
        self.fuzz_rows = 0  # mutants stored
        self._newest: tuple[Any, ...] | None = None

    def feed(self, batch: list[tuple[str, bytes, float]]) -> None:
        self.ingest._store_batch(batch)  # nothing may escape

    def valid_line(self) -> bytes:
        body = BODIES[self.next_seq % len(BODIES)]
        return result_payload("bed-ok", self.next_seq, body)

    def check_valid_stored(self) -> None:
        # An ack goes out only after the commit, for the highest contiguous seq: acked means
        # stored, with every earlier one.
        assert self.acks.sent["edgemed/v1/bed-ok/ack"] == self.next_seq
        self.next_seq += 1

    def check_new_fuzz_row(self, stored_before: int) -> None:
        """The mutant of this example, if it was stored (at most one a batch: the newest)."""
        if self.ingest.counts["stored"] - stored_before == 2:  # the valid result and the mutant
            (row,) = self.store.results(device_id="bed-fuzz", limit=1)
            _assert_sound(row)
            self.fuzz_rows += 1


def _assert_sound(row: dict[str, Any]) -> None:
    """A stored row satisfies the schema, its kind's ranges and the clock rule."""
    payload = row["payload"]
    errors = [e.message[:200] for e in RESULT_SCHEMA.iter_errors(payload)]
    assert errors == [], errors
    check_result_body(payload["result"]["kind"], payload["result"])
    created = payload["created_at"]
    assert math.isfinite(created) and row["created_at"] == created
    plausible = EARLIEST_CREATED_AT <= created <= row["received_at"] + SKEW
    assert row["clock_suspect"] == (not plausible)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[_Fleet]:
    f = _Fleet(tmp_path / "fuzz.db")
    yield f
    f.store.close()


def test_fuzzed_results_never_crash_never_store_bad_payloads(fleet: _Fleet) -> None:
    @settings(FUZZ, max_examples=RESULT_EXAMPLES)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        line = data.draw(result_bases().flatmap(mutated))
        valid = fleet.valid_line()
        if data.draw(st.integers(0, 2)) == 0:
            # One message of two lines on bed-ok's topic: the mutant (bed-fuzz's, refused at
            # least for its topic) must not keep the valid line next to it from being stored.
            lines = [line, valid] if data.draw(st.booleans()) else [valid, line]
            batch = [("edgemed/v1/bed-ok/results", b"\n".join(lines), time.monotonic())]
        else:
            batch = [
                ("edgemed/v1/bed-fuzz/results", line, time.monotonic()),
                ("edgemed/v1/bed-ok/results", valid, time.monotonic()),
            ]
        stored = fleet.ingest.counts["stored"]
        fleet.feed(batch)
        fleet.check_valid_stored()
        fleet.check_new_fuzz_row(stored)

    run()
    counts = fleet.ingest.counts
    assert fleet.next_seq - 1 == RESULT_EXAMPLES  # every valid result stored and acked
    assert len(fleet.store.results(device_id="bed-ok", limit=1)) == 1
    for row in fleet.store.results(device_id="bed-fuzz", limit=1000):  # a sweep of the newest
        _assert_sound(row)
    # The fuzz reached both sides: many mutants refused, and some stored.
    # (a mutant passing validation may repeat an earlier seq: a duplicate or a conflict)
    passed = counts["stored"] + counts["duplicate"] + counts["conflict"] - RESULT_EXAMPLES
    assert counts["dead_letter"] > RESULT_EXAMPLES // 4, counts
    assert passed > RESULT_EXAMPLES // 20 and fleet.fuzz_rows > RESULT_EXAMPLES // 50, counts
    assert any(r["clock_suspect"] for r in fleet.store.results(device_id="bed-fuzz", limit=1000))


def test_fuzzed_statuses_never_crash_never_store_bad_device_rows(fleet: _Fleet) -> None:
    @settings(FUZZ, max_examples=STATUS_EXAMPLES)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        status = data.draw(mutated(_status_base(data.draw)))
        fleet.feed(
            [
                ("edgemed/v1/bed-fuzz/status", status, time.monotonic()),
                ("edgemed/v1/bed-ok/results", fleet.valid_line(), time.monotonic()),
            ]
        )
        fleet.check_valid_stored()
        device = fleet.store.device("bed-fuzz")
        if device is not None:  # what a stored status left in the device table is sound
            assert device["state"] in ("online", "offline")
            assert device["outbox_depth"] is None or 0 <= device["outbox_depth"] < 2**63
            assert device["connection"] is None or 0 <= device["connection"] < 2**63
            assert len(device["models"]) <= 64 and all(len(m) <= 200 for m in device["models"])

    run()
    assert fleet.next_seq - 1 == STATUS_EXAMPLES
    counts = fleet.ingest.counts
    assert counts["status"] > STATUS_EXAMPLES // 10 and counts["dead_letter"] > STATUS_EXAMPLES // 4
    assert STATUS_SCHEMA.is_valid(json.loads(encode_status("offline", device_id="d",
                                                           boot_id="b", connection=1)))  # fmt: skip
