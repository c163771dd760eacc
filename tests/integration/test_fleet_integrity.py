"""Fleet integrity against a real mosquitto: no split between fleets, truthful health, dead links
noticed in seconds with default settings, dead sync threads that surface, and devices that
replay their backlog as soon as a fleet comes back."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from api_client import call
from conftest import Mosquitto, until
from paho.mqtt.enums import CallbackAPIVersion

import edgemed
from edgemed.config import BrokerConfig, OutboxConfig, SyncConfig
from edgemed.errors import FleetConflictError, SyncError
from edgemed.fleet import Ingest, SQLiteStore
from edgemed.fleet.broker import free_port
from edgemed.fleet.server import FleetServer
from edgemed.sync import Outbox, Publisher

pytestmark = pytest.mark.broker
TOKEN = "fleet-integrity-token-0123456789"
QUICK = SyncConfig(reconnect_min_s=0.1, reconnect_max_s=0.5)


def _health(server: FleetServer) -> tuple[int, dict[str, Any]]:
    return call(f"http://127.0.0.1:{server.api.port}", "/api/health")


def _outbox(tmp_path: Path, device: str) -> Outbox:
    return Outbox(OutboxConfig(path=tmp_path / f"{device}.outbox", device_id=device))


def _stored_seqs(store: SQLiteStore, device: str) -> list[int]:
    rows = store.results(device_id=device, limit=1000)
    return sorted(r["seq"] for r in rows)


def test_second_fleet_on_another_store_refuses_and_same_store_shares(
    tmp_path: Path, mosquitto: Mosquitto, encoder: edgemed.Pipeline
) -> None:
    broker = BrokerConfig(port=mosquitto.port)
    first_store = SQLiteStore(tmp_path / "first.db")
    other_store = SQLiteStore(tmp_path / "other.db")
    result = encoder("fleet split test")
    with FleetServer(first_store, broker, token=TOKEN, port=0):
        intruder = FleetServer(other_store, broker, token=TOKEN, port=0)
        with pytest.raises(FleetConflictError, match=first_store.store_id):
            intruder.start()
        assert not any(w.connected for w in intruder.workers), "a refused fleet must not ingest"
        # The command line refuses too, naming the other store, with the sync exit code.
        cli = subprocess.run(
            [sys.executable, "-m", "edgemed.cli", "fleet", "serve", "--broker",
             f"mqtt://127.0.0.1:{mosquitto.port}", "--db", str(tmp_path / "cli.db"),
             "--port", str(free_port()), "--token", TOKEN],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert cli.returncode != 0 and "another fleet" in cli.stderr, cli.stderr
        # A second process on the SAME store joins the group: every result stored once.
        with FleetServer(first_store, broker, token=TOKEN, port=0) as second:
            assert second.group == f"edgemed-fleet-{first_store.store_id}"
            outbox = _outbox(tmp_path, "bed-split")
            with Publisher(outbox, broker, QUICK) as pub:
                seqs = [pub.submit(result) for _ in range(60)]
                assert pub.wait_drained(30), outbox.stats()
    assert _stored_seqs(first_store, "bed-split") == seqs
    assert other_store.count_results() == 0
    assert first_store.dead_letters() == []


def test_session_takeover_is_logged_with_its_reason(
    mosquitto: Mosquitto, store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    broker = BrokerConfig(port=mosquitto.port, protocol="5")
    with Ingest(store, broker, client_id="fleet-takeover-test", sync=QUICK) as ingest:
        assert ingest.ready.wait(10)
        thief = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="fleet-takeover-test", protocol=mqtt.MQTTv5
        )
        thief.connect("127.0.0.1", mosquitto.port)
        thief.loop_start()
        try:
            assert until(lambda: "link lost" in caplog.text, 10)
        finally:
            thief.loop_stop()
            thief.disconnect()
    lost = [r for r in caplog.records if "link lost" in r.getMessage()]
    assert lost[0].levelno >= logging.WARNING
    # mosquitto 2.0 closes the socket without a DISCONNECT(0x8E): paho reports 128.
    assert "reason code" in lost[0].getMessage()


def test_health_503_within_5s_of_broker_death_and_recovers(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    store = SQLiteStore(tmp_path / "fleet.db")
    with FleetServer(store, BrokerConfig(port=mosquitto.port), token=TOKEN, port=0) as server:
        status, body = _health(server)
        assert status == 200 and body["status"] == "ok", body
        assert body["database"]["ok"] and body["broker"]["workers_connected"] == 1
        mosquitto.kill()
        died = time.monotonic()
        assert until(lambda: _health(server)[0] == 503, 5.0)
        status, body = _health(server)
        print(f"health 503 after {time.monotonic() - died:.2f} s: {body['problems']}")
        assert any("broker" in p for p in body["problems"])
        mosquitto.start()  # same port
        assert until(lambda: _health(server)[0] == 200, 40.0)


def test_half_open_link_detected_within_10s_with_defaults(
    tmp_path: Path, mosquitto: Mosquitto, encoder: edgemed.Pipeline
) -> None:
    """SIGSTOP keeps the broker's sockets open but silent: nothing but keepalive finds it."""
    broker = BrokerConfig(port=mosquitto.port)  # defaults, keepalive included
    outbox = _outbox(tmp_path, "bed-halfopen")
    with Publisher(outbox, broker) as pub:  # default SyncConfig
        assert until(lambda: pub.connected, 15)
        pub.submit(encoder("half-open link test"))
        time.sleep(0.5)
        mosquitto.signal(signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            assert until(lambda: not pub.connected, 10.0), "half-open link not noticed in 10 s"
            print(f"half-open link noticed after {time.monotonic() - frozen:.1f} s")
        finally:
            mosquitto.signal(signal.SIGCONT)
        assert until(lambda: pub.connected, 30)


def test_dead_sender_thread_surfaces_and_keeps_what_was_accepted(
    tmp_path: Path, mosquitto: Mosquitto, encoder: edgemed.Pipeline
) -> None:
    broker = BrokerConfig(port=mosquitto.port)
    outbox = _outbox(tmp_path, "bed-dead-sender")
    result = encoder("dead sender test")
    with Publisher(outbox, broker, QUICK) as pub:
        assert until(lambda: pub.connected, 10)
        accepted = [pub.submit(result) for _ in range(3)]

        def broken(*_args: object, **_kw: object) -> list[object]:
            raise sqlite3.DatabaseError("database disk image is malformed")  # injected fault

        outbox.pending = broken  # type: ignore[method-assign]
        killed = time.monotonic()
        with pytest.raises(SyncError):  # may take one more submit to wake the sender
            for _ in range(50):
                pub.submit(result)
                time.sleep(0.1)
        assert time.monotonic() - killed < 5.0
        assert not pub.connected
        assert pub.failure is not None and "malformed" in pub.failure
        with pytest.raises(SyncError, match="malformed"):
            pub.submit(result)
    # Nothing accepted is lost: every seq handed out is still in the outbox, unacknowledged.
    reopened = _outbox(tmp_path, "bed-dead-sender")
    stats = reopened.stats()
    assert stats.depth >= len(accepted) and stats.last_ack_seq == 0


def _run_outage(tmp_path: Path, broker_port: int, outage_s: float, devices: int) -> None:
    broker = BrokerConfig(port=broker_port)
    store = SQLiteStore(tmp_path / "fleet.db")
    payload = edgemed.load("clinical-text-minilm", threads=1)("fleet outage test")
    pubs = []
    try:
        with FleetServer(store, broker, token=TOKEN, port=0):
            for i in range(devices):
                pub = Publisher(_outbox(tmp_path, f"bed-{i:02d}"), broker, QUICK).start()
                pubs.append(pub)
            assert until(lambda: all(p.connected for p in pubs), 20)
            for pub in pubs:
                pub.submit(payload)
            assert all(p.wait_drained(20) for p in pubs)
        before = store.count_results()
        # The fleet is away: every device builds a backlog the broker drops (no subscriber).
        stop_at = time.monotonic() + outage_s
        while time.monotonic() < stop_at:
            for pub in pubs:
                pub.submit(payload)
            time.sleep(0.5)
        backlog = sum(p.outbox.depth for p in pubs)
        with FleetServer(store, broker, token=TOKEN, port=0):
            back = time.monotonic()
            assert until(lambda: store.count_results() > before, 5.0), "no result within 5 s"
            first = time.monotonic() - back
            assert all(p.wait_drained(60) for p in pubs)
            drained = time.monotonic() - back
        print(
            f"{outage_s:.0f} s outage, {devices} devices, backlog {backlog}: first stored "
            f"{first:.2f} s after the fleet's return, drained in {drained:.2f} s"
        )
        for i, pub in enumerate(pubs):
            assert _stored_seqs(store, f"bed-{i:02d}") == list(
                range(1, pub.outbox.stats().next_seq)
            )
    finally:
        for pub in pubs:
            pub.stop()


def test_fleet_outage_backlog_replayed_at_once(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """CI-sized: 20 devices, 15 s away (resend timers then wait ~20 s more). The 2-minute
    version: EDGEMED_OUTAGE_S=120 pytest -m slow -k outage."""
    _run_outage(tmp_path, mosquitto.port, 15.0, 20)


@pytest.mark.slow
def test_fleet_outage_backlog_replayed_at_once_long(tmp_path: Path, mosquitto: Mosquitto) -> None:
    _run_outage(tmp_path, mosquitto.port, float(os.environ.get("EDGEMED_OUTAGE_S", "120")), 20)


_DEVICE = """
import sys, time
from pathlib import Path
from edgemed.config import BrokerConfig, OutboxConfig, SyncConfig
from edgemed.sync import Outbox, Publisher
outbox = Outbox(OutboxConfig(path=Path(sys.argv[2]), device_id="bed-silent"))
pub = Publisher(outbox, BrokerConfig(port=int(sys.argv[1])), SyncConfig(heartbeat_s=4.0)).start()
while not pub.connected:
    time.sleep(0.05)
print("READY", flush=True)
time.sleep(600)
"""


def test_device_whose_will_is_lost_is_not_online_within_2x_heartbeat(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Broker killed (no persistence), then the device killed: no will ever reaches the fleet.
    The device's status must still stop saying "online" within 2 x its announced heartbeat."""
    store = SQLiteStore(tmp_path / "fleet.db")
    with FleetServer(store, BrokerConfig(port=mosquitto.port), token=TOKEN, port=0):
        device = subprocess.Popen(
            [sys.executable, "-c", _DEVICE, str(mosquitto.port), str(tmp_path / "dev.outbox")],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert device.stdout is not None and device.stdout.readline().strip() == "READY"
            assert until(lambda: (store.device("bed-silent") or {}).get("state") == "online", 10)
            mosquitto.kill()
            device.kill()
            silent_from = time.monotonic()
            mosquitto.start()  # no persistence: the retained birth and the will are gone
        finally:
            device.kill()
            device.wait()
        assert until(lambda: store.device("bed-silent")["state"] != "online", 8.0)  # 2 x 4 s
        row = store.device("bed-silent")
        print(f"state {row['state']} after {time.monotonic() - silent_from:.1f} s of silence")
        assert row["state"] == "unknown" and row["heartbeat_s"] == 4.0
        assert row["state_since"] == pytest.approx(row["last_seen"])


def test_demo_with_broker_of_an_existing_fleet_stores_there_once(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    from edgemed.cli.demo import DEMO_NOTES, run_demo

    store = SQLiteStore(tmp_path / "existing.db")
    lines: list[str] = []
    with FleetServer(store, BrokerConfig(port=mosquitto.port), token=TOKEN, port=0):
        code = run_demo(f"mqtt://127.0.0.1:{mosquitto.port}", tmp_path / "demo", lines.append)
    text = "\n".join(lines)
    assert code == 0, text
    assert store.store_id in text and "demo OK" in text
    assert _stored_seqs(store, "demo-bed-01") == list(range(1, len(DEMO_NOTES) + 1))
    assert store.dead_letters() == []


def test_two_fleets_on_different_stores_starting_at_once_one_refuses(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Neither sees the other online when it looks: the claims ("starting") decide, before
    either subscribes. Exactly one ingests; the other raises FleetConflictError."""
    import threading

    broker = BrokerConfig(port=mosquitto.port)
    servers = [
        FleetServer(SQLiteStore(tmp_path / f"store-{i}.db"), broker, token=TOKEN, port=0)
        for i in range(2)
    ]
    outcomes: dict[int, BaseException | None] = {}

    def start(i: int) -> None:
        try:
            servers[i].start()
            outcomes[i] = None
        except BaseException as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=start, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        refused = [i for i, exc in outcomes.items() if isinstance(exc, FleetConflictError)]
        started = [i for i, exc in outcomes.items() if exc is None]
        assert len(refused) == 1 and len(started) == 1, outcomes
        assert not any(w.connected for w in servers[refused[0]].workers)
        winner = servers[started[0]]
        assert winner.health()[0], winner.health()[1]
    finally:
        for i in started:
            servers[i].stop()


def test_share_probe_on_a_broker_without_share_support_ignores_other_messages() -> None:
    """amqtt does not know $share and was seen delivering unrelated retained messages to such a
    subscription: the probe must count only its own message (else ingest subscribed to a
    $share filter amqtt never serves, and the demo stored nothing)."""
    from edgemed.fleet.broker import EmbeddedBroker
    from edgemed.mqtt_connection import probe_shared_subscriptions

    with EmbeddedBroker() as embedded:
        other = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="retainer")
        other.connect("127.0.0.1", embedded.port)
        other.loop_start()
        other.publish("edgemed/fleet/v1/s/p/status", b"{}", qos=1, retain=True).wait_for_publish(5)
        other.loop_stop()
        other.disconnect()
        config = BrokerConfig(port=embedded.port, protocol="3.1.1")
        assert probe_shared_subscriptions(config, "probe-amqtt", "g") is False
