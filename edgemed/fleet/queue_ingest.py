"""An ingest worker fed by a broker cluster's own work queue instead of an MQTT ``$share``.

Where the cluster's MQTT layer has no shared subscriptions (NATS, RabbitMQ), every fleet worker
consumes one replicated queue the cluster keeps (a JetStream consumer: fleet/jetstream.py; an
AMQP quorum queue: fleet/amqp.py). What such a worker does is the same: one thread of its own
takes a batch, stores it through :class:`Ingest`'s pipeline, collects the devices' acks while
it does, and only after the commit sends them and acknowledges the batch to the engine.
"""

from __future__ import annotations

import threading
import time

from ..config import BrokerConfig
from .alerts import AlertRules
from .events import EventBus
from .ingest import Ingest
from .store import SqlStore

__all__ = ["QueueIngest"]


class QueueIngest(Ingest):
    """Base of the work-queue workers: ``_consume_forever`` is the subclass's thread body."""

    SUBSCRIPTION = "queue"  # what health reports as the worker's subscription

    def __init__(
        self,
        store: SqlStore,
        *,
        broker: BrokerConfig | None = None,
        client_id: str | None = None,
        rules: AlertRules | None = None,
        events: EventBus | None = None,
    ) -> None:
        super().__init__(
            store, broker or BrokerConfig(), client_id=client_id, rules=rules, events=events
        )
        self.subscription = self.SUBSCRIPTION
        self._acks: list[tuple[str, bytes]] = []  # device acks of the batch being stored
        self._held = (0, 0.0)  # messages taken and not yet acknowledged, since when

    def _consume_forever(self) -> None:
        raise NotImplementedError

    def start(self) -> QueueIngest:
        self._thread = threading.Thread(
            target=self._guarded,
            args=(self._consume_forever,),
            name=f"edgemed-fleet-{self.SUBSCRIPTION}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)

    def lag(self) -> tuple[int, float]:
        count, since = self._held
        return count, time.monotonic() - since if count else 0.0

    def _send_ack(self, device_id: str, ack: bytes) -> None:
        self._acks.append((device_id, ack))  # sent by the subclass once the batch is stored
