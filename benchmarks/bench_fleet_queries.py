"""Every list query the fleet API documents, timed on a store holding N results.

A fresh store (SQLite in a temporary folder, or PostgreSQL in a throwaway schema with
``--postgres DSN``) is filled with N results from 200 devices, 5 models and 4 kinds received
over the last 30 days (one SQL statement, not through ingest), N/10 alerts and N/100 dead
letters, and N audit rows (50 users, a request every 2.6 s); then each query (the API's filters: none, device, model, a model matching nothing,
kind, a time range, device and time; alerts by device, rule, open, time, a deep cursor page,
the open list's second page; dead letters by device; the audit export from the middle, by
actor, by action and time) runs
``--runs`` times through the store, first page of 100 rows. Reported: p50 and worst ms per
query. ``--without-indexes`` drops schema 8's list indexes first: the store as it was before.
Issue 25's target: p50 <= 50 ms for every list query with 1,000,000 results.

Usage: python benchmarks/bench_fleet_queries.py [N] [--runs R] [--postgres DSN]
       [--without-indexes]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _machine import machine_info

from edgemed.fleet.store import PostgresStore, SQLiteStore, SqlStore
from edgemed.fleet.store.dead_letters import DEAD_LETTER_DDL
from edgemed.fleet.store.queries import alert_cursor
from edgemed.fleet.store.schema import LIST_INDEXES

_RESULTS = """
INSERT INTO results(device_id, seq, result_id, boot_id, model_id, model_version, kind,
    created_at, received_at, payload_sha256, payload, clock_suspect, epoch)
SELECT 'dev-' || (i % 200), i, 'r' || i, 'b', 'model-' || (i % 5), '1',
    CASE i % 4 WHEN 0 THEN 'news2' WHEN 1 THEN 'seizure-probability'
        WHEN 2 THEN 'text-embedding' ELSE 'sleep-stages' END,
    {now} - (i * 2592000.0 / {n}), {now} - (i * 2592000.0 / {n}), 'h', '{{"seq": 1}}', 0, ''
FROM {series}
"""
_ALERTS = """
INSERT INTO alerts(device_id, seq, rule, severity, detail, raised_at, acked_at)
SELECT 'dev-' || (i % 200), i, CASE i % 3 WHEN 0 THEN 'seizure' ELSE 'news2-urgent' END,
    'urgent', 'd', {now} - i, CASE WHEN i % 50 = 0 THEN NULL ELSE {now} END
FROM {series}
"""
_AUDIT = """
INSERT INTO audit_log(at, actor, actor_kind, action, target, outcome, remote)
SELECT {now} - ({n} - i) * 2.6, 'user-' || (i % 50), 'user',
    CASE i % 3 WHEN 0 THEN 'GET /api/results' WHEN 1 THEN 'GET /api/alerts'
        ELSE 'POST /api/alerts/{{alert_id}}/ack' END, NULL, 'allowed', '10.0.0.' || (i % 20)
FROM {series}
"""
_DEAD = """
INSERT INTO dead_letters(topic, device_id, reason, reason_class, payload, size, sha256,
    received_at)
SELECT 'edgemed/v1/dev-' || (i % 200) || '/results', 'dev-' || (i % 200), 'bad', 'bad',
    {blob}, 3, 'h', {now} - i
FROM {series}
"""


def _open(dsn: str | None, folder: Path) -> tuple[SqlStore, Callable[[], None]]:
    if dsn is None:
        store: SqlStore = SQLiteStore(folder / "bench.db")
        return store, store.close
    schema = f"edgemed_bench_{uuid.uuid4().hex[:8]}"
    pg = PostgresStore(dsn, schema=schema)

    def drop() -> None:
        pg._execute(f"DROP SCHEMA {schema} CASCADE")
        pg.close()

    return pg, drop


def _fill(store: SqlStore, n: int, *, indexes: bool) -> float:
    started = time.perf_counter()
    sqlite = store.placeholder == "?"
    now = time.time()
    if getattr(store, "partitioned", False):  # month partitions for the 30 days filled in
        with store._lock, store._transaction():
            store.ensure_partitions(now - 31 * 86400.0)  # type: ignore[attr-defined]
    for sql, count in ((_RESULTS, n), (_ALERTS, n // 10), (_DEAD, n // 100), (_AUDIT, n)):
        series = (
            f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {count}) "
            "SELECT i FROM s) AS g"
            if sqlite
            else f"generate_series(1, {count}) AS g(i)"
        )
        blob = "X'6e6f74'" if sqlite else "'\\x6e6f74'::bytea"
        text = sql.format(now=now, n=n, series=series, blob=blob)
        with store._lock, store._transaction():
            store._execute(text if sqlite else text.replace("%", "%%"))
    if not indexes:
        with store._lock, store._transaction():
            for statement in (*LIST_INDEXES.split(";"), *DEAD_LETTER_DDL.split(";")):
                if "CREATE INDEX" in statement:
                    name = statement.split("EXISTS")[1].split()[0]
                    store._execute(f"DROP INDEX {name}")
    with store._lock, store._transaction():
        store._execute("ANALYZE")
    return time.perf_counter() - started


def _queries(now: float, n: int) -> dict[str, Callable[[SqlStore], Any]]:
    day = 86400.0
    return {
        "results": lambda s: s.results(),
        "results device": lambda s: s.results(device_id="dev-7"),
        "results model": lambda s: s.results(model_id="model-3"),
        "results model matching nothing": lambda s: s.results(model_id="nothing"),
        "results kind": lambda s: s.results(kind="sleep-stages"),
        "results since/until (a day, 10 days ago)": lambda s: s.results(
            since=now - 11 * day, until=now - 10 * day
        ),
        "results device since a day": lambda s: s.results(device_id="dev-7", since=now - day),
        "alerts": lambda s: s.alerts(),
        "alerts open": lambda s: s.alerts(open_only=True),
        "alerts device": lambda s: s.alerts(device_id="dev-7"),
        "alerts rule": lambda s: s.alerts(rule="seizure"),
        "alerts since a day": lambda s: s.alerts(since=now - day),
        "alerts page after 50,000 rows": lambda s: s.alerts(
            after=(s.alerts(limit=1)[0]["id"] - 50_000,)
        ),
        "alerts open, page 2": lambda s: s.alerts(
            open_only=True,
            after=alert_cursor(s.alerts(open_only=True, limit=100)[-1], open_only=True),
        ),
        "dead letters device": lambda s: s.dead_letters(device_id="dev-7"),
        "audit SIEM pull from the middle": lambda s: s.audit_rows(after=n // 2, limit=500),
        "audit actor": lambda s: s.audit_rows(actor="user-7", limit=500),
        "audit action since an hour": lambda s: s.audit_rows(
            action="GET /api/alerts", since=now - 3600
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", type=int, nargs="?", default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--postgres", metavar="DSN", default=None)
    parser.add_argument("--without-indexes", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store, close = _open(args.postgres, Path(folder))
        try:
            fill_s = _fill(store, args.rows, indexes=not args.without_indexes)
            partitioned = bool(getattr(store, "partitioned", False))
            figures: dict[str, dict[str, float]] = {}
            for name, query in _queries(time.time(), args.rows).items():
                times = []
                for _ in range(args.runs):
                    started = time.perf_counter()
                    query(store)
                    times.append((time.perf_counter() - started) * 1000.0)
                figures[name] = {
                    "p50_ms": round(statistics.median(times), 2),
                    "max_ms": round(max(times), 2),
                }
        finally:
            close()
    print(json.dumps({
        "machine": machine_info(),
        "store": "postgresql" if args.postgres else "sqlite",
        "results_partitioned_by_month": partitioned,
        "results": args.rows,
        "list_indexes": not args.without_indexes,
        "fill_s": round(fill_s, 1),
        "queries": figures,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
