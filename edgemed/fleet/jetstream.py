"""Stage 8 on a NATS cluster: ingest from a JetStream work queue instead of an MQTT ``$share``.

Devices keep speaking MQTT to the cluster's MQTT listeners. NATS maps an MQTT topic to a subject
(``edgemed/v1/bed-7/results`` -> ``edgemed.v1.bed-7.results``), and the stream this module keeps
(``EDGEMED_RESULTS``, file storage, 3 replicas, work-queue retention) captures every device's
results and status subjects. NATS's MQTT layer has no shared subscriptions, so the fleet's
workers, in every process, pull from one durable consumer instead: each message goes to one
worker, which stores it through the same pipeline as the MQTT ingest (validation, dead letters,
alert rules, the store's idempotent insert), publishes the device's ack on
``edgemed.v1.<device>.ack`` (delivered to the device's MQTT subscription), and only then
acknowledges the message to JetStream. A worker that dies holding messages leaves them
unacknowledged: JetStream redelivers them to another worker after ``ack_wait_s``, and the store
absorbs what was already committed as duplicates.

nats-py is an optional dependency: ``pip install 'edgemed[fleet-nats]'``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .. import failpoints
from ..errors import InputError
from ..wire import PREFIX, count_results
from .ingest import MAX_BATCH
from .queue_ingest import QueueIngest
from .store import SqlStore

if TYPE_CHECKING:
    from nats.aio.client import Client as Nats
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

__all__ = ["JetStreamConfig", "JetStreamIngest", "subject_to_topic", "topic_to_subject"]

log = logging.getLogger(__name__)

FETCH = MAX_BATCH  # messages per pull, stored in one transaction (a message may carry several)


@dataclass(frozen=True, kw_only=True)
class JetStreamConfig:
    """Where the fleet's workers pull results from: the cluster's NATS URLs and the stream."""

    servers: tuple[str, ...]
    stream: str = "EDGEMED_RESULTS"
    durable: str = "edgemed-fleet"  # shared by every worker of every fleet process
    replicas: int = 3
    ack_wait_s: float = 30.0  # a message a dead worker held comes back after this long
    max_ack_pending: int = 5000
    max_age_s: float = 7 * 86400.0  # devices resend anything older that they still hold
    subjects: tuple[str, ...] = field(
        default=(f"{PREFIX.replace('/', '.')}.*.results", f"{PREFIX.replace('/', '.')}.*.status")
    )

    @classmethod
    def from_urls(cls, urls: str, **options: Any) -> JetStreamConfig:
        """``nats://host:port[,nats://host:port…]``: every node a worker may connect to."""
        servers = tuple(u.strip() for u in urls.split(",") if u.strip())
        if not servers:
            raise InputError("--jetstream needs at least one nats://host:port URL")
        for url in servers:
            parts = urlsplit(url)
            if parts.scheme not in ("nats", "tls") or not parts.hostname:
                raise InputError(f"--jetstream: {url!r} must look like nats://host:port")
            if parts.password is not None:  # as for --broker: never a secret on a command line
                raise InputError("--jetstream: the URL carries a password; URLs are visible")
        try:
            import nats  # noqa: F401  # checked here, before the store opens
        except ImportError as exc:
            raise InputError(
                "--jetstream needs the NATS client: pip install 'edgemed[fleet-nats]'"
            ) from exc
        return cls(servers=servers, **options)


def topic_to_subject(name: str) -> str:
    """The NATS subject an MQTT topic of ours is published on (NATS 2.9 refuses '.' in topics;
    later servers escape it, see :func:`subject_to_topic`)."""
    return name.replace("/", ".")


def subject_to_topic(subject: str) -> str:
    """The MQTT topic behind a subject: '.' separates levels; a '.' inside a device id arrives
    escaped as '//' (nats-server 2.11+) or '/' (2.10)."""
    return "/".join(t.replace("//", ".").replace("/", ".") for t in subject.split("."))


class JetStreamIngest(QueueIngest):
    """One ingest worker pulling from the JetStream durable consumer (an asyncio loop on its
    own thread); stores through :class:`Ingest`'s pipeline, acks after the commit."""

    SUBSCRIPTION = "jetstream"

    def __init__(self, store: SqlStore, jetstream: JetStreamConfig, **options: Any) -> None:
        """``options``: broker, client_id, rules, events, as for :class:`QueueIngest`."""
        super().__init__(store, **options)
        self.jetstream = jetstream
        self._nc: Nats | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tokens: dict[str, str] = {}  # device_id -> its subject token, as NATS wrote it

    def _consume_forever(self) -> None:
        asyncio.run(self._main())

    def publish(self, name: str, payload: bytes, *, retain: bool = False) -> bool:
        """Publish on the NATS link (devices subscribed get it at QoS 0). NATS cannot retain
        for MQTT: a retained command reaches only the devices connected now."""
        nc, loop = self._nc, self._loop
        if not self.connected or nc is None or loop is None:
            return False
        subject = topic_to_subject(name)
        asyncio.run_coroutine_threadsafe(nc.publish(subject, payload), loop)
        return True

    def _topic(self, subject: str) -> str:
        name = subject_to_topic(subject)
        parts = subject.split(".")
        if len(parts) == 4:
            self._tokens[name.split("/")[2]] = parts[2]
        return name

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        nc = await self._connect()
        if nc is None:
            return
        try:
            sub = await self._bind(nc)
            while sub is not None and not self._stop.is_set():
                try:
                    msgs = await sub.fetch(FETCH, timeout=1.0)
                except asyncio.TimeoutError:
                    continue
                except Exception as exc:  # the cluster electing a leader, a node gone
                    log.warning("fleet ingest %s: pull failed: %r", self.client_id, exc)
                    await asyncio.sleep(0.5)
                    continue
                for chunk in _chunks(msgs):
                    await self._handle(nc, chunk)
        finally:
            self.connected = False
            await nc.close()

    async def _connect(self) -> Nats | None:
        import nats

        async def disconnected() -> None:
            self.connected = False
            log.warning("fleet ingest %s: NATS link lost", self.client_id)

        async def reconnected() -> None:
            self.connected = True
            log.info("fleet ingest %s: NATS link back (%s)", self.client_id, nc.connected_url)

        async def error(exc: Exception) -> None:
            log.debug("fleet ingest %s: NATS: %r", self.client_id, exc)

        while not self._stop.is_set():
            try:
                nc = await nats.connect(
                    servers=list(self.jetstream.servers),
                    name=self.client_id,
                    connect_timeout=2,
                    reconnect_time_wait=0.5,
                    max_reconnect_attempts=-1,
                    ping_interval=5,
                    disconnected_cb=disconnected,
                    reconnected_cb=reconnected,
                    error_cb=error,
                )
                self._nc = nc
                return nc
            except Exception as exc:  # no node answers yet: keep trying
                log.warning("fleet ingest %s: no NATS node answers: %r", self.client_id, exc)
                await asyncio.sleep(1.0)
        return None

    async def _bind(self, nc: Nats) -> JetStreamContext.PullSubscription | None:
        """Make sure the stream and the durable consumer exist, then bind to the consumer."""
        js = nc.jetstream(timeout=5.0)
        while not self._stop.is_set():
            try:
                await ensure_stream(js, self.jetstream)
                sub = await js.pull_subscribe_bind(self.jetstream.durable, self.jetstream.stream)
            except Exception as exc:  # no JetStream quorum yet
                log.warning("fleet ingest %s: JetStream not ready: %r", self.client_id, exc)
                await asyncio.sleep(1.0)
                continue
            self.connected = True
            log.info("fleet ingest %s pulls from %s", self.client_id, self.jetstream.stream)
            self.ready.set()
            return sub
        return None

    async def _handle(self, nc: Nats, msgs: list[Msg]) -> None:
        """Store a pull's messages, send the devices' acks, then acknowledge to JetStream."""
        at = time.monotonic()
        self._held = (len(msgs), at)
        self._acks = []
        batch = [(self._topic(m.subject), m.data, at) for m in msgs]
        try:
            await asyncio.to_thread(self._store_batch, batch)
        except Exception:  # not acknowledged: redelivered, and the operator sees why
            log.exception("ingest failed on a batch of %d message(s); not acknowledged", len(msgs))
            await self._settle(nc, msgs, stored=False)
            return
        await self._settle(nc, msgs, stored=True)

    async def _settle(self, nc: Nats, msgs: list[Msg], *, stored: bool) -> None:
        """After a commit: the devices' acks, then JetStream's; after a failure: naks. A link
        that fails meanwhile only delays: JetStream redelivers after ack_wait_s, the store
        absorbs the repeats, and devices resend what they were not told about."""
        try:
            for device_id, ack in self._acks if stored else ():  # devices may delete these now
                token = self._tokens.get(device_id, device_id)
                await nc.publish(f"{PREFIX.replace('/', '.')}.{token}.ack", ack)
                failpoints.hit("ingest.acked")
            for m in msgs:
                await (m.ack() if stored else m.nak(delay=1.0))
        except Exception as exc:
            log.warning("fleet ingest %s: acknowledgement not sent: %r", self.client_id, exc)
        finally:
            self._held = (0, 0.0)


def _chunks(msgs: list[Msg]) -> list[list[Msg]]:
    """A pull's messages in runs of at most MAX_BATCH results (one transaction each)."""
    chunks: list[list[Msg]] = [[]]
    results = 0
    for m in msgs:
        n = count_results(m.data)
        if chunks[-1] and results + n > MAX_BATCH:
            chunks.append([])
            results = 0
        chunks[-1].append(m)
        results += n
    return [c for c in chunks if c]


async def ensure_stream(js: JetStreamContext, config: JetStreamConfig) -> None:
    """Create the results stream and the shared durable consumer where they do not exist yet;
    existing ones are left as the operator configured them."""
    from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(config.stream)
    except NotFoundError:
        await js.add_stream(
            StreamConfig(
                name=config.stream,
                subjects=list(config.subjects),
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                num_replicas=config.replicas,
                max_age=config.max_age_s,
            )
        )
    try:
        await js.consumer_info(config.stream, config.durable)
    except NotFoundError:
        await js.add_consumer(
            config.stream,
            ConsumerConfig(
                durable_name=config.durable,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=config.ack_wait_s,
                max_ack_pending=config.max_ack_pending,
                num_replicas=config.replicas,
            ),
        )
