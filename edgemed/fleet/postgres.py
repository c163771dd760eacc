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
from .store import _RESULT_COLUMNS, SqlStore, _row

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
            values = ",".join(["(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"] * len(chunk))
            params = [v for msg in chunk for v in _row(msg, now)]
            cur = self._db.execute(
                f"INSERT INTO results({_RESULT_COLUMNS}) VALUES {values} "
                "ON CONFLICT DO NOTHING RETURNING device_id, seq",
                params,
            )
            stored.update((d, int(s)) for d, s in cur.fetchall())
        return stored

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
