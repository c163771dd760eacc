"""Outbox -> real mosquitto -> fleet ingest -> ack -> outbox row deleted (and not before)."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import until
from paho.mqtt.enums import CallbackAPIVersion

import edgemed
from edgemed.config import BrokerConfig, OutboxConfig, SyncConfig
from edgemed.fleet import Ingest, SQLiteStore
from edgemed.fleet.broker import free_port
from edgemed.sync import Outbox, Publisher

pytestmark = pytest.mark.broker
FAST = SyncConfig(resend_initial_s=0.3, resend_max_s=1.0, reconnect_min_s=0.1, reconnect_max_s=0.5)


def _outbox(tmp_path: Path, device: str = "bed-1") -> Outbox:
    return Outbox(OutboxConfig(path=tmp_path / f"{device}.db", device_id=device))


def test_row_deleted_only_after_fleet_ack(
    tmp_path: Path, mosquitto: object, store: SQLiteStore, encoder: edgemed.Pipeline
) -> None:
    broker = BrokerConfig(port=mosquitto.port)  # type: ignore[attr-defined]
    outbox = _outbox(tmp_path)
    notes = ["chest pain", "fever and cough", "fall at home", "dysuria", "confusion"]
    with Publisher(outbox, broker, FAST) as pub:
        assert until(lambda: pub.connected, 10)
        seqs = [pub.submit(encoder(n)) for n in notes]
        assert seqs == [1, 2, 3, 4, 5]
        time.sleep(1.5)  # published (and resent) to the broker, but no fleet is listening
        assert outbox.stats().depth == 5, "rows must stay until the fleet acknowledges them"
        with Ingest(store, broker, sync=FAST) as ingest:
            assert ingest.ready.wait(10)
            assert pub.wait_drained(20)
        assert outbox.stats().depth == 0 and outbox.stats().last_ack_seq == 5
    rows = sorted(store.results(), key=lambda r: r["seq"])
    assert [r["seq"] for r in rows] == seqs
    assert all(r["device_id"] == "bed-1" for r in rows)
    assert store.devices()[0]["acked_seq"] == 5
    assert store.alerts(rule="seq-conflict") == []


def test_garbage_payloads_dead_lettered_without_stopping_ingest(
    tmp_path: Path, mosquitto: object, store: SQLiteStore, encoder: edgemed.Pipeline
) -> None:
    broker = BrokerConfig(port=mosquitto.port)  # type: ignore[attr-defined]
    with Ingest(store, broker, sync=FAST) as ingest:
        assert ingest.ready.wait(10)
        raw = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="attacker")
        raw.connect("127.0.0.1", broker.port)
        raw.loop_start()
        # Publish only once connected, and check each was taken (under load, a message
        # published before the CONNACK could still be queued when the wait below ends).
        assert until(raw.is_connected, 10)
        bad = [
            ("edgemed/v1/bed-9/results", b"\xff\x00 definitely not json"),
            ("edgemed/v1/bed-9/results", b'{"schema": "edgemed.result/9"}'),
            ("edgemed/v1/bed-9/results", b'{"schema": "edgemed.result/1", "seq": "one"}'),
            ("edgemed/v1/bed-9/status", b"[]"),
        ]
        for name, payload in bad:
            sent = raw.publish(name, payload, qos=1)
            sent.wait_for_publish(10)
            assert sent.is_published()
        # A payload for another device, published on bed-9's topic, is spoofing: rejected too.
        spoof = edgemed.wire.encode_result(
            encoder("x ray"),
            device_id="bed-8",
            seq=1,
            boot_id="b",
            lowest_unacked_seq=1,
            clock_synced=False,
        )
        raw.publish("edgemed/v1/bed-9/results", spoof, qos=1).wait_for_publish(5)
        assert until(lambda: len(store.dead_letters()) == 5, 10), store.dead_letters()
        raw.loop_stop()
        raw.disconnect()

        with Publisher(_outbox(tmp_path, "bed-9"), broker, FAST) as pub:  # ingest still works
            pub.submit(encoder("still alive"))
            assert pub.wait_drained(10)
    assert store.count_results() == 1
    assert ingest.counts["dead_letter"] == 5 and ingest.counts["stored"] == 1


def test_bad_line_in_a_batched_message_is_dead_lettered_alone(
    mosquitto: object, store: SQLiteStore, encoder: edgemed.Pipeline
) -> None:
    """A results message carries several results, one per line: each is validated, stored and
    acknowledged on its own, so one bad line costs only itself."""
    broker = BrokerConfig(port=mosquitto.port)  # type: ignore[attr-defined]
    acks: list[int] = []
    with Ingest(store, broker, sync=FAST) as ingest:
        assert ingest.ready.wait(10)
        raw = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bed-7")
        raw.on_message = lambda _c, _u, m: acks.append(edgemed.wire.decode_ack(m.payload))
        raw.connect("127.0.0.1", broker.port)
        raw.subscribe("edgemed/v1/bed-7/ack", qos=1)
        raw.loop_start()

        def payload(seq: int) -> bytes:
            return edgemed.wire.encode_result(
                encoder(f"note {seq}"),
                device_id="bed-7",
                seq=seq,
                boot_id="b",
                lowest_unacked_seq=1,
                clock_synced=False,
            )

        lines = [payload(1), b'{"schema": "edgemed.result/1", "seq": "two"}', payload(2)]
        message = edgemed.wire.join_results(lines)
        raw.publish("edgemed/v1/bed-7/results", message, qos=1).wait_for_publish(5)
        assert until(lambda: 2 in acks, 10), acks
        raw.loop_stop()
        raw.disconnect()
    assert sorted(r["seq"] for r in store.results()) == [1, 2]
    assert ingest.counts["stored"] == 2 and ingest.counts["dead_letter"] == 1
    (letter,) = store.dead_letters()
    assert letter["topic"] == "edgemed/v1/bed-7/results"
    db = sqlite3.connect(store.path)
    (kept,) = db.execute("SELECT payload FROM dead_letters").fetchone()
    db.close()
    assert bytes(kept) == lines[1]  # only the bad line is kept, not the whole message


def test_backlog_is_sent_in_batches_and_a_quiet_device_sends_one_by_one(
    tmp_path: Path, mosquitto: object, store: SQLiteStore, encoder: edgemed.Pipeline
) -> None:
    broker = BrokerConfig(port=mosquitto.port)  # type: ignore[attr-defined]
    messages: list[int] = []  # results per message seen on the device's results topic
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="watcher")
    watcher.on_message = lambda _c, _u, m: messages.append(
        len(edgemed.wire.split_results(m.payload))
    )
    watcher.connect("127.0.0.1", broker.port)
    watcher.subscribe("edgemed/v1/bed-5/results", qos=1)
    watcher.loop_start()
    outbox = _outbox(tmp_path, "bed-5")
    result = encoder("observation")
    for _ in range(100):  # accepted while the device had no broker: a backlog
        outbox.put(
            lambda seq, boot, low: edgemed.wire.encode_result(
                result,
                device_id="bed-5",
                seq=seq,
                boot_id=boot,
                lowest_unacked_seq=low,
                clock_synced=False,
            )
        )
    # Resends only after 30 s: a CI run on a loaded 2-core machine (2026-12-06) had acks take
    # over 5 s, and the resent batches were counted as 46 duplicates (all deduplicated, 103
    # stored). A CI run of 2026-12-08 did not drain within 20 s (the figures below were not
    # kept then; ~2 s is usual): the drain may take up to 60 s. A lost ack still fails the
    # test, through the resend's duplicate at 30 s; a lost result is resent then, as designed.
    sync = SyncConfig(
        inflight_window=64, max_batch_results=16, resend_initial_s=30.0, reconnect_max_s=0.5
    )
    try:
        with Ingest(store, broker, sync=FAST) as ingest, Publisher(outbox, broker, sync) as pub:
            assert ingest.ready.wait(10)
            assert pub.wait_drained(60), (outbox.stats(), pub.published, dict(ingest.counts))
            assert until(lambda: sum(messages) >= 100, 5)
            backlog = list(messages)
            for i in range(3):  # one result at a time, each acknowledged before the next
                pub.submit(encoder(f"quiet {i}"))
                assert pub.wait_drained(10)
            assert until(lambda: sum(messages) >= 103, 5)
    finally:
        watcher.loop_stop()
        watcher.disconnect()
    assert max(backlog) == 16 and len(backlog) < 100 / 4  # batched, within the configured cap
    assert messages[len(backlog) :] == [1, 1, 1]  # no waiting to fill a batch
    assert store.count_results() == 103 and ingest.counts["duplicate"] == 0


def test_broker_restart_loses_nothing_and_stores_no_duplicates(
    tmp_path: Path, mosquitto: object, store: SQLiteStore, encoder: edgemed.Pipeline
) -> None:
    broker = BrokerConfig(port=mosquitto.port)  # type: ignore[attr-defined]
    outbox = _outbox(tmp_path)
    results = [encoder(f"observation {i}") for i in range(3)]
    with Ingest(store, broker, sync=FAST) as ingest, Publisher(outbox, broker, FAST) as pub:
        assert ingest.ready.wait(10)
        for i in range(60):
            pub.submit(results[i % 3])
            if i == 30:
                mosquitto.kill()  # type: ignore[attr-defined]
            if i == 45:
                mosquitto.start()  # type: ignore[attr-defined]
        assert pub.wait_drained(30), outbox.stats()
    assert store.count_results() == 60
    assert sorted(r["seq"] for r in store.results(limit=1000)) == list(range(1, 61))
    assert store.alerts(rule="seq-conflict") == []


def test_submit_many_round_trip_and_an_invalid_result_stores_nothing(
    tmp_path: Path, mosquitto: object, store: SQLiteStore, encoder: edgemed.Pipeline
) -> None:
    broker = BrokerConfig(port=mosquitto.port)  # type: ignore[attr-defined]
    results = [encoder(t) for t in ("syncope", "wheeze", "haematuria", "melaena")]
    outbox = _outbox(tmp_path, "bed-many")
    with Publisher(outbox, broker, FAST) as pub, Ingest(store, broker, sync=FAST) as ingest:
        assert ingest.ready.wait(10) and until(lambda: pub.connected, 10)
        assert pub.submit(results[0]) == 1
        assert pub.submit_many(results * 25) == list(range(2, 102))
        broken = dataclasses.replace(results[1], embedding=results[1].embedding * 2)  # norm 2
        with pytest.raises(edgemed.errors.ModelError, match="outside its contract"):
            pub.submit_many([results[0], broken])  # checked before anything is stored
        assert outbox.stats().next_seq == 102  # the refused call took no seq
        assert pub.wait_drained(20)
    stored = sorted(r["seq"] for r in store.results(limit=200))
    assert stored == list(range(1, 102))


def test_asyncio_publisher_round_trip(
    tmp_path: Path, mosquitto: object, store: SQLiteStore, encoder: edgemed.Pipeline
) -> None:
    import asyncio

    from edgemed.sync import AsyncPublisher

    broker = BrokerConfig(port=mosquitto.port)  # type: ignore[attr-defined]
    results = [encoder(t) for t in ("syncope", "wheeze", "haematuria")]

    async def device() -> list[int]:
        async with AsyncPublisher(_outbox(tmp_path, "bed-aio"), broker, FAST) as pub:
            ticks = 0

            async def heartbeat() -> None:  # the loop keeps running while results commit
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.001)

            beat = asyncio.create_task(heartbeat())
            seqs = list(await asyncio.gather(*(pub.submit(r) for r in results * 10)))
            assert await pub.wait_drained(20)
            beat.cancel()
            assert ticks > 0
            return seqs

    with Ingest(store, broker, sync=FAST) as ingest:
        assert ingest.ready.wait(10)
        seqs = asyncio.run(device())
    assert sorted(seqs) == list(range(1, 31))
    assert store.count_results() == 30


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_round_trip_and_replay_on_both_protocol_versions(
    protocol: str, tmp_path: Path, mosquitto: object, store: SQLiteStore, encoder: edgemed.Pipeline
) -> None:
    broker = BrokerConfig(port=mosquitto.port, protocol=protocol)  # type: ignore[arg-type, attr-defined]
    outbox = _outbox(tmp_path, f"bed-v{protocol.replace('.', '')}")
    with Ingest(store, broker, sync=FAST) as ingest, Publisher(outbox, broker, FAST) as pub:
        assert ingest.ready.wait(10) and until(lambda: pub.connected, 10)
        for i in range(20):
            pub.submit(encoder(f"note {i}"))
            if i == 10:
                mosquitto.kill()  # type: ignore[attr-defined]
                mosquitto.start()  # type: ignore[attr-defined]
        assert pub.wait_drained(30), outbox.stats()
    assert store.count_results() == 20 and store.alerts(rule="seq-conflict") == []
    assert pub.connections >= 2  # it really reconnected (persistent fleet session on v5 too)


def test_birth_and_lwt_death_carry_boot_id_and_connection_counter(
    tmp_path: Path, mosquitto: object
) -> None:
    import json
    import socket

    port = mosquitto.port  # type: ignore[attr-defined]
    seen: list[dict[str, object]] = []
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="status-watcher")
    watcher.on_connect = lambda c, *_: c.subscribe("edgemed/v1/+/status", qos=1)
    watcher.on_message = lambda _c, _u, m: seen.append(json.loads(m.payload))
    watcher.connect("127.0.0.1", port)
    watcher.loop_start()
    outbox = _outbox(tmp_path, "bed-s")
    try:
        with Publisher(outbox, BrokerConfig(port=port), FAST, models=["m@1"]) as pub:
            assert until(lambda: len(seen) == 1, 10)
            sock = pub._client.socket()  # an ungraceful loss: no DISCONNECT reaches the broker
            assert isinstance(sock, socket.socket)
            sock.shutdown(socket.SHUT_RDWR)
            assert until(lambda: len(seen) == 3, 10), seen  # LWT, then the new birth
        assert until(lambda: len(seen) == 4, 10), seen  # clean stop: explicit offline
    finally:
        watcher.loop_stop()
        watcher.disconnect()
    states = [(s["state"], s["connection"], s["boot_id"]) for s in seen]
    boot = outbox.boot_id
    assert states == [
        ("online", 1, boot),
        ("offline", 1, boot),
        ("online", 2, boot),
        ("offline", 2, boot),
    ]
    assert seen[0]["models"] == ["m@1"] and seen[0]["outbox_depth"] == 0


def test_auto_protocol_is_mqtt5_on_mosquitto_and_311_on_the_demo_broker(
    tmp_path: Path, mosquitto: object, encoder: edgemed.Pipeline
) -> None:
    from edgemed.fleet.broker import EmbeddedBroker
    from edgemed.mqtt_connection import probe_protocol

    port = mosquitto.port  # type: ignore[attr-defined]
    assert probe_protocol(BrokerConfig(port=port), "probe-test") == "5"
    with EmbeddedBroker() as amqtt_broker:  # amqtt speaks MQTT 3.1.1 only
        assert probe_protocol(BrokerConfig(port=amqtt_broker.port), "probe-test") == "3.1.1"
        for broker_port, expected in ((port, "5"), (amqtt_broker.port, "3.1.1")):
            store = SQLiteStore(tmp_path / f"fleet-{expected}.db")
            cfg = BrokerConfig(port=broker_port)  # protocol="auto" is the default
            outbox = _outbox(tmp_path, f"bed-auto-{expected.replace('.', '')}")
            with Ingest(store, cfg, sync=FAST) as ingest, Publisher(outbox, cfg, FAST) as pub:
                assert ingest.ready.wait(10) and until(lambda p=pub: p.connected, 10)
                assert pub.protocol == expected
                pub.submit(encoder("auto protocol"))
                assert pub.wait_drained(10)
            assert store.count_results() == 1
            store.close()
    assert probe_protocol(BrokerConfig(port=free_port()), "probe-test") is None  # unreachable


def test_probe_of_a_broker_that_never_answers_says_ask_again() -> None:
    """A broker that accepts TCP but sends no CONNACK is slow, not old: None, never "3.1.1"."""
    import socket
    import threading

    from edgemed.mqtt_connection import probe_protocol

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True).start()
    try:
        port = server.getsockname()[1]
        assert probe_protocol(BrokerConfig(port=port, keepalive_s=1), "probe-test", 2.5) is None
    finally:
        for sock in held:
            sock.close()
        server.close()
