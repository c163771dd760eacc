"""The PostgreSQL fleet store under concurrent ingest workers, end to end through mosquitto."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
import pytest
from conftest import until

import edgemed
from edgemed.config import BrokerConfig, OutboxConfig, SyncConfig
from edgemed.fleet import Ingest
from edgemed.fleet.postgres import PostgresStore
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
