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
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt

from .. import failpoints
from ..config import BrokerConfig, SyncConfig
from ..errors import PayloadError
from ..mqtt_connection import (
    full_jitter,
    log_disconnect,
    make_client,
    probe_shared_subscriptions,
    resolve_protocol,
    run_connection,
)
from ..wire import (
    FLEET_PREFIX,
    PREFIX,
    ResultMessage,
    count_results,
    encode_ack,
    parse_topic,
    split_results,
    topic,
)
from .alerts import AlertRules
from .events import EventBus, announce, result_event
from .rollouts.engine import record_report
from .store import SqlStore
from .validation import PayloadValidator

if TYPE_CHECKING:
    from .metrics import FleetMetrics

__all__ = ["Ingest"]

MAX_BATCH = 500  # results per store transaction (a message may carry several)

log = logging.getLogger(__name__)


class Ingest:
    """One ingest worker: a paho client on its own thread writing into ``store``.

    Clean sessions, always: a persistent session under a fixed client id is what let two
    fleets take over each other's session and split a device's results, and what a new store
    inherited from an old one. Results published while no ingest is subscribed are dropped by
    the broker, never acknowledged, and replayed by the devices when the fleet announces
    itself again (fleet/presence.py).
    """

    def __init__(
        self,
        store: SqlStore,
        broker: BrokerConfig,
        *,
        client_id: str | None = None,
        sync: SyncConfig | None = None,
        shared_group: str | None = None,
        rules: AlertRules | None = None,
        events: EventBus | None = None,
    ) -> None:
        """``client_id`` must be unique on the broker (FleetServer makes one per process and
        worker; default: a random one). ``shared_group``: subscribe as ``$share/<group>/…`` so that the fleet's
        workers and processes split the results between them; where the broker cannot do
        shared subscriptions (amqtt) the worker subscribes plainly and says so.
        ``rules`` raise alerts with each commit; ``events`` feeds the live dashboard."""
        self.store = store
        self.rules = rules or AlertRules()
        self.events = events
        self.shared_group = shared_group
        self.broker = broker
        self.sync = sync or SyncConfig()
        self.counts = {"stored": 0, "duplicate": 0, "conflict": 0, "dead_letter": 0, "status": 0}
        self.ready = threading.Event()
        self.connected = False
        self.failure: str | None = None  # why a thread of this worker died, if one did
        self.subscription: str | None = None  # "shared" or "plain", once subscribed
        self._share_supported: bool | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._worker: threading.Thread | None = None
        self._inbox: queue.Queue[tuple[str, bytes, float]] = queue.Queue()
        self._dead_letter_times: collections.deque[float] = collections.deque(maxlen=100_000)
        # receive -> commit latency of the last results stored, milliseconds
        self.commit_latency_ms: collections.deque[float] = collections.deque(maxlen=10_000)
        self.client_id = client_id or f"edgemed-fleet-ingest-{uuid.uuid4().hex[:12]}"
        self._client = self._make_client(broker)

    def _make_client(self, broker: BrokerConfig) -> mqtt.Client:
        client = make_client(self.client_id, broker)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def start(self) -> Ingest:
        self._worker = threading.Thread(
            target=self._guarded, args=(self._work,), name="edgemed-fleet-store", daemon=True
        )
        self._worker.start()
        self._thread = threading.Thread(
            target=self._guarded, args=(self._network,), name="edgemed-fleet-ingest", daemon=True
        )
        self._thread.start()
        return self

    def _guarded(self, body: Callable[[], None]) -> None:
        """Run a thread's body; if it dies, say so where health and the log show it."""
        try:
            body()
        except Exception as exc:  # recorded and reported; KeyboardInterrupt etc. pass through
            self.failure = f"{threading.current_thread().name} died: {exc!r}"
            self.connected = False
            log.exception("fleet ingest %s", self.failure)

    def _network(self) -> None:
        broker = resolve_protocol(self.broker, self.client_id, self.sync, self._stop)
        if broker is None:
            return
        if broker.protocol != self.broker.protocol:
            self._client = self._make_client(broker)
        if self.shared_group is not None:
            while self._share_supported is None and not self._stop.is_set():
                self._share_supported = probe_shared_subscriptions(
                    broker, self.client_id, self.shared_group
                )
                if self._share_supported is None:
                    self._stop.wait(full_jitter(0, self.sync.reconnect_min_s, 5.0))
            if self._share_supported is False:
                log.warning(
                    "broker %s:%d does not deliver $share subscriptions: ingest worker %s "
                    "subscribes plainly (several workers then each store every result once, "
                    "absorbed as duplicates)",
                    broker.host, broker.port, self.client_id,
                )  # fmt: skip
        run_connection(self._client, broker, self.sync, self._stop)

    def publish(self, name: str, payload: bytes, *, retain: bool = False) -> bool:
        """Publish on this worker's broker link (QoS1); False when the link is down."""
        if not self.connected:
            return False
        info = self._client.publish(name, payload, qos=1, retain=retain)
        return bool(info.rc == mqtt.MQTT_ERR_SUCCESS)

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

    def lag(self) -> tuple[int, float]:
        """(messages received and not yet stored, age in seconds of the oldest of them)."""
        with self._inbox.mutex:
            items = self._inbox.queue
            oldest = items[0][2] if items else None
            return len(items), 0.0 if oldest is None else time.monotonic() - oldest

    def dead_letters_since(self, seconds: float) -> int:
        cutoff = time.monotonic() - seconds
        return sum(1 for at in self._dead_letter_times if at >= cutoff)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker refused fleet ingest %s: %s", self.client_id, reason)
            return
        shared = self.shared_group is not None and self._share_supported is True
        share = f"$share/{self.shared_group}/" if shared else ""
        client.subscribe([(f"{share}{PREFIX}/+/results", 1), (f"{share}{PREFIX}/+/status", 1)])
        self.subscription = "shared" if shared else "plain"
        self.connected = True
        log.info("fleet ingest %s connected (%s subscription)", self.client_id, self.subscription)
        self.ready.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected = False
        log_disconnect(log, f"fleet ingest {self.client_id}", reason, stopping=self._stop.is_set())

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

    # Schema + semantic checks of every payload (fleet/validation.py); replace it on an
    # instance for another clock skew.
    validator = PayloadValidator()
    # Prometheus figures (fleet/metrics.py): FleetServer sets its own on each worker.
    metrics: FleetMetrics | None = None

    def _store_batch(self, batch: list[tuple[str, bytes, float]]) -> None:
        results: list[ResultMessage] = []
        received: list[float] = []
        for name, payload, at in batch:
            if name.startswith(FLEET_PREFIX):
                continue  # a fleet's presence, delivered by a broker that mis-matches $share
            try:
                device_id, channel = parse_topic(name)
                if channel == "status":
                    status = self.validator.status(payload, topic_device_id=device_id)
                    self._store_status(device_id, status)
                elif channel == "results":
                    for line in split_results(payload):  # each result stands on its own
                        try:
                            results.append(self.validator.result(line, topic_device_id=device_id))
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
        done = self.store.insert_results(results, lambda m: self.rules.evaluate(m, now))
        committed = time.monotonic()  # committed: only now may acks go out
        failpoints.hit("ingest.committed")
        for msg, outcome, at in zip(results, done.outcomes, received, strict=True):
            self.counts[outcome] += 1
            if self.metrics is not None:
                self.metrics.committed(outcome, committed - at)
            if outcome == "stored":
                self.commit_latency_ms.append((committed - at) * 1000.0)
                if self.events:
                    self.events.publish(result_event(msg, now))
            elif outcome == "conflict":
                log.error(
                    "device %s reused seq %d with a different payload", msg.device_id, msg.seq
                )
        for (device_id, epoch), ack_seq in done.acked.items():  # acks are per outbox epoch
            self._send_ack(device_id, encode_ack(ack_seq, epoch=epoch))
        announce(done.alerts, self.events)

    def _send_ack(self, device_id: str, ack: bytes) -> None:
        """Tell a device what is committed (called only after the commit); a JetStream worker
        (fleet/jetstream.py) sends it over NATS instead."""
        self._client.publish(topic(device_id, "ack"), ack, qos=1)
        failpoints.hit("ingest.acked")

    def _dead_letter(self, name: str, exc: PayloadError, payload: bytes) -> None:
        self.counts["dead_letter"] += 1
        self._dead_letter_times.append(time.monotonic())
        if self.metrics is not None:
            self.metrics.dead_letter(str(exc))
        log.warning("dead letter on %s: %s", name, exc)
        self.store.dead_letter(name, str(exc), payload)

    def _store_status(self, device_id: str, status: dict[str, Any]) -> None:
        self.counts["status"] += 1
        if not self.store.update_status(device_id, status):
            return  # a stale death notice
        if "rollout" in status:  # where the device stands in a rollout (fleet/rollouts/)
            record_report(self.store, device_id, status["rollout"])
        now = time.time()
        if status["state"] == "online":
            self.store.resolve_alerts(device_id, "device-offline")
        announce(self.store.raise_alerts(self.rules.on_status(device_id, status, now)), self.events)
        if self.events:
            self.events.publish(
                {"type": "device", "device_id": device_id, "state": status["state"]}
            )
