"""Stage 8: fleet ingest. Subscribe to every device's results and status, store, then ack.

An ack is published only after the store has committed, so a device never deletes a result the
fleet does not hold. Payloads that fail validation go to the dead-letter table; the ingest never
crashes on device input, and never acks what it could not store.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import paho.mqtt.client as mqtt

from ..config import BrokerConfig, SyncConfig
from ..errors import PayloadError
from ..transport import make_client, run_connection
from ..wire import PREFIX, decode_result, decode_status, encode_ack, parse_topic, topic
from .store import SQLiteStore

__all__ = ["Ingest"]

log = logging.getLogger(__name__)


class Ingest:
    """One ingest worker: a paho client on its own thread writing into ``store``."""

    def __init__(
        self,
        store: SQLiteStore,
        broker: BrokerConfig,
        *,
        client_id: str = "edgemed-fleet-ingest",
        sync: SyncConfig | None = None,
    ) -> None:
        self.store = store
        self.broker = broker
        self.sync = sync or SyncConfig()
        self.counts = {"stored": 0, "duplicate": 0, "conflict": 0, "dead_letter": 0, "status": 0}
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = make_client(client_id, broker)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message

    def start(self) -> Ingest:
        self._thread = threading.Thread(
            target=run_connection,
            args=(self._client, self.broker, self.sync, self._stop),
            name="edgemed-fleet-ingest",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._client.disconnect()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def __enter__(self) -> Ingest:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused the fleet ingest: %s", reason)
            return
        client.subscribe([(f"{PREFIX}/+/results", 1), (f"{PREFIX}/+/status", 1)])
        self.ready.set()

    def _on_message(self, client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        # Runs on paho's network thread: an exception here would kill it, so nothing escapes.
        payload = bytes(message.payload)
        try:
            self._handle(client, message.topic, payload)
        except PayloadError as exc:
            self.counts["dead_letter"] += 1
            log.warning("dead letter on %s: %s", message.topic, exc)
            self.store.dead_letter(message.topic, str(exc), payload)
        except Exception:
            # Not acked: the device will resend, and the operator sees the traceback.
            log.exception("ingest failed on %s; not acknowledged", message.topic)

    def _handle(self, client: mqtt.Client, name: str, payload: bytes) -> None:
        device_id, channel = parse_topic(name)
        if channel == "status":
            self.store.update_status(device_id, decode_status(payload))
            self.counts["status"] += 1
            return
        if channel != "results":
            raise PayloadError(f"unexpected channel {channel!r}")
        msg = decode_result(payload, topic_device_id=device_id)
        outcome, acked = self.store.insert_result(msg)
        self.counts[outcome] += 1
        if outcome == "conflict":
            log.error("device %s reused seq %d with a different payload", device_id, msg.seq)
        client.publish(topic(device_id, "ack"), encode_ack(acked), qos=1)
