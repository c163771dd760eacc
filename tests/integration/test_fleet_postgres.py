"""The PostgreSQL fleet store under concurrent ingest workers, end to end through mosquitto."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from api_client import call
from conftest import until

import edgemed
from edgemed.config import BrokerConfig, OutboxConfig, SyncConfig
from edgemed.fleet import Ingest
from edgemed.fleet.broker import free_port
from edgemed.fleet.store import PostgresStore
from edgemed.sync import Outbox, Publisher

pytestmark = [pytest.mark.broker, pytest.mark.postgres]
PG_DSN = os.environ.get("EDGEMED_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def test_two_ingest_workers_one_postgres_store(
    tmp_path: Path, mosquitto: object, encoder: edgemed.Pipeline
) -> None:
    """Both workers receive every result (plain subscriptions) and race to insert it: each seq
    must be stored once, duplicates absorbed, and the ack high-water mark never go wrong."""
    schema = f"edgemed_test_{uuid.uuid4().hex[:12]}"
    stores = [PostgresStore(PG_DSN, schema=schema) for _ in range(2)]
    cfg = BrokerConfig(port=mosquitto.port)  # type: ignore[attr-defined]
    sync = SyncConfig(inflight_window=128, reconnect_min_s=0.1, reconnect_max_s=0.5)
    outbox = Outbox(OutboxConfig(path=tmp_path / "dev.db", device_id="bed-pg"))
    results = [encoder(f"postgres test {i}") for i in range(5)]
    try:
        workers = [
            Ingest(store, cfg, client_id=f"fleet-worker-{i}", sync=sync)
            for i, store in enumerate(stores)
        ]
        for w in workers:
            w.start()
        assert all(w.ready.wait(10) for w in workers)
        with Publisher(outbox, cfg, sync) as pub:
            assert until(lambda: pub.connected, 10)
            for i in range(300):
                pub.submit(results[i % len(results)])
            assert pub.wait_drained(60), outbox.stats()
        for w in workers:
            w.stop()
        stored = sum(w.counts["stored"] for w in workers)
        absorbed = sum(w.counts["duplicate"] for w in workers)
        assert stores[0].count_results() == 300 and stored == 300
        assert absorbed >= 300  # every result reached both workers; the loser absorbed it
        assert stores[0].alerts(rule="seq-conflict") == []
        assert stores[0].devices()[0]["acked_seq"] == 300
        seqs = sorted(r["seq"] for r in stores[0].results(limit=1000))
        assert seqs == list(range(1, 301))
    finally:
        for store in stores:
            store.close()
        with psycopg.connect(PG_DSN, autocommit=True) as db:
            db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def health(server: Any) -> int:
    """The status code of the fleet's /api/health."""
    return call(f"http://127.0.0.1:{server.api.port}", "/api/health")[0]


class PrivatePostgres:
    """A PostgreSQL server of our own on a free loopback port, that a test may stop and start
    (the shared one on 5432 must stay up). As root, the server runs as user postgres."""

    def __init__(self) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not bins:
            pytest.skip("PostgreSQL server binaries not installed")
        self.bin = bins[-1].parent
        self.dir = Path(tempfile.mkdtemp(prefix="edgemed-pg-"))
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", f"{self.dir}/data", "-A", "trust", "-U", "postgres")
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / tool), *args], check=True, capture_output=True
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", f"{self.dir}/data", "-o", options, "-l",
                  f"{self.dir}/log", "-w", "start")  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", f"{self.dir}/data", "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_health_503_while_the_database_is_down_and_store_reconnects(
    tmp_path: Path, mosquitto: object, encoder: edgemed.Pipeline
) -> None:
    """PostgreSQL stops: /api/health turns 503 within 5 s; it starts again: the store
    reconnects by itself (one connection, no pool) and results flow again."""
    from edgemed.fleet.server import FleetServer

    pg = PrivatePostgres()
    pg.start()
    cfg = BrokerConfig(port=mosquitto.port)  # type: ignore[attr-defined]

    try:
        store = PostgresStore(pg.dsn)
        sync = SyncConfig(resend_initial_s=0.5, resend_max_s=2.0, reconnect_max_s=0.5)
        outbox = Outbox(OutboxConfig(path=tmp_path / "dev.db", device_id="bed-pgdown"))
        result = encoder("database outage test")
        with FleetServer(store, cfg, token="pg-health-token-0123456789", port=0) as server:
            assert health(server) == 200
            pg.stop()
            down = time.monotonic()
            assert until(lambda: health(server) == 503, 5.0)
            print(f"health 503 {time.monotonic() - down:.2f} s after PostgreSQL stopped")
            with Publisher(outbox, cfg, sync) as pub:
                seqs = [pub.submit(result) for _ in range(20)]  # not storable now: kept
                time.sleep(1.0)
                assert outbox.stats().depth == 20
                pg.start()
                assert until(lambda: health(server) == 200, 15.0)
                assert pub.wait_drained(30), outbox.stats()
            assert sorted(r["seq"] for r in store.results(limit=100)) == seqs
        store.close()
    finally:
        pg.remove()


def test_store_reconnects_after_its_backend_is_terminated(
    tmp_path: Path, mosquitto: object
) -> None:
    """A PostgreSQL restart (here: our backend terminated) must not leave the fleet broken for
    good: the broken connection fails one call, and the next reconnects."""
    from edgemed.errors import SyncError
    from edgemed.fleet.server import FleetServer

    schema = f"edgemed_test_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(PG_DSN, schema=schema)
    cfg = BrokerConfig(port=mosquitto.port)  # type: ignore[attr-defined]

    try:
        with FleetServer(store, cfg, token="pg-health-token-0123456789", port=0) as server:
            assert health(server) == 200
            with psycopg.connect(PG_DSN, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name='edgemed-fleet' AND datname=current_database()"
                )
            with pytest.raises(SyncError):  # the broken connection shows once ...
                store.ping()
            store.ping()  # ... and the next use reconnects
            assert health(server) == 200
            assert store.count_results() == 0
    finally:
        store.close()
        with psycopg.connect(PG_DSN, autocommit=True) as db:
            db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
