"""The whole fleet manager in one process: ingest workers, alert sweeper, REST API, dashboard.

``edgemed fleet serve`` runs this. Several processes may share one PostgreSQL store and one
``$share`` group; each serves the API and shows live events from its own workers.
"""

from __future__ import annotations

import logging
import os
import statistics
import threading
import time
from typing import Any

from ..config import BrokerConfig
from .alerts import AlertRules
from .app import FleetApi
from .events import EventBus, announce
from .ingest import Ingest
from .store import SqlStore

__all__ = ["FleetServer"]

log = logging.getLogger(__name__)


class FleetServer:
    def __init__(
        self,
        store: SqlStore,
        broker: BrokerConfig,
        *,
        token: str,
        host: str = "127.0.0.1",
        port: int = 8080,
        workers: int = 1,
        shared_group: str | None = None,
        client_id_prefix: str | None = None,
        rules: AlertRules | None = None,
    ) -> None:
        """``workers`` > 1 implies a ``$share`` group (default ``edgemed-fleet``). Group members
        get client ids unique to this process, so several processes can join one group."""
        if workers < 1:
            raise ValueError("need at least one ingest worker")
        self.store = store
        self.rules = rules or AlertRules()
        self.events = EventBus()
        group = shared_group or ("edgemed-fleet" if workers > 1 else None)
        prefix = client_id_prefix or (
            f"edgemed-fleet-ingest-{os.getpid()}" if group else "edgemed-fleet-ingest"
        )
        self.workers = [
            Ingest(
                store,
                broker,
                client_id=f"{prefix}-{i}" if group else prefix,
                shared_group=group,
                rules=self.rules,
                events=self.events,
            )
            for i in range(workers)
        ]
        self.api = FleetApi(
            store, token=token, host=host, port=port, events=self.events, stats=self.stats
        )
        self._stop = threading.Event()
        self._sweeper = threading.Thread(
            target=self._sweep, name="edgemed-fleet-sweep", daemon=True
        )

    def start(self) -> FleetServer:
        for worker in self.workers:
            worker.start()
        self.api.start()
        self._sweeper.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.api.stop()
        for worker in self.workers:
            worker.stop()
        self._sweeper.join(timeout=5.0)

    def __enter__(self) -> FleetServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        latencies: list[float] = []
        for worker in self.workers:
            for key, value in worker.counts.items():
                counts[key] = counts.get(key, 0) + value
            latencies += list(worker.commit_latency_ms)
        body: dict[str, Any] = {"workers": len(self.workers), "counts": counts}
        if len(latencies) >= 2:
            cuts = statistics.quantiles(latencies, n=100)
            body["commit_latency_ms"] = {"p50": round(cuts[49], 2), "p99": round(cuts[98], 2)}
        return body

    def _sweep(self) -> None:
        """Raise ``device-offline`` for devices whose death notice is older than the limit."""
        period = min(30.0, self.rules.offline_after_s / 4)
        while not self._stop.wait(period):
            now = time.time()
            try:
                overdue = self.store.offline_since(now - self.rules.offline_after_s)
                alerts = [
                    self.rules.offline(d["device_id"], d["state_since"], now) for d in overdue
                ]
                announce(self.store.raise_alerts(alerts), self.events)
            except Exception:  # a store outage must not end the sweeper: try again next period
                log.exception("offline sweep failed")
