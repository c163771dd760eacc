"""Stage 8 on a RabbitMQ cluster: ingest from a quorum queue instead of an MQTT ``$share``.

Devices keep speaking MQTT to the cluster's MQTT plugin listeners. The plugin publishes every
MQTT message to the ``amq.topic`` exchange with the topic as routing key ('/' and '.' swapped:
``edgemed/v1/bed-7/results`` -> ``edgemed.v1.bed-7.results``). The fleet declares one durable
**quorum queue** (replicated over the cluster by Raft) bound to the results and status routing
keys, so results published while no fleet process runs wait in the queue; every worker of every
fleet process consumes from it with manual acknowledgements: each message goes to one worker,
which stores it through the same pipeline as the MQTT ingest (validation, dead letters, alert
rules, the store's idempotent insert), publishes the device's ack to ``amq.topic`` (the plugin
delivers it to the device's MQTT subscription), and only then acknowledges the messages to
RabbitMQ. A worker that dies holding messages leaves them unacknowledged: RabbitMQ gives them to
another consumer when its connection closes, and the store absorbs what was already committed.

pika is an optional dependency: ``pip install 'edgemed[fleet-amqp]'``. Credentials come from
``EDGEMED_AMQP_USER`` / ``EDGEMED_AMQP_PASSWORD`` (default guest/guest), never from the URL.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .. import failpoints
from ..errors import InputError
from ..wire import PREFIX, count_results, topic
from .ingest import MAX_BATCH
from .queue_ingest import QueueIngest
from .store import SqlStore

if TYPE_CHECKING:
    from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

__all__ = [
    "AmqpConfig",
    "AmqpIngest",
    "ensure_queue",
    "routing_key_to_topic",
    "topic_to_routing_key",
]

log = logging.getLogger(__name__)
IDLE_S = 0.2  # a partial batch is stored after this long without a new message


@dataclass(frozen=True, kw_only=True)
class AmqpConfig:
    """Where the fleet's workers consume results from: the cluster's AMQP URLs and the queue."""

    urls: tuple[str, ...]
    queue: str = "edgemed-results"  # shared by every worker of every fleet process
    exchange: str = "amq.topic"  # where RabbitMQ's MQTT plugin publishes (its mqtt.exchange)
    prefetch: int = 2000  # unacknowledged messages a worker may hold
    replicas: int = 3  # of the quorum queue, when the first worker declares it
    bindings: tuple[str, ...] = (
        f"{PREFIX.replace('/', '.')}.*.results",
        f"{PREFIX.replace('/', '.')}.*.status",
    )

    @classmethod
    def from_urls(cls, urls: str, **options: Any) -> AmqpConfig:
        """``amqp://host:port[,amqp://host:port…]``: every node a worker may connect to."""
        found = tuple(u.strip() for u in urls.split(",") if u.strip())
        if not found:
            raise InputError("--amqp needs at least one amqp://host:port URL")
        for url in found:
            parts = urlsplit(url)
            if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
                raise InputError(f"--amqp: {url!r} must look like amqp://host:port")
            if parts.username is not None or parts.password is not None:
                raise InputError(
                    "--amqp: the URL carries credentials; URLs are visible. "
                    "Set EDGEMED_AMQP_USER and EDGEMED_AMQP_PASSWORD instead"
                )
        try:
            import pika  # noqa: F401  # checked here, before the store opens
        except ImportError as exc:
            raise InputError("--amqp needs pika: pip install 'edgemed[fleet-amqp]'") from exc
        return cls(urls=found, **options)


def routing_key_to_topic(key: str) -> str:
    """The MQTT topic behind a routing key (RabbitMQ's MQTT plugin swaps '.' and '/')."""
    return key.translate(_SWAP)


def topic_to_routing_key(name: str) -> str:
    return name.translate(_SWAP)


_SWAP = str.maketrans({".": "/", "/": "."})


class AmqpIngest(QueueIngest):
    """One ingest worker consuming from the quorum queue (pika, on its own thread); stores
    through the ingest pipeline, acknowledges after the commit."""

    SUBSCRIPTION = "amqp"

    def __init__(self, store: SqlStore, amqp: AmqpConfig, **options: Any) -> None:
        """``options``: broker, client_id, rules, events, as for :class:`QueueIngest`."""
        super().__init__(store, **options)
        self.amqp = amqp
        self._next_url = 0

    def publish(self, name: str, payload: bytes, *, retain: bool = False) -> bool:
        """Rollout commands go over the MQTT link (``FleetServer`` tries each worker): an AMQP
        publish cannot set MQTT's retained flag."""
        return False

    def _consume_forever(self) -> None:
        import pika

        while not self._stop.is_set():
            connection = None
            try:
                connection = self._connect()
                self._consume(connection)
            except (pika.exceptions.AMQPError, OSError) as exc:  # a node gone, a failover
                log.warning("fleet ingest %s: AMQP link lost: %r", self.client_id, exc)
                self._stop.wait(0.5)
            finally:
                self.connected = False
                self._held = (0, 0.0)
                if connection is not None and connection.is_open:
                    try:
                        connection.close()
                    except Exception:  # closing a broken link: nothing left to do
                        log.debug("closing the AMQP link failed", exc_info=True)

    def _connect(self) -> BlockingConnection:
        """The next node that answers (round robin over the URLs)."""
        import pika

        credentials = pika.PlainCredentials(
            os.environ.get("EDGEMED_AMQP_USER", "guest"),
            os.environ.get("EDGEMED_AMQP_PASSWORD", "guest"),
        )
        while True:
            url = self.amqp.urls[self._next_url % len(self.amqp.urls)]
            self._next_url += 1
            parts = urlsplit(url)
            params = pika.ConnectionParameters(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or (5671 if parts.scheme == "amqps" else 5672),
                credentials=credentials,
                heartbeat=10,
                blocked_connection_timeout=30,
                connection_attempts=1,
                socket_timeout=3,
                client_properties={"connection_name": self.client_id},
            )
            try:
                return pika.BlockingConnection(params)
            except pika.exceptions.AMQPConnectionError as exc:
                if self._stop.is_set():
                    raise
                log.warning("fleet ingest %s: %s does not answer: %r", self.client_id, url, exc)
                self._stop.wait(0.5)

    def _consume(self, connection: BlockingConnection) -> None:
        channel = connection.channel()
        ensure_queue(channel, self.amqp)
        channel.basic_qos(prefetch_count=self.amqp.prefetch)
        self.connected = True
        self.ready.set()
        log.info("fleet ingest %s consumes from queue %s", self.client_id, self.amqp.queue)
        batch: list[tuple[int, str, bytes]] = []
        results, since = 0, 0.0
        for method, _props, body in channel.consume(self.amqp.queue, inactivity_timeout=IDLE_S):
            if method is not None:
                n = count_results(body)
                if batch and results + n > MAX_BATCH:
                    self._flush(channel, batch)
                    batch, results = [], 0
                if not batch:
                    since = time.monotonic()  # the batch's first message: lag counts from it
                batch.append((method.delivery_tag, routing_key_to_topic(method.routing_key), body))
                results += n
                self._held = (len(batch), since)
            elif batch:  # quiet for IDLE_S: store what arrived
                self._flush(channel, batch)
                batch, results = [], 0
            if self._stop.is_set():
                break
        if batch:
            self._flush(channel, batch)
        channel.cancel()

    def _flush(self, channel: BlockingChannel, batch: list[tuple[int, str, bytes]]) -> None:
        """Store a batch, send the devices' acks, then acknowledge to RabbitMQ (all messages up
        to the last delivery tag). After a failure: requeue them, and the operator sees why."""
        at = time.monotonic()
        self._acks = []
        last = batch[-1][0]
        try:
            self._store_batch([(name, body, at) for _, name, body in batch])
        except Exception:
            log.exception("ingest failed on a batch of %d message(s); requeued", len(batch))
            channel.basic_nack(last, multiple=True, requeue=True)
            self._held = (0, 0.0)  # back in the queue: this worker holds none of them
            self._stop.wait(1.0)
            return
        for device_id, ack in self._acks:  # devices may delete these now
            channel.basic_publish(
                self.amqp.exchange, topic_to_routing_key(topic(device_id, "ack")), ack
            )
            failpoints.hit("ingest.acked")
        channel.basic_ack(last, multiple=True)
        self._held = (0, 0.0)


def ensure_queue(channel: BlockingChannel, config: AmqpConfig) -> None:
    """Declare the quorum queue and its bindings (idempotent: a queue that exists with the same
    arguments is left as it is; one declared otherwise by an operator is refused by RabbitMQ,
    and the worker says so and retries)."""
    channel.queue_declare(
        config.queue,
        durable=True,
        arguments={"x-queue-type": "quorum", "x-quorum-initial-group-size": config.replicas},
    )
    for key in config.bindings:
        channel.queue_bind(config.queue, config.exchange, routing_key=key)
