"""Stage 8: fleet ingest. Subscribe to every device's results and status, store, then ack.

An ack is published only after the store has committed, so a device never deletes a result the
fleet does not hold. Payloads that fail validation go to the dead-letter table; the ingest never
crashes on device input, and never acks what it could not store.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from ..config import BrokerConfig, SyncConfig
from ..errors import PayloadError
from ..transport import make_client, resolve_protocol, run_connection
from ..wire import (
    PREFIX,
    ResultMessage,
    count_results,
    decode_result,
    decode_status,
    encode_ack,
    parse_topic,
    split_results,
    topic,
)
from .alerts import AlertRules
from .events import EventBus, announce, result_event
from .store import SqlStore

__all__ = ["Ingest"]

MAX_BATCH = 500  # results per store transaction (a message may carry several)

log = logging.getLogger(__name__)


class Ingest:
    """One ingest worker: a paho client on its own thread writing into ``store``."""

    def __init__(
        self,
        store: SqlStore,
        broker: BrokerConfig,
        *,
        client_id: str = "edgemed-fleet-ingest",
        sync: SyncConfig | None = None,
        shared_group: str | None = None,
        rules: AlertRules | None = None,
        events: EventBus | None = None,
    ) -> None:
        """``shared_group``: subscribe as ``$share/<group>/…`` so that several workers split
        the devices' results between them (MQTT 5 or mosquitto's 3.1.1 extension).
        ``rules`` raise alerts with each commit; ``events`` feeds the live dashboard."""
        self.store = store
        self.rules = rules or AlertRules()
        self.events = events
        self.shared_group = shared_group
        self.broker = broker
        self.sync = sync or SyncConfig()
        self.counts = {"stored": 0, "duplicate": 0, "conflict": 0, "dead_letter": 0, "status": 0}
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._worker: threading.Thread | None = None
        self._inbox: queue.Queue[tuple[str, bytes, float]] = queue.Queue()
        # receive -> commit latency of the last results stored, milliseconds
        self.commit_latency_ms: collections.deque[float] = collections.deque(maxlen=10_000)
        self.client_id = client_id
        self._client = self._make_client(broker)

    @property
    def persistent_session(self) -> bool:
        # A lone worker keeps a persistent session: the broker queues results while it restarts
        # (bounded by max_queued_messages; what it drops, devices resend: never acked).
        # Shared-group workers must not: a dead member with a persistent session stays in the
        # group and the broker keeps routing its share (and every resend) into its queue
        # (measured: 234 results stuck for 90 s). With clean sessions it leaves the group.
        return self.shared_group is None

    def _make_client(self, broker: BrokerConfig) -> mqtt.Client:
        client = make_client(self.client_id, broker, persistent_session=self.persistent_session)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        return client

    def start(self) -> Ingest:
        self._worker = threading.Thread(target=self._work, name="edgemed-fleet-store", daemon=True)
        self._worker.start()
        self._thread = threading.Thread(
            target=self._network,
            name="edgemed-fleet-ingest",
            daemon=True,
        )
        self._thread.start()
        return self

    def _network(self) -> None:
        broker = resolve_protocol(self.broker, self.client_id, self.sync, self._stop)
        if broker is None:
            return
        if broker.protocol != self.broker.protocol:
            self._client = self._make_client(broker)
        run_connection(
            self._client, broker, self.sync, self._stop, persistent_session=self.persistent_session
        )

    def stop(self) -> None:
        self._stop.set()
        self._client.disconnect()
        for thread in (self._thread, self._worker):
            if thread is not None:
                thread.join(timeout=5.0)

    def __enter__(self) -> Ingest:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused the fleet ingest: %s", reason)
            return
        share = f"$share/{self.shared_group}/" if self.shared_group else ""
        client.subscribe([(f"{share}{PREFIX}/+/results", 1), (f"{share}{PREFIX}/+/status", 1)])
        self.ready.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        # The network thread only queues: storing happens in batches on the worker thread.
        self._inbox.put((message.topic, bytes(message.payload), time.monotonic()))

    def _work(self) -> None:
        while not (self._stop.is_set() and self._inbox.empty()):
            batch: list[tuple[str, bytes, float]] = []
            results = 0
            while results < MAX_BATCH:  # wait for the first message, then take what is queued
                try:
                    item = self._inbox.get_nowait() if batch else self._inbox.get(timeout=0.2)
                except queue.Empty:
                    break
                batch.append(item)
                results += count_results(item[1])
            if not batch:
                continue
            try:
                self._store_batch(batch)
            except Exception:
                # Not acked: devices resend, and the operator sees the traceback.
                log.exception(
                    "ingest failed on a batch of %d message(s); not acknowledged", len(batch)
                )

    def _store_batch(self, batch: list[tuple[str, bytes, float]]) -> None:
        results: list[ResultMessage] = []
        received: list[float] = []
        for name, payload, at in batch:
            try:
                device_id, channel = parse_topic(name)
                if channel == "status":
                    self._store_status(device_id, decode_status(payload))
                elif channel == "results":
                    for line in split_results(payload):  # each result stands on its own
                        try:
                            results.append(decode_result(line, topic_device_id=device_id))
                            received.append(at)
                        except PayloadError as exc:
                            self._dead_letter(name, exc, line)
                else:
                    raise PayloadError(f"unexpected channel {channel!r}")
            except PayloadError as exc:
                self._dead_letter(name, exc, payload)
        if not results:
            return
        now = time.time()
        done = self.store.insert_results(results, lambda m: self.rules.on_result(m, now))
        committed = time.monotonic()  # committed: only now may acks go out
        for msg, outcome, at in zip(results, done.outcomes, received, strict=True):
            self.counts[outcome] += 1
            if outcome == "stored":
                self.commit_latency_ms.append((committed - at) * 1000.0)
                if self.events:
                    self.events.publish(result_event(msg, now))
            elif outcome == "conflict":
                log.error(
                    "device %s reused seq %d with a different payload", msg.device_id, msg.seq
                )
        for device_id, ack_seq in done.acked.items():
            self._client.publish(topic(device_id, "ack"), encode_ack(ack_seq), qos=1)
        announce(done.alerts, self.events)

    def _dead_letter(self, name: str, exc: PayloadError, payload: bytes) -> None:
        self.counts["dead_letter"] += 1
        log.warning("dead letter on %s: %s", name, exc)
        self.store.dead_letter(name, str(exc), payload)

    def _store_status(self, device_id: str, status: dict[str, Any]) -> None:
        self.counts["status"] += 1
        if not self.store.update_status(device_id, status):
            return  # a stale death notice
        now = time.time()
        if status["state"] == "online":
            self.store.resolve_alerts(device_id, "device-offline")
        announce(self.store.raise_alerts(self.rules.on_status(device_id, status, now)), self.events)
        if self.events:
            self.events.publish(
                {"type": "device", "device_id": device_id, "state": status["state"]}
            )
