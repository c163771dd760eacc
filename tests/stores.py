"""Fleet stores for tests: SQLite, or PostgreSQL in a throwaway schema, and the version-1
SQLite schema that migration tests start from."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from edgemed.fleet import SQLiteStore, SqlStore

__all__ = ["PG_DSN", "V1_TABLES", "test_store"]

PG_DSN = os.environ.get("EDGEMED_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

# The store's tables at version 1 (before alerts, clock_suspect and epochs).
V1_TABLES = """
CREATE TABLE devices (device_id TEXT PRIMARY KEY, acked_seq BIGINT NOT NULL DEFAULT 0,
    boot_id TEXT, state TEXT, connection BIGINT, edgemed_version TEXT, models TEXT,
    outbox_depth BIGINT, last_seen DOUBLE PRECISION NOT NULL);
CREATE TABLE results (device_id TEXT NOT NULL, seq BIGINT NOT NULL, result_id TEXT NOT NULL,
    boot_id TEXT NOT NULL, model_id TEXT NOT NULL, model_version TEXT NOT NULL,
    kind TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    received_at DOUBLE PRECISION NOT NULL, payload_sha256 TEXT NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (device_id, seq));
CREATE TABLE alarms (id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, seq BIGINT,
    kind TEXT NOT NULL, detail TEXT NOT NULL, raised_at DOUBLE PRECISION NOT NULL);
CREATE TABLE dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,
    reason TEXT NOT NULL, payload BLOB NOT NULL, received_at DOUBLE PRECISION NOT NULL);
"""


def test_store(kind: str, tmp_path: Path) -> Iterator[SqlStore]:
    """A fresh store of ``kind`` ("sqlite" or "postgres"), closed (and its schema dropped)
    after use: the body of a parametrised fixture."""
    if kind == "sqlite":
        s: SqlStore = SQLiteStore(tmp_path / "f.db")
        yield s
        s.close()
        return
    import psycopg

    from edgemed.fleet.store import PostgresStore

    schema = f"edgemed_test_{uuid.uuid4().hex[:12]}"
    s = PostgresStore(PG_DSN, schema=schema)
    yield s
    s.close()
    with psycopg.connect(PG_DSN, autocommit=True) as db:
        db.execute(f"DROP SCHEMA {schema} CASCADE")


test_store.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test
