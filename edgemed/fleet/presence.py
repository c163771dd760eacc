"""The fleet process's presence on the broker: who else serves it, and telling devices we are here.

Every fleet process keeps a retained :class:`~edgemed.wire.FleetStatus` on its own topic,
re-announced every ``heartbeat_s``, with a last will that turns it "offline". It serves two ends:

* **No silent split.** Before ingest starts, the process reads the retained statuses: if a fleet
  process writing to *another* store is online (announced within 3 heartbeats), it refuses to
  start (:class:`~edgemed.errors.FleetConflictError`). Two stores on one broker would each keep
  part of every device's results while devices delete what either acknowledged. Then it claims
  the broker ("starting") and waits CLAIM_GRACE_S: of two fleets starting at once, each sees
  the other's claim and the later one (by start time, then process id) refuses before any
  ingest. Should one still appear later (a broker partition healing), the later of the two
  steps down at once (``conflict`` is set, ``on_conflict`` stops ingest, health turns 503).
* **Recovery in seconds.** Devices subscribe to these topics; a fleet process coming online
  (a live, not retained, message) makes them replay their unacknowledged results at once, with
  jitter, instead of waiting for their resend timers (the broker dropped what they sent while
  no ingest was subscribed).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

import paho.mqtt.client as mqtt

from ..config import BrokerConfig, SyncConfig
from ..errors import FleetConflictError, PayloadError, SyncError
from ..mqtt_connection import (
    announce_offline,
    log_disconnect,
    make_client,
    resolve_protocol,
    run_connection,
)
from ..wire import (
    FLEET_STATUS_TOPICS,
    FleetStatus,
    decode_fleet_status,
    encode_fleet_status,
    fleet_topic,
)

__all__ = ["FleetPresence"]

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0
# How long to wait for the broker's retained statuses after the subscription is granted.
RETAINED_GRACE_S = 0.5
# How long a claim ("starting") must stand unchallenged before ingest subscribes.
CLAIM_GRACE_S = 1.0


class FleetPresence:
    """Announce this fleet process (``store_id``, ingest ``group``) and watch for others."""

    def __init__(
        self,
        broker: BrokerConfig,
        *,
        store_id: str,
        group: str | None,
        sync: SyncConfig | None = None,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.broker = broker
        self.sync = sync or SyncConfig()
        self.store_id = store_id
        self.group = group
        self.process_id = uuid.uuid4().hex[:12]
        self.heartbeat_s = heartbeat_s
        self.since = time.time()
        self.connected = False
        self.conflict: str | None = None  # why this process must not ingest, once known
        self.on_conflict: Callable[[], None] | None = None  # called once when we step down
        self.others: dict[str, FleetStatus] = {}  # process_id -> latest status seen
        self._online = False  # announce() was called: (re)connects re-announce
        self._subscribed = threading.Event()
        self.link_error: BaseException | None = None  # the last failed connection attempt's
        self._refused = threading.Event()  # TLS refused the broker's certificate
        self._checked_at: float | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._heartbeat: threading.Thread | None = None
        self.client_id = f"edgemed-fleet-{store_id[:8]}-{self.process_id}-presence"
        self._client = self._make_client(broker)

    @property
    def topic(self) -> str:
        return fleet_topic(self.store_id, self.process_id)

    def _status(self, state: Literal["starting", "online", "offline"]) -> bytes:
        return encode_fleet_status(
            FleetStatus(
                state=state,
                store_id=self.store_id,
                process_id=self.process_id,
                group=self.group,
                since=self.since,
                at=time.time(),
                heartbeat_s=self.heartbeat_s,
            )
        )

    def _make_client(self, broker: BrokerConfig) -> mqtt.Client:
        client = make_client(self.client_id, broker)
        client.will_set(self.topic, self._status("offline"), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    # -- lifecycle --------------------------------------------------------------------------
    def check(self, timeout: float = 20.0) -> None:
        """Connect and read who else serves the broker; raise if another store's fleet does.

        Raises SyncError if the broker does not answer within ``timeout`` (naming the last
        connection error), at once if TLS refuses the broker's certificate: the fleet fails
        closed, it never falls back to plain MQTT.
        """
        self._thread = threading.Thread(target=self._network, name="edgemed-fleet-presence")
        self._thread.daemon = True
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._subscribed.wait(0.05):
            where = f"broker {self.broker.host}:{self.broker.port}"
            if self._refused.is_set():
                raise SyncError(
                    f"{where}: TLS refused the broker's certificate ({self.link_error}); it must "
                    f"be signed by the configured CA, valid now and name {self.broker.host}. "
                    "The fleet does not fall back to plain MQTT"
                )
            if time.monotonic() >= deadline:
                raise SyncError(
                    f"{where} did not answer the fleet within {timeout:.0f} s{self._hint()}"
                )
        time.sleep(RETAINED_GRACE_S)  # retained messages follow the SUBACK
        self._refuse_if_rival()
        self._client.publish(self.topic, self._status("starting"), qos=1, retain=True)
        time.sleep(CLAIM_GRACE_S)  # a fleet starting at the same time sees our claim, we see its
        self._refuse_if_rival()
        with self._lock:
            self._checked_at = time.time()

    def _refuse_if_rival(self) -> None:
        with self._lock:
            rival = self._rival()
        if rival is not None:
            self.conflict = self._conflict_text(rival)
            if self.connected:  # withdraw our claim, if we made one
                self._client.publish(self.topic, self._status("offline"), qos=1, retain=True)
            raise FleetConflictError(self.conflict)

    def announce(self) -> None:
        """Ingest is subscribed: tell devices (and other fleets) this process is online."""
        self._online = True
        self._publish_online()
        self._heartbeat = threading.Thread(
            target=self._beat, name="edgemed-fleet-heartbeat", daemon=True
        )
        self._heartbeat.start()

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self.connected:
            announce_offline(
                self._client, self.topic, self._status("offline"), link="fleet presence"
            )
        self._client.disconnect()
        for thread in (self._thread, self._heartbeat):
            if thread is not None:
                thread.join(timeout=5.0)

    # -- threads ----------------------------------------------------------------------------
    def _network(self) -> None:
        broker = resolve_protocol(
            self.broker, self.client_id, self.sync, self._stop, on_error=self._link_failed
        )
        if broker is None:
            return
        if broker.protocol != self.broker.protocol:
            self._client = self._make_client(broker)
        run_connection(self._client, broker, self.sync, self._stop, on_error=self._link_failed)

    def _hint(self) -> str:
        if self.link_error is not None:
            return f" (last error: {self.link_error})"
        if self.broker.tls is None:  # a TLS listener says nothing to a plain CONNECT
            return "; if it is a TLS listener, give its CA (the fleet never guesses TLS)"
        return "; it may refuse the fleet's client certificate (unknown CA, revoked): see its log"

    def _link_failed(self, exc: BaseException) -> None:
        self.link_error = exc
        if isinstance(exc, ssl.SSLCertVerificationError):
            self._refused.set()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            self._publish_online()

    def _publish_online(self) -> None:
        if self.connected and self.conflict is None:
            self._client.publish(self.topic, self._status("online"), qos=1, retain=True)

    # -- paho callbacks ---------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the fleet presence link: %s", reason)
            return
        self.connected = True
        log.info("fleet %s process %s connected to the broker", self.store_id, self.process_id)
        client.subscribe(FLEET_STATUS_TOPICS, qos=1)
        if self._online:  # a reconnect: devices that reconnected meanwhile replay anyway
            self._publish_online()

    def _on_subscribe(self, *_args: Any) -> None:
        self._subscribed.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected = False
        log_disconnect(log, "fleet presence", reason, stopping=self._stop.is_set())

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            status = decode_fleet_status(bytes(message.payload))
        except PayloadError as exc:
            log.warning("ignoring a bad fleet status on %s: %s", message.topic, exc)
            return
        if status.process_id == self.process_id:
            return
        with self._lock:
            self.others[status.process_id] = status
            if self._checked_at is None or self.conflict is not None:
                return  # check() decides; or we already stepped down
            rival = self._rival()
            if rival is None:
                return
            self.conflict = self._conflict_text(rival)
        log.critical("%s; this fleet process stops ingesting", self.conflict)
        self._client.publish(self.topic, self._status("offline"), qos=1, retain=True)
        if self.on_conflict is not None:
            self.on_conflict()

    def _rival(self) -> FleetStatus | None:
        """A fleet process of another store with a live claim on the broker that beats ours:
        "online" always (it serves devices already), "starting" if it started first. Heard from
        within 3 heartbeats: a process killed with its will lost does not block for ever."""
        now = time.time()
        for other in self.others.values():
            fresh = now - other.at < 3 * max(other.heartbeat_s, 1.0)
            if other.store_id == self.store_id or not fresh or other.state == "offline":
                continue
            earlier = (other.since, other.process_id) < (self.since, self.process_id)
            if earlier or (other.state == "online" and self._checked_at is None):
                return other
        return None

    def _conflict_text(self, rival: FleetStatus) -> str:
        return (
            f"another fleet (store {rival.store_id}, process {rival.process_id}, online since "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(rival.since))} UTC) serves broker "
            f"{self.broker.host}:{self.broker.port}; this fleet's store is {self.store_id}. Two "
            "stores on one broker would each keep part of every device's results: stop one, "
            "or point this fleet at the same store"
        )
