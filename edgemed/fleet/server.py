"""The whole fleet manager in one process: ingest workers, alert sweeper, REST API, dashboard,
and the export workers a hospital configures (FHIR push, HL7 v2 over MLLP).

``edgemed fleet serve`` runs this. Several processes may share one PostgreSQL store and one
``$share`` group; each serves the API and shows live events from its own workers.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from ..config import BrokerConfig
from ..errors import SyncError
from .alerts import AlertRules
from .amqp import AmqpConfig, AmqpIngest
from .app import FleetApi
from .auth.guard import SessionPolicy
from .auth.headers import HttpsFiles
from .events import EventBus, announce
from .exports.worker import Exporter
from .housekeeping import RetentionWorker
from .ingest import Ingest
from .jetstream import JetStreamConfig, JetStreamIngest
from .metrics import FleetMetrics
from .presence import HEARTBEAT_S, FleetPresence
from .rollouts.bundles import BundleShelf
from .rollouts.routes import rollout_service
from .shared_events import SharedEventBus
from .store import PostgresStore, SqlStore
from .store.retention import RetentionPolicy

__all__ = ["FleetServer"]

log = logging.getLogger(__name__)

DB_TIMEOUT_S = 3.0  # /api/health answers 503 when the database is slower than this


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
        rules: AlertRules | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        exporters: tuple[Exporter, ...] = (),
        retention: RetentionPolicy | None = None,
        bundles: BundleShelf | None = None,
        https: HttpsFiles | None = None,
        sessions: SessionPolicy | None = None,
        jetstream: JetStreamConfig | None = None,
        amqp: AmqpConfig | None = None,
    ) -> None:
        """Ingest always joins a ``$share`` group, by default ``edgemed-fleet-<store id>``: the
        workers of this process and every other process on the same store split the results.
        Client ids are unique per process and worker, so no two clients ever take over each
        other's session. ``start`` refuses (FleetConflictError) if a fleet writing to another
        store already serves the broker. ``jetstream``: the workers pull from a NATS JetStream
        consumer instead (fleet/jetstream.py), ``amqp`` from a RabbitMQ quorum queue
        (fleet/amqp.py); presence still uses ``broker`` (an MQTT port)."""
        if jetstream is not None and amqp is not None:
            raise ValueError("ingest from JetStream or from AMQP, not both")
        if workers < 1:
            raise ValueError("need at least one ingest worker")
        self.store = store
        self.broker = broker
        self.jetstream = jetstream
        self.amqp = amqp
        self.rules = rules or AlertRules()
        # On PostgreSQL, every fleet process's dashboards see every process's events.
        self.events = _event_bus(store)
        self.group = shared_group or f"edgemed-fleet-{store.store_id}"
        self.presence = FleetPresence(
            broker, store_id=store.store_id, group=self.group, heartbeat_s=heartbeat_s
        )
        self.presence.on_conflict = self._step_down
        # One set of Prometheus figures per process: its ingest workers and its API
        self.metrics = FleetMetrics(store)
        self.workers = [self._ingest_worker(i) for i in range(workers)]
        self.rollouts = rollout_service(store, store.store_id, shelf=bundles, publish=self._publish)
        self.api = self._api(token, host, port, https, sessions)
        self._stop = threading.Event()
        self.exporters = exporters
        # Retention (fleet serve --retain-days …): old rows deleted in batches, hourly.
        self.retention = (
            RetentionWorker(store, retention) if retention and retention.active else None
        )
        self._make_threads()
        self._db_probe = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgemed-fleet-db")

    def _make_threads(self) -> None:
        # Each export target drains on its own thread: a target that is down only delays
        # itself (its results stay pending in export_log, retried with backoff).
        self._export_threads = [
            threading.Thread(
                target=e.run, args=(self._stop,), name=f"edgemed-export-{i}", daemon=True
            )
            for i, e in enumerate(self.exporters)
        ]
        self._sweeper = threading.Thread(
            target=self._sweep, name="edgemed-fleet-sweep", daemon=True
        )
        self._retention_thread = threading.Thread(
            target=self.retention.run if self.retention else lambda _stop: None,
            args=(self._stop,), name="edgemed-fleet-retention", daemon=True,
        )  # fmt: skip

    def _api(
        self,
        token: str,
        host: str,
        port: int,
        https: HttpsFiles | None,
        sessions: SessionPolicy | None,
    ) -> FleetApi:
        """The REST API and dashboard, with this process's health, figures and live events."""
        return FleetApi(
            self.store,
            token=token,
            host=host,
            port=port,
            events=self.events,
            stats=self.stats,
            health=self.health,
            metrics=self.metrics,
            rollouts=self.rollouts,
            https=https,
            sessions=sessions,
        )

    def _ingest_worker(self, i: int) -> Ingest:
        prefix = f"edgemed-fleet-{self.store.store_id[:8]}-{self.presence.process_id}"
        if self.jetstream is not None:  # a JetStream work queue instead of a $share group
            worker: Ingest = JetStreamIngest(
                self.store, self.jetstream, broker=self.broker, client_id=f"{prefix}-{i}",
                rules=self.rules, events=self.events,
            )  # fmt: skip
            worker.metrics = self.metrics
            return worker
        if self.amqp is not None:  # a RabbitMQ quorum queue instead of a $share group
            worker = AmqpIngest(
                self.store, self.amqp, broker=self.broker, client_id=f"{prefix}-{i}",
                rules=self.rules, events=self.events,
            )  # fmt: skip
            worker.metrics = self.metrics
            return worker
        worker = Ingest(
            self.store,
            self.broker,
            client_id=f"{prefix}-{i}",
            shared_group=self.group,
            rules=self.rules,
            events=self.events,
        )
        worker.metrics = self.metrics
        return worker

    def start(self, *, ready_timeout: float = 20.0) -> FleetServer:
        """Check the broker for another store's fleet, subscribe every worker, then announce
        this process (devices replay their backlog at once). Raises FleetConflictError or
        SyncError (broker silent for ``ready_timeout``), leaving nothing running."""
        try:
            if isinstance(self.events, SharedEventBus):
                self.events.start()
            self.presence.check(timeout=ready_timeout)
            for worker in self.workers:
                worker.start()
            if not all(w.ready.wait(ready_timeout) for w in self.workers):
                raise SyncError(
                    f"fleet ingest could not subscribe at the broker within {ready_timeout:.0f} s"
                )
            self.presence.announce()
            self.api.start()
        except BaseException:
            self._stop_links()
            raise
        self._sweeper.start()
        threading.Thread(
            target=self._drive_rollouts, name="edgemed-fleet-rollouts", daemon=True
        ).start()
        for thread in self._export_threads:
            thread.start()
        if self.retention is not None:
            self._retention_thread.start()
        return self

    def _step_down(self) -> None:
        """Another store's fleet won the broker: stop ingesting now (from a thread of our own:
        this is called on the presence link's network thread). Health says why (503)."""
        threading.Thread(target=self._stop_workers, name="edgemed-fleet-step-down").start()

    def _stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()

    def _stop_links(self) -> None:
        self.presence.stop()
        for worker in self.workers:
            worker.stop()
        if isinstance(self.events, SharedEventBus):
            self.events.close()

    def stop(self) -> None:
        self._stop.set()
        self.api.stop()
        self._stop_links()
        if self._sweeper.is_alive():
            self._sweeper.join(timeout=5.0)
        for thread in [*self._export_threads, self._retention_thread]:
            if thread.is_alive():
                thread.join(timeout=5.0)
        self._db_probe.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> FleetServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, body) for /api/health: unhealthy when no ingest worker holds a broker
        link, the database does not answer within DB_TIMEOUT_S, a worker thread died, or
        another store's fleet serves the broker. Answers within DB_TIMEOUT_S in every case."""
        problems: list[str] = []
        linked = sum(1 for w in self.workers if w.connected)
        if linked == 0:
            problems.append("no ingest worker is connected to the broker")
        problems += [w.failure for w in self.workers if w.failure]
        if self.presence.conflict:
            problems.append(self.presence.conflict)
        database = self._database_health()
        if not database["ok"]:
            problems.append(f"database: {database['error']}")
        lags = [w.lag() for w in self.workers]
        body: dict[str, Any] = {
            "status": "ok" if not problems else "unavailable",
            "problems": problems,
            "broker": {
                "host": self.broker.host,
                "port": self.broker.port,
                "workers_connected": linked,
                "workers": len(self.workers),
                "subscription": [w.subscription for w in self.workers],
                "group": self.group,
            },
            "database": database,
            "ingest": {
                "queued": sum(n for n, _ in lags),
                "lag_s": round(max((age for _, age in lags), default=0.0), 3),
            },
            "dead_letters": {
                "last_60_s": sum(w.dead_letters_since(60.0) for w in self.workers),
                "last_15_min": sum(w.dead_letters_since(900.0) for w in self.workers),
            },
            # Counted only when the database just answered: health never hangs.
            "exports": self._export_health(count=database["ok"]),
            "fleet": {
                "store_id": self.store.store_id,
                "process_id": self.presence.process_id,
                "other_processes_online": sorted(
                    p for p, s in self.presence.others.items() if s.state == "online"
                ),
            },
        }
        return not problems, body

    def _database_health(self) -> dict[str, Any]:
        """A round trip to the database, within DB_TIMEOUT_S: ok, how long, what failed."""
        started = time.monotonic()
        try:
            self._db_probe.submit(self.store.ping).result(timeout=DB_TIMEOUT_S)
            database: dict[str, Any] = {"ok": True}
        except FutureTimeout:
            database = {"ok": False, "error": f"no answer within {DB_TIMEOUT_S:.0f} s"}
        except Exception as exc:  # any driver error: the message, never a traceback
            database = {"ok": False, "error": str(exc)[:300]}
        database["ms"] = round((time.monotonic() - started) * 1000.0, 1)
        return database

    def _export_health(self, *, count: bool) -> list[dict[str, Any]]:
        """Each export target's worker; its settled counts only when ``count``."""
        return [
            {
                "target": e.target,
                "running": t.is_alive(),
                "settled": e.store.export_counts(e.target) if count else None,
                "failures": e.failures,
                "last_error": e.last_error[:300],
            }
            for e, t in zip(self.exporters, self._export_threads, strict=True)
        ]

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

    def _publish(self, name: str, payload: bytes) -> bool:
        """A rollout command (fleet/rollouts/), retained on a device's cmd topic, on the first
        ingest worker whose broker link is up (False: none is)."""
        return any(w.publish(name, payload, retain=True) for w in self.workers)

    def _drive_rollouts(self) -> None:
        """Every second: command the next wave, time out silent devices, halt on failures."""
        while not self._stop.wait(1.0):
            try:
                self.rollouts.engine.tick()
            except Exception:  # a store outage must not end rollouts: try again next second
                log.exception("rollout tick failed")

    def _sweep(self) -> None:
        """Every second: mark devices silent past their heartbeat "unknown". Every period:
        raise ``device-offline`` for devices whose death notice is older than the limit, and
        escalate urgent alert episodes unacknowledged for ``ack_timeout_s``."""
        period = min(30.0, self.rules.offline_after_s / 4, self.rules.ack_timeout_s / 4)
        next_sweep = time.monotonic() + period
        while not self._stop.wait(1.0):
            try:
                for device_id in self.store.expire_silent(time.time()):
                    log.warning("device %s silent past its heartbeat: state unknown", device_id)
                    self.events.publish(
                        {"type": "device", "device_id": device_id, "state": "unknown"}
                    )
            except Exception:
                log.exception("presence expiry failed")
            if time.monotonic() < next_sweep:
                continue
            next_sweep = time.monotonic() + period
            now = time.time()
            try:
                overdue = self.store.offline_since(now - self.rules.offline_after_s)
                alerts = [
                    self.rules.offline(d["device_id"], d["state_since"], now) for d in overdue
                ]
                announce(self.store.raise_alerts(alerts), self.events)
                # Urgent alert episodes nobody acknowledged in time become emergencies.
                escalated = self.store.escalate_unacknowledged(now, self.rules.ack_timeout_s)
                announce(escalated, self.events)
            except Exception:  # a store outage must not end the sweeper: try again next period
                log.exception("offline sweep failed")


def _event_bus(store: Any) -> EventBus:
    """The events of this process alone, or shared through PostgreSQL between the fleet
    processes of one store (fleet/shared_events.py)."""
    if isinstance(store, PostgresStore):
        return SharedEventBus(store.dsn, store.store_id)
    return EventBus()
