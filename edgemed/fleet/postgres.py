"""PostgreSQL dialect of the fleet store, for real deployments (``fleet serve --db postgresql://…``).

The server creates and migrates its own schema (``store._create_or_migrate``, under an advisory
lock so that several servers starting together do not race).
Concurrent ingest workers are safe: inserts rely on the (device_id, seq) primary key, and the
per-device ack high-water mark is advanced under ``SELECT … FOR UPDATE``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import SyncError
from ..wire import ResultMessage
from .store import _RESULT_COLUMNS, _RESULT_VALUES, SqlStore, _row

__all__ = ["PostgresStore"]


class PostgresStore(SqlStore):
    placeholder = "%s"
    _lock_row = " FOR UPDATE"
    _serial = "BIGSERIAL PRIMARY KEY"
    _blob = "BYTEA"

    def __init__(self, dsn: str, *, schema: str = "edgemed") -> None:
        super().__init__()
        try:
            import psycopg
        except ImportError as exc:
            raise SyncError(
                "the PostgreSQL store needs psycopg: pip install 'edgemed[fleet]'"
            ) from exc
        if not schema.isidentifier():
            raise SyncError(f"schema name {schema!r} is not a plain identifier")
        self.schema = schema
        self._errors = psycopg.Error
        try:
            self._db = psycopg.connect(dsn, autocommit=True)
            self._db.execute(f"SET search_path TO {schema}")
            self._create_or_migrate()
        except (psycopg.Error, SyncError) as exc:
            # Never echo the DSN: it may hold a password.
            raise SyncError(f"cannot open the PostgreSQL fleet store: {exc}") from exc

    def _lock_schema(self) -> None:
        # Several servers may start at once against one database: one creates, the rest wait.
        self._db.execute("SELECT pg_advisory_xact_lock(hashtext('edgemed-fleet-schema'))")
        self._db.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")

    def _rekey_results(self) -> None:
        # PostgreSQL changes a primary key in place (no copy of the table).
        self._db.execute("ALTER TABLE results ADD COLUMN IF NOT EXISTS epoch TEXT NOT NULL DEFAULT ''")
        self._db.execute("ALTER TABLE results DROP CONSTRAINT results_pkey")
        self._db.execute("ALTER TABLE results ADD PRIMARY KEY (device_id, epoch, seq)")

    def _has_table(self, name: str) -> bool:
        sql = (
            "SELECT 1 FROM information_schema.tables "
            "WHERE table_schema=current_schema() AND table_name=%s"
        )
        return self._db.execute(sql, (name,)).fetchone() is not None

    def _insert_rows(self, msgs: list[ResultMessage], now: float) -> set[tuple[str, int]]:
        # One multi-row INSERT … RETURNING per chunk: one round trip instead of one per row.
        stored: set[tuple[str, int]] = set()
        for i in range(0, len(msgs), 500):
            chunk = msgs[i : i + 500]
            values = ",".join([_RESULT_VALUES.replace("?", "%s")] * len(chunk))
            params = [v for msg in chunk for v in _row(msg, now)]
            cur = self._db.execute(
                f"INSERT INTO results({_RESULT_COLUMNS}) VALUES {values} "
                "ON CONFLICT DO NOTHING RETURNING device_id, seq",
                params,
            )
            stored.update((d, int(s)) for d, s in cur.fetchall())
        return stored

    def _advance_all(self, floors: dict[str, int], now: float) -> dict[str, int]:
        # Three statements per batch, whatever the number of devices (one per device each would
        # cost ~4 round trips per device): lock and read the devices' acks, fetch the seqs above
        # them, write the new acks.
        ids = sorted(floors)
        rows = self._db.execute(
            "INSERT INTO devices(device_id, last_seen) SELECT unnest(%s::text[]), %s "
            "ON CONFLICT(device_id) DO UPDATE SET last_seen=excluded.last_seen "
            "RETURNING device_id, acked_seq",
            (ids, now),
        ).fetchall()  # rows are locked in id order: concurrent workers cannot deadlock
        stored = {dev: int(acked) for dev, acked in rows}
        acked = {dev: max(stored[dev], floors[dev] - 1) for dev in ids}
        pending = list(ids)
        while pending:
            window = 4096
            seqs = self._db.execute(
                "SELECT r.device_id, r.seq FROM results r "
                "JOIN unnest(%s::text[], %s::bigint[]) AS f(device_id, floor) "
                "ON r.device_id=f.device_id AND r.seq>f.floor AND r.seq<=f.floor+%s "
                "ORDER BY r.device_id, r.seq",
                (pending, [acked[d] for d in pending], window),
            ).fetchall()
            start = {d: acked[d] for d in pending}
            for dev, seq in seqs:
                if seq == acked[dev] + 1:
                    acked[dev] = int(seq)
            # A device whose run filled the whole window may continue past it.
            pending = [d for d in pending if acked[d] - start[d] == window]
        changed = [d for d in ids if acked[d] != stored[d]]
        if changed:
            self._db.execute(
                "UPDATE devices SET acked_seq=v.acked FROM unnest(%s::text[], %s::bigint[]) "
                "AS v(device_id, acked) WHERE devices.device_id=v.device_id",
                (changed, [acked[d] for d in changed]),
            )
        return acked

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._db.execute(sql, params)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            with self._db.transaction():
                yield
        except self._errors as exc:
            raise SyncError(f"fleet store (PostgreSQL): {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
