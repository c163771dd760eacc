"""The fleet manager end to end: real mosquitto, ingest, alert rules, REST API and live events.

Payloads go through the broker exactly as devices send them; the API is read over HTTP.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import paho.mqtt.client as mqtt
import pytest
from api_client import Session, call
from conftest import Mosquitto, until
from paho.mqtt.enums import CallbackAPIVersion
from payloads import news2_body, result_payload, seizure_body

from edgemed.config import BrokerConfig
from edgemed.errors import SyncError
from edgemed.fleet import SQLiteStore
from edgemed.fleet.alerts import AlertRules
from edgemed.fleet.app import create_app
from edgemed.fleet.server import FleetServer
from edgemed.fleet.store import SCHEMA_VERSION
from edgemed.wire import encode_status

pytestmark = pytest.mark.broker
TOKEN = "fleet-api-test-token-0123456789"


class Api:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def call(self, path: str, *, token: str | None = TOKEN, body: object = None) -> tuple[int, Any]:
        return call(self.base, path, token=token, body=body)


@pytest.fixture
def fleet(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[tuple[FleetServer, Api, mqtt.Client]]:
    store = SQLiteStore(tmp_path / "fleet.db")
    rules = AlertRules(backlog_threshold=50, offline_after_s=0.5)
    server = FleetServer(store, BrokerConfig(port=mosquitto.port), token=TOKEN, port=0, rules=rules)
    with server:
        assert server.workers[0].ready.wait(10)
        device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-devices")
        device.connect("127.0.0.1", mosquitto.port)
        device.loop_start()
        yield server, Api(server.api.port), device
        device.loop_stop()
        device.disconnect()
    store.close()


def _publish(client: mqtt.Client, topic: str, payload: bytes, *, retain: bool = False) -> None:
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)


def _stored(server: FleetServer, n: int) -> bool:
    return until(lambda: server.store.count_results() >= n, 10)


def test_alerts_from_results_listed_acknowledged_and_filtered(
    fleet: tuple[FleetServer, Api, mqtt.Client],
) -> None:
    server, api, device = fleet
    bodies = [
        news2_body(pulse=1),
        news2_body(spo2=3),
        news2_body(respiration_rate=3, spo2=2, air_or_oxygen=2),
        seizure_body(0.9, 0.7),
    ]
    for seq, body in enumerate(bodies, 1):
        _publish(device, "edgemed/v1/icu-4/results", result_payload("icu-4", seq, body))
    assert _stored(server, 4)
    status, alerts = api.call("/api/alerts?open=true")
    assert status == 200
    # NEWS2 urgent then emergency: one episode (escalated), listed first (most severe).
    assert [(a["rule"], a["severity"], a["seq"], a["episode_count"]) for a in alerts] == [
        ("news2-emergency", "emergency", 2, 2),
        ("seizure", "urgent", 4, 1),
    ]
    # A named clinician acknowledges from a dashboard session: the store records who.
    server.store.add_user("charge.nurse", "clinician", "a long clinician password")
    nurse = Session(api.base)
    assert nurse.login("charge.nurse", "a long clinician password")[0] == 200
    status, acked = nurse.call(
        f"/api/alerts/{alerts[0]['id']}/ack", body={"by": "someone else", "comment": "on it"}
    )
    assert status == 200 and acked["acked_by"] == "charge.nurse" and acked["acked_at"]
    assert acked["ack_comment"] == "on it" and len(acked["acks"]) == 1
    assert [a["rule"] for a in api.call("/api/alerts?open=true")[1]] == ["seizure"]
    assert api.call("/api/alerts/99999/ack", body={})[0] == 404
    assert api.call("/api/alerts?rule=seizure")[1][0]["seq"] == 4

    status, page = api.call("/api/results?device_id=icu-4&kind=news2&limit=2")
    assert status == 200 and [r["seq"] for r in page["items"]] == [3, 2]
    status, rest = api.call(
        f"/api/results?device_id=icu-4&kind=news2&limit=2&cursor={page['next_cursor']}"
    )
    assert [r["seq"] for r in rest["items"]] == [1] and rest["next_cursor"] is None
    assert api.call("/api/results?cursor=not-a-cursor")[0] == 400
    assert api.call("/api/results?limit=0")[0] == 422
    status, detail = api.call("/api/devices/icu-4")
    assert status == 200 and detail["acked_seq"] == 4 and len(detail["recent_results"]) == 4
    assert len(detail["alerts"]) == 2
    assert api.call("/api/devices/nobody")[0] == 404


def test_a_seizure_of_fifteen_windows_is_one_alert_episode(
    fleet: tuple[FleetServer, Api, mqtt.Client],
) -> None:
    """Measured before episodes: one seizure streamed as 15 windows raised 15 urgent alerts."""
    server, api, device = fleet
    for seq in range(1, 16):
        body = seizure_body(0.7 + 0.01 * seq, 0.5)
        payload = result_payload("eeg-3", seq, body, model="seizure-ieeg@1.0.0")
        _publish(device, "edgemed/v1/eeg-3/results", payload)
    assert _stored(server, 15)
    status, alerts = api.call("/api/alerts?device_id=eeg-3")
    assert status == 200 and len(alerts) == 1
    (episode,) = alerts
    assert (episode["rule"], episode["severity"], episode["episode_count"]) == (
        "seizure",
        "urgent",
        15,
    )
    assert episode["peak"] == pytest.approx(0.85) and episode["last_seq"] == 15
    _publish(device, "edgemed/v1/eeg-3/results", result_payload("eeg-3", 16, seizure_body(0.1)))
    assert until(lambda: api.call("/api/alerts?device_id=eeg-3")[1][0]["closed_at"], 10)
    status, acked = api.call(
        f"/api/alerts/{episode['id']}/ack", body={"by": "neuro on call", "comment": "reviewed EEG"}
    )
    assert status == 200 and acked["acks"][0]["comment"] == "reviewed EEG"
    # The shared service token cannot prove a person: the name is recorded as claimed.
    assert acked["acked_by"] == "service-token:neuro on call"
    assert api.call("/api/alerts?open=true&device_id=eeg-3")[1] == []


def test_device_registry_offline_alert_and_model_inventory(
    fleet: tuple[FleetServer, Api, mqtt.Client],
) -> None:
    _server, api, device = fleet
    birth = encode_status("online", device_id="ward-7", boot_id="b1", connection=1,
                          edgemed_version="0.1.0", models=["clinical-text-minilm@1.0.0"], outbox_depth=80)  # fmt: skip
    _publish(device, "edgemed/v1/ward-7/status", birth, retain=True)
    assert until(lambda: (api.call("/api/devices")[1] or [{}])[0].get("state") == "online", 10)
    assert api.call("/api/models")[1] == [
        {
            "model_id": "clinical-text-minilm",
            "version": "1.0.0",
            "devices": 1,
            "device_ids": ["ward-7"],
        }
    ]
    assert [a["rule"] for a in api.call("/api/alerts")[1]] == ["outbox-backlog"]  # 80 >= 50
    death = encode_status("offline", device_id="ward-7", boot_id="b1", connection=1)
    _publish(device, "edgemed/v1/ward-7/status", death, retain=True)
    # offline_after_s=0.5; the sweeper runs every 0.125 s
    assert until(lambda: any(a["rule"] == "device-offline" for a in api.call("/api/alerts")[1]), 10)
    rebirth = encode_status("online", device_id="ward-7", boot_id="b1", connection=2)
    _publish(device, "edgemed/v1/ward-7/status", rebirth, retain=True)
    assert until(
        lambda: (
            [a["resolved_at"] is not None for a in api.call("/api/alerts?rule=device-offline")[1]]
            == [True]
        ),
        10,
    )  # back online: resolved, still listed until someone acknowledges it


def test_hostile_payloads_are_dead_lettered_and_ingest_keeps_running(
    fleet: tuple[FleetServer, Api, mqtt.Client],
) -> None:
    server, api, device = fleet
    injection = "x'); DROP TABLE results; --"
    hostile = [
        ("edgemed/v1/bed-1/results", b"\x00\xff garbage"),
        ("edgemed/v1/bed-1/results", result_payload("bed-1", 1, news2_body())[:60]),  # truncated
        (
            "edgemed/v1/bed-1/results",
            b'{"schema": "edgemed.result/1", "pad": "' + b"x" * 300_000 + b'"}',
        ),
        (
            "edgemed/v1/bed-1/results",
            result_payload("bed-1", 1, news2_body()).replace(b"result/1", b"result/2"),
        ),
        ("edgemed/v1/bed-1/results", result_payload("bed-2", 1, news2_body())),  # posing as bed-2
        ("edgemed/v1/bed-1/results", result_payload("bed-1", 1, {"kind": "news2", "score": 3})),
        (
            "edgemed/v1/bed-1/results",
            result_payload("bed-1", 1, news2_body(), model=f"{injection}@1"),
        ),
    ]
    for name, payload in hostile:
        _publish(device, name, payload)
    assert until(lambda: len(server.store.dead_letters()) >= 6, 10)
    _publish(device, "edgemed/v1/bed-1/results", result_payload("bed-1", 2, news2_body(pulse=3)))
    assert _stored(server, 2)
    letters = api.call("/api/dead-letters")[1]
    reasons = [d["reason"] for d in letters["items"]]
    assert len(reasons) == 6, reasons
    assert letters["refused"] == [] and letters["next_cursor"] is None
    # The 300 kB one: its size and sha256, a 256-byte preview; the store kept 1 KiB of it.
    (big,) = [d for d in letters["items"] if "exceeds" in d["reason"]]
    assert big["size"] > 300_000 and big["truncated"] and len(big["preview"]) == 256
    assert big["device_id"] == "bed-1" and len(big["sha256"]) == 64
    first = api.call("/api/dead-letters?limit=4")[1]
    rest = api.call(f"/api/dead-letters?limit=4&cursor={first['next_cursor']}")[1]
    ids = [d["id"] for d in first["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 6
    assert api.call("/api/dead-letters?device_id=bed-2")[1]["items"] == []
    by_reason = api.call(f"/api/dead-letters?reason={quote(big['reason_class'])}")[1]["items"]
    assert [d["id"] for d in by_reason] == [big["id"]]
    assert api.call("/api/dead-letters?cursor=bm90LWEtY3Vyc29y")[0] == 400
    assert any("exceeds" in r for r in reasons) and any(
        "unsupported schema version" in r for r in reasons
    )
    assert any("does not match its topic" in r for r in reasons)
    rows = api.call("/api/results?limit=10")[1]["items"]
    # The injection string is stored as data under bed-1 only; nothing under bed-2.
    assert {r["device_id"] for r in rows} == {"bed-1"}
    assert injection in [r["model_id"] for r in rows]
    assert api.call("/api/devices/bed-2")[0] == 404


def test_auth_openapi_dashboard_and_no_query_strings_in_logs(
    fleet: tuple[FleetServer, Api, mqtt.Client], caplog: pytest.LogCaptureFixture
) -> None:
    _server, api, _device = fleet
    caplog.set_level(logging.INFO, logger="edgemed.fleet.app")
    for route in (
        "/api/devices",
        "/api/results",
        "/api/alerts",
        "/api/models",
        "/api/dead-letters",
        "/api/events",
    ):
        assert api.call(route, token=None)[0] == 401, route
        assert api.call(route, token="wrong-token-wrong-token")[0] == 401, route
    assert api.call("/api/alerts/1/ack", token=None, body={})[0] == 401
    status, health = api.call("/api/health", token=None)
    assert status == 200 and health["status"] == "ok" and health["problems"] == []
    assert health["schema_version"] == SCHEMA_VERSION and health["ingest"]["workers"] == 1
    status, spec = api.call("/api/openapi.json", token=None)
    paths = set(spec["paths"])
    assert {"/api/devices", "/api/devices/{device_id}", "/api/results", "/api/alerts",
            "/api/alerts/{alert_id}/ack", "/api/models", "/api/health", "/api/events"} <= paths  # fmt: skip
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    with urllib.request.urlopen(api.base + "/", timeout=5) as page:
        html = page.read().decode()
    assert "/static/app.js" in html and "http" not in html.replace("http-equiv", "")  # no CDN
    api.call("/api/results?device_id=secret-query-value")
    assert "secret-query-value" not in caplog.text and "GET /api/results 200" in caplog.text
    assert TOKEN not in caplog.text


def test_login_cookie_and_live_events(fleet: tuple[FleetServer, Api, mqtt.Client]) -> None:
    _server, api, device = fleet
    login = urllib.request.Request(
        api.base + "/api/login", data=json.dumps({"token": TOKEN}).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(login, timeout=5) as response:
        cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    events: list[tuple[str, dict[str, Any]]] = []
    opened = threading.Event()

    def listen() -> None:
        request = urllib.request.Request(
            api.base + "/api/events", headers={"Cookie": cookie.split(";")[0]}
        )
        with urllib.request.urlopen(request, timeout=20) as stream:
            name = ""
            for line in stream:
                text = line.decode().strip()
                if text.startswith("event: "):
                    name = text[7:]
                elif text.startswith("data: "):
                    events.append((name, json.loads(text[6:])))
                    opened.set()
                    if name == "alert":
                        return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert opened.wait(10)
    _publish(
        device,
        "edgemed/v1/icu-9/results",
        result_payload("icu-9", 1, news2_body(pulse=3, spo2=3, temperature=1)),
    )
    thread.join(15)
    kinds = [name for name, _ in events]
    assert kinds[0] == "hello" and "result" in kinds and kinds[-1] == "alert"
    result = next(body for name, body in events if name == "result")
    assert (result["device_id"], result["seq"], result["value"]) == ("icu-9", 1, "NEWS2 7")
    assert events[-1][1]["rule"] == "news2-emergency"


def test_a_short_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SyncError, match="16 characters"):
        create_app(SQLiteStore(tmp_path / "f.db"), token="short")
