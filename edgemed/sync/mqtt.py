"""Stage 7: publish outbox rows over MQTT (paho-mqtt 2.x) until the fleet acknowledges them.

Protocol (docs/architecture.md, "Wire protocol"): QoS1 publishes within an in-flight window (rows already waiting share
one message, one result per line: docs/architecture.md); the fleet replies on
``…/ack`` with the highest contiguous seq it has committed; only then are rows deleted. After every
(re)connect all unacknowledged rows are replayed (the fleet absorbs duplicates). Resends back off
exponentially; reconnects use full jitter (paho's own back-off has none).
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from .. import failpoints
from .._version import __version__
from ..config import BrokerConfig, SyncConfig
from ..errors import EdgemedError, PayloadError, SyncError
from ..mqtt_connection import (
    announce_offline,
    log_disconnect,
    make_client,
    resolve_protocol,
    run_connection,
)
from ..results import Result
from ..wire import (
    FLEET_PREFIX,
    FLEET_STATUS_TOPICS,
    decode_ack_epoch,
    decode_fleet_status,
    encode_status,
    join_results,
    prepare_result,
    topic,
)
from .clock import clock_synced
from .messages import batch_rows, stamper
from .outbox import Outbox
from .pacing import AckRate, Pacing
from .subscriptions import Subscriptions

__all__ = ["Publisher"]

log = logging.getLogger(__name__)


@dataclass
class _InFlight:
    deadline: float
    attempts: int


class Publisher:
    """Durable result sync for one device. Use as a context manager.

    ``submit(result)`` returns the result's seq once it is committed to the outbox; delivery to
    the fleet happens in the background and survives restarts (rows stay until acknowledged).
    """

    def __init__(
        self,
        outbox: Outbox,
        broker: BrokerConfig,
        sync: SyncConfig | None = None,
        *,
        models: list[str] | None = None,
        on_ack: Callable[[int], None] | None = None,
        on_command: Callable[[bytes], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self.device_id = outbox.device_id
        self.broker = broker
        self.sync = sync or SyncConfig()
        self.models = models or []
        self.connections = 0
        self.protocol: str | None = None  # the MQTT version in use, once the broker answered
        self.peak_inflight = 0  # most results published and unacknowledged at once (<= window)
        self.published = [0, 0]  # results-topic messages, results in them (resends included)
        self._on_ack = on_ack
        # The fleet's commands on …/cmd (edgemed.ota); extra fields of every status (its
        # rollout progress). Both are called on the network thread.
        self._on_command = on_command
        self.status_fields: Callable[[], dict[str, Any]] | None = None
        self._inflight: dict[int, _InFlight] = {}
        self._next_deadline = float("inf")  # no resend is due before this (monotonic time)
        self._high_sent = 0  # highest seq published on this connection
        self._pacing = Pacing(outbox, self.sync)  # held rows, batched deletions (pacing.py)
        self._wake = False  # set with notify: the sender has work (new rows, acks, reconnect)
        # Link watchdog: publishes still waiting for their PUBACK, and since when we wait.
        self._unpubacked: set[int] = set()
        self._early_pubacks: set[int] = set()  # PUBACK seen before publish() returned its mid
        self._waiting_since: float | None = None
        # Fleet ack throughput (results/s, moving average) and the last ack seen.
        self._ack_rate = AckRate()
        self._connected = False
        self.failure: str | None = None  # why a sync thread died; submit then raises
        self._fleet_processes: set[str] = set()  # fleet processes seen online
        self._replay_at: float | None = None  # a fleet came back: replay at this monotonic time
        self._next_heartbeat = float("inf")
        self._subscriptions = Subscriptions(self.device_id)  # checked SUBACKs (subscriptions.py)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._client = self._make_client(broker)

    def _make_client(self, broker: BrokerConfig) -> mqtt.Client:
        client = make_client(self.device_id, broker)
        client.on_pre_connect = self._set_will
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._subscriptions.on_suback
        return client

    # -- public API -------------------------------------------------------------------------
    def start(self) -> Publisher:
        for target, name in ((self._network, "net"), (self._sender, "send")):
            thread = threading.Thread(
                target=self._guarded, args=(target,), name=f"edgemed-sync-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def submit(self, result: Result, *, encounter: str | None = None) -> int:
        """Commit ``result`` to the outbox (raises OutboxFullError when full); returns its seq.

        Raises SyncError, storing nothing, once a sync thread has died: results accepted then
        would never leave the device, and the application must know (``failure`` says why).
        """
        return self.submit_many([result], encounter=encounter)[0]

    def submit_many(self, results: Sequence[Result], *, encounter: str | None = None) -> list[int]:
        """Commit several results in one outbox transaction (one fsync), in order; returns
        their seqs. For a caller that has many at once (a gateway's beds, a night of sleep
        epochs): the same guarantees as ``submit`` each, at a fraction of the commits.

        Every result is encoded and checked first: one outside its contract raises ModelError
        and nothing is stored. A refusal while storing (OutboxFullError...) stores a prefix
        only, whose seqs the error carries in ``stored_seqs``."""
        if self.failure is not None:
            raise SyncError(f"result sync has stopped: {self.failure}")
        # Encoded here, in the caller's thread; the group commit only adds the seq fields.
        synced, epoch = clock_synced(), self.outbox.epoch  # the epoch is fixed while open
        builders = [
            stamper(
                prepare_result(
                    r, device_id=self.device_id, clock_synced=synced, encounter=encounter
                ),
                epoch,
            )
            for r in results
        ]
        seqs: list[int] = []
        try:
            seqs = self.outbox.put_many(builders, stamps_epoch=True)
            return seqs
        finally:
            # Read without the lock: a wake-up the sender has not taken yet makes it read these
            # rows; only a consumed one needs anew, and none for rows it would hold (pacing.py).
            if not self._wake and (not seqs or self._pacing.wake_needed(seqs[-1])):
                with self._cond:
                    self._wake = True
                    self._cond.notify_all()

    @property
    def connected(self) -> bool:
        """Linked to the broker with both sync threads alive."""
        return self._connected and self.failure is None

    def wait_drained(self, timeout: float) -> bool:
        """Block until every submitted result is acknowledged by the fleet, or timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.outbox.depth:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.5))
        return True

    def announce(self) -> None:
        """Publish the retained status now (it carries ``status_fields``), if linked."""
        if self._connected:
            birth = self._birth()
            self._track(
                self._client.publish(topic(self.device_id, "status"), birth, qos=1, retain=True)
            )

    def stop(self) -> None:
        """Announce offline (retained), disconnect and join the threads. Rows stay in the outbox."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._connected:  # stopping never fails: nothing in the outbox depends on it
            announce_offline(
                self._client,
                topic(self.device_id, "status"),
                self._offline_status(self.connections),
                link=f"device {self.device_id} sync",
            )
        self._client.disconnect()
        with self._cond:
            self._wake = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._pacing.delete_due(force=True)  # acks that came after the sender's last round

    def __enter__(self) -> Publisher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- threads ----------------------------------------------------------------------------
    def _guarded(self, body: Callable[[], None]) -> None:
        """Run a sync thread; if it dies, record why, drop the link and wake waiters, so that
        ``connected``, ``submit`` and the log all tell the application (never a silent stop)."""
        try:
            body()
        except Exception as exc:  # recorded and reported; KeyboardInterrupt etc. pass through
            self.failure = f"{threading.current_thread().name} died: {exc!r}"
            log.exception("result sync stopped: %s", self.failure)
            with self._cond:
                self._connected = False
                self._cond.notify_all()
            with contextlib.suppress(Exception):
                self._client.disconnect()

    def _network(self) -> None:
        broker = resolve_protocol(self.broker, self.device_id, self.sync, self._stop)
        if broker is None:
            return  # stopped before the broker ever answered
        if broker.protocol != self.broker.protocol:
            self._client = self._make_client(broker)  # not yet connected: nothing else uses it
        self.protocol = broker.protocol
        run_connection(self._client, broker, self.sync, self._stop)

    def _sender(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                if not self._wake:  # work that arrived while we were publishing is not lost
                    wake_at = self._pacing.wake_at()
                    wait = 0.2 if wake_at is None else max(0.0, wake_at - time.monotonic())
                    self._cond.wait(min(0.2, wait))
                self._wake = False
            self._delete_acked(force=self._stop.is_set())
            if self._connected:
                self._check_link()
                self._subscriptions.retry_due(self._client)
                self._heartbeat_due()
                self._replay_due()
                try:
                    self._publish_due()
                except EdgemedError as exc:
                    log.error("sync sender: %s", exc)

    def _delete_acked(self, *, force: bool = False) -> None:
        """Delete the acknowledged rows when due (pacing.py); wake wait_drained if any went."""
        if self._pacing.delete_due(force=force):
            with self._cond:
                self._cond.notify_all()

    def _heartbeat_due(self) -> None:
        """Re-announce the birth status every heartbeat_s: the fleet marks a device whose
        status is older than that "unknown" (its will may have been lost with a broker that
        restarted without persistence), and sees a current outbox depth."""
        if time.monotonic() < self._next_heartbeat:
            return
        self._next_heartbeat = time.monotonic() + self.sync.heartbeat_s
        self._track(
            self._client.publish(topic(self.device_id, "status"), self._birth(), qos=1, retain=True)
        )

    def _replay_due(self) -> None:
        """A fleet process came online: what it missed was dropped by the broker, unacked.
        Replay everything now (at a jittered time) instead of waiting for resend timers."""
        with self._cond:
            if self._replay_at is None or time.monotonic() < self._replay_at:
                return
            self._replay_at = None
            self._inflight.clear()
            self._next_deadline = float("inf")
            self._high_sent = 0
            self._pacing.reset()
        log.info("a fleet process came online: replaying %d unacked result(s)", self.outbox.depth)

    def _check_link(self) -> None:
        """Drop a link that stopped answering: 1.5 x keepalive without a PUBACK while one is due.

        paho alone notices only after ~2 keepalives (ping, then timeout). Shutting the socket
        down (not DISCONNECT, which may sit behind a full send buffer) makes paho's loop end,
        and run_connection reconnects; unacknowledged rows are replayed.
        """
        limit = 1.5 * self.broker.keepalive_s
        with self._cond:
            stalled = (
                self._waiting_since is not None and time.monotonic() - self._waiting_since > limit
            )
        if stalled:
            log.warning("broker silent for %.1f s with publishes outstanding: dropping link", limit)
            with self._cond:
                self._waiting_since = None
            sock = self._client.socket()
            if isinstance(sock, socket.socket):  # TLS sockets are socket subclasses too
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _track(self, info: mqtt.MQTTMessageInfo) -> None:
        with self._cond:
            if info.mid in self._early_pubacks:
                self._early_pubacks.discard(info.mid)
                return
            if not self._unpubacked:
                self._waiting_since = time.monotonic()
            self._unpubacked.add(info.mid)

    def _publish_due(self) -> None:
        """Resend rows whose timer expired, then fill the window with rows never sent yet."""
        now = time.monotonic()
        with self._cond:
            due: list[int] = []
            if now >= self._next_deadline:  # scan the window only when a timer can have expired
                due = [seq for seq, entry in self._inflight.items() if now >= entry.deadline]
                self._next_deadline = min(
                    (e.deadline for e in self._inflight.values() if now < e.deadline),
                    default=float("inf"),
                )
            room = self.sync.inflight_window - len(self._inflight)
            after, replays = self._high_sent, self._pacing.replays
        if after == 0:  # a replay: acknowledged rows must not be resent
            self._delete_acked(force=True)
        rows = self.outbox.rows(due)
        if room > 0:
            fresh = self.outbox.pending(room, after=after)
        with self._cond:
            if self._pacing.replays != replays:
                return  # a reconnect or replay began meanwhile: it resends from the start
            if room > 0:
                rows += self._pacing.unheld(fresh, now, self._inflight)
            for row in rows:
                self._schedule_resend(row.seq, now)
        for group in batch_rows(rows, self.sync.max_batch_results):
            message = join_results([row.payload for row in group])
            info = self._client.publish(topic(self.device_id, "results"), message, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return  # disconnected meanwhile: everything is replayed on reconnect
            self._track(info)
            self.published[0] += 1
            self.published[1] += len(group)
            failpoints.hit("publisher.sent")

    def _schedule_resend(self, seq: int, now: float) -> None:
        """Record ``seq`` as in flight with its resend deadline (caller holds ``_cond``)."""
        entry = self._inflight.get(seq)
        attempts = 1 if entry is None else entry.attempts + 1
        wait = min(self.sync.resend_max_s, self.sync.resend_initial_s * 2.0 ** (attempts - 1))
        if self._ack_rate.rate:  # a slow fleet is not a lost message: wait for the queue ahead
            # New rows are past everything in flight; only resends need counting.
            ahead = (
                len(self._inflight)
                if entry is None
                else sum(1 for other in self._inflight if other < seq)
            )
            # Capped: while a lost result holds the fleet's contiguous ack back, the measured
            # rate collapses, and an uncapped wait would never resend it.
            wait = min(self.sync.resend_max_s, max(wait, 2.0 * ahead / self._ack_rate.rate))
        deadline = now + wait * random.uniform(0.8, 1.2)
        self._inflight[seq] = _InFlight(deadline, attempts)
        self._next_deadline = min(self._next_deadline, deadline)
        self._high_sent = max(self._high_sent, seq)
        self.peak_inflight = max(self.peak_inflight, len(self._inflight))

    # -- paho callbacks (network thread) ----------------------------------------------------
    def _offline_status(self, connection: int) -> bytes:
        return encode_status(
            "offline", device_id=self.device_id, boot_id=self.outbox.boot_id, connection=connection
        )

    def _set_will(self, client: mqtt.Client, _userdata: Any) -> None:
        # Before every (re)connect: the broker's death notice names the connection it ends.
        will = self._offline_status(self.connections + 1)
        client.will_set(topic(self.device_id, "status"), will, qos=1, retain=True)

    def _birth(self) -> bytes:
        """The retained online status: sent on connect and every heartbeat_s."""
        return encode_status(
            "online",
            device_id=self.device_id,
            boot_id=self.outbox.boot_id,
            connection=self.connections,
            edgemed_version=__version__,
            models=self.models,
            outbox_depth=self.outbox.depth,
            epoch=self.outbox.epoch,
            epoch_start=self.outbox.epoch_start,
            outbox_moved_aside=self.outbox.moved_aside,
            heartbeat_s=self.sync.heartbeat_s,
            **(self.status_fields() if self.status_fields else {}),
        )

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused connection: %s", reason)
            return
        self.connections += 1
        # Fleet presence: a fleet process coming online makes us replay (see _replay_due).
        subscriptions = [(topic(self.device_id, "ack"), 1), (FLEET_STATUS_TOPICS, 1)]
        if self._on_command is not None:
            subscriptions.append((topic(self.device_id, "cmd"), 1))
        self._subscriptions.subscribe(client, subscriptions)
        birth = self._birth()
        self._next_heartbeat = time.monotonic() + self.sync.heartbeat_s
        self.outbox.set_link_state("online")
        with self._cond:
            self._unpubacked.clear()
            self._early_pubacks.clear()
            self._waiting_since = None
        self._track(client.publish(topic(self.device_id, "status"), birth, qos=1, retain=True))
        with self._cond:
            self._inflight.clear()  # replay everything unacknowledged
            self._next_deadline = float("inf")
            self._high_sent = 0
            self._pacing.reset()
            self._connected = True
            self._wake = True
            self._cond.notify_all()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._cond:
            self._connected = False
        try:
            self.outbox.set_link_state("offline")
        except EdgemedError as exc:
            log.error("cannot record link state: %s", exc)
        log_disconnect(log, f"device {self.device_id} sync", reason, stopping=self._stop.is_set())

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        with self._cond:
            if mid in self._unpubacked:
                self._unpubacked.discard(mid)
                self._waiting_since = time.monotonic() if self._unpubacked else None
            else:
                self._early_pubacks.add(mid)

    def _on_fleet_status(self, message: mqtt.MQTTMessage) -> None:
        try:
            status = decode_fleet_status(bytes(message.payload))
        except PayloadError as exc:
            log.warning("ignoring a bad fleet status: %s", exc)
            return
        if status.state != "online" or status.process_id in self._fleet_processes:
            return
        self._fleet_processes.add(status.process_id)
        if message.retain:
            return  # known at subscription time: this connection's replay already covers it
        delay = random.uniform(0.0, self.sync.fleet_replay_jitter_s)  # a ward must not stampede
        with self._cond:
            self._replay_at = time.monotonic() + delay
            self._wake = True
            self._cond.notify_all()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic.startswith(FLEET_PREFIX):
            self._on_fleet_status(message)
            return
        if self._on_command is not None and message.topic == topic(self.device_id, "cmd"):
            self._on_command(bytes(message.payload))
            return
        try:
            ack_seq, epoch = decode_ack_epoch(bytes(message.payload))
            self.outbox.check_ack(ack_seq, epoch)
        except EdgemedError as exc:
            log.error("ignoring ack on %s: %s", message.topic, exc)
            return
        with self._cond:
            covered = self.outbox.ack_range(ack_seq, epoch)  # an epoch's acks cover only it
            if epoch is None or epoch == self.outbox.epoch:
                self._ack_rate.update(ack_seq, time.monotonic())
            done = [s for s in self._inflight if s in covered]
            for seq in done:
                del self._inflight[seq]
            self._wake = True
            self._cond.notify_all()
        if self._pacing.acked(ack_seq, epoch, len(done)):  # the rows' deletion: pacing.py
            self._delete_acked()
        if self._on_ack is not None:
            self._on_ack(ack_seq)
