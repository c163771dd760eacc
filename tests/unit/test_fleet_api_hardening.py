"""The fleet API refuses bad input with a 4xx that names the rule, never a 500, never an echo.

Before (issue 25): a 20 MB login body was echoed back in full in the 422, and a huge alert id
in the acknowledge URL gave a 500 (SQLite cannot bind an integer over 64 bits). Then
schemathesis over the whole OpenAPI document, in this process (ASGI, no network): 0 server
errors.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from payloads import news2_body, result_payload, seizure_body

from edgemed.fleet import SQLiteStore
from edgemed.fleet.alerts import AlertRules
from edgemed.fleet.app import create_app
from edgemed.fleet.limits import MAX_BODY_BYTES
from edgemed.fleet.validation import PayloadValidator
from edgemed.wire import encode_status

TOKEN = "hardening-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _seed(store: SQLiteStore) -> None:
    """Devices, results and alerts, so that generated requests reach real rows."""
    validator, rules = PayloadValidator(), AlertRules()
    bodies = [news2_body(pulse=3, spo2=3, temperature=1), news2_body(), seizure_body(0.9)]
    msgs = [
        validator.result(result_payload("bed-1", seq, body), topic_device_id="bed-1")
        for seq, body in enumerate(bodies, 1)
    ]
    store.insert_results(msgs, lambda m: rules.evaluate(m, time.time()))
    birth = encode_status("online", device_id="bed-1", boot_id="b1", connection=1,
                          models=["news2-rcp2017@1.0.0"], outbox_depth=3)  # fmt: skip
    store.update_status("bed-1", validator.status(birth, topic_device_id="bed-1"))


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    store = SQLiteStore(tmp_path / "fleet.db")
    _seed(store)
    yield create_app(store, token=TOKEN)
    store.close()


def test_a_huge_login_body_is_refused_unread_and_never_echoed(app: FastAPI) -> None:
    client = TestClient(app)
    huge = json.dumps({"token": "x" * (20 * 1024 * 1024)})
    response = client.post("/api/login", content=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and len(response.content) < 200
    assert response.json() == {"detail": f"request body over {MAX_BODY_BYTES} bytes"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        yield b'{"token": "'
        for _ in range(40):
            yield b"y" * 4096
        yield b'"}'

    streamed = client.post(
        "/api/login", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413 and b"yyyy" not in streamed.content


def test_validation_errors_name_the_rule_without_the_input(app: FastAPI) -> None:
    client = TestClient(app)
    near_miss = "secret-" * 80  # over the 512 characters a token may have
    response = client.post("/api/login", json={"token": near_miss})
    assert response.status_code == 422 and "secret-" not in response.text
    (error,) = response.json()["detail"]
    assert error == {
        "loc": ["body", "token"],
        "msg": "String should have at most 512 characters",
        "type": "string_too_long",
    }
    comment = client.post("/api/alerts/1/ack", json={"comment": "c" * 600}, headers=AUTH)
    assert comment.status_code == 422 and "ccc" not in comment.text


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/api/alerts/99999999999999999999999999/ack", 422, "less than or equal to"),
        ("/api/alerts/0/ack", 422, "greater than or equal to 1"),
        ("/api/alerts/9223372036854775807/ack", 404, "no such alert"),
    ],
)
def test_alert_ids_are_bounded(app: FastAPI, path: str, status: int, says: str) -> None:
    response = TestClient(app).post(path, json={}, headers=AUTH)
    assert response.status_code == status and says in response.text


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("since=nan", 422),
        ("until=inf", 422),
        ("since=-1", 422),
        ("limit=100000", 422),
        ("device_id=" + "d" * 65, 422),
        ("device_id=%00bed", 422),
        ("model_id=" + "m" * 129, 422),
        ("kind=" + "k" * 65, 422),
        ("cursor=" + "c" * 513, 422),
        ("cursor=" + _cursor([1.0, "bed-1", 2**70]), 400),  # a seq SQLite cannot bind
        ("cursor=" + _cursor([1.0, ["bed-1"], 1]), 400),
        ("cursor=" + "W" * 500, 400),  # deeply nested JSON
        ("cursor=" + _cursor([1.0, "bed-1", 1]), 200),
    ],
)
def test_result_query_parameters_are_bounded(app: FastAPI, query: str, status: int) -> None:
    response = TestClient(app).get(f"/api/results?{query}", headers=AUTH)
    assert response.status_code == status, response.text
    if status == 422:
        assert response.json()["detail"][0]["loc"][0] == "query"


def test_device_ids_in_paths_follow_the_wire_schema(app: FastAPI) -> None:
    client = TestClient(app)
    assert client.get("/api/devices/bed-1", headers=AUTH).status_code == 200
    assert client.get("/api/devices/" + "d" * 65, headers=AUTH).status_code == 422
    assert client.get("/api/devices/-bed/events", headers=AUTH).status_code == 422
    assert client.get("/api/alerts?device_id=%20", headers=AUTH).status_code == 422


# --- schemathesis over the OpenAPI document ----------------------------------------------------

# per operation and generation mode (positive and negative); the wheel test runs fewer, as the
# installed package adds no code of its own to fuzz (scripts/test_wheel.sh), and
# `scripts/soak.sh fuzz` more
EXAMPLES = int(os.environ.get("EDGEMED_API_FUZZ_EXAMPLES", 20))
SKIPPED = {"GET /api/events"}  # an endless event stream; its auth is tested over HTTP


def test_schemathesis_finds_no_server_error(app: FastAPI) -> None:
    """Every operation of /api/openapi.json, with data that fits the schema and data that does
    not, authenticated (the reach of an unauthenticated request ends at 401): no 5xx. An
    exception in the app (what a 500 is, in process) propagates from ``case.call`` and fails
    the test too: run against the app before this change, it found the alert id that SQLite
    cannot bind (OverflowError)."""
    schemathesis = pytest.importorskip("schemathesis")
    from schemathesis.generation.modes import GenerationMode

    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    cases: list[tuple[str, int]] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if f"{operation.method.upper()} {operation.path}" in SKIPPED:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, cases)
    operations = {name for name, _ in cases}
    assert len(operations) >= 12, operations
    errors = [c for c in cases if c[1] >= 500]
    print(f"schemathesis: {len(cases)} cases over {len(operations)} operations, "
          f"{len(errors)} server errors")  # fmt: skip
    assert errors == []


def _fuzz(operation: Any, mode: Any, cases: list[tuple[str, int]]) -> None:
    """Run EXAMPLES generated cases of one operation, recording (operation, status) of each."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable

    name = f"{operation.method.upper()} {operation.path}"

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(headers=AUTH)
        cases.append((name, response.status_code))
        assert response.status_code < 500, (name, case, response.text[:500])

    try:
        run()
    except Unsatisfiable:  # negative mode, and nothing to break (an operation without input)
        assert mode == "negative", name
