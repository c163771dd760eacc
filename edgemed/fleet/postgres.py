"""PostgreSQL dialect of the fleet store, for real deployments (``fleet serve --db postgresql://…``).

The server creates its own schema and tables (idempotent DDL, recorded in ``schema_version``).
Concurrent ingest workers are safe: inserts rely on the (device_id, seq) primary key, and the
per-device ack high-water mark is advanced under ``SELECT … FOR UPDATE``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import SyncError
from .store import _TABLES, SqlStore

__all__ = ["SCHEMA_VERSION", "PostgresStore"]

SCHEMA_VERSION = 1


class PostgresStore(SqlStore):
    placeholder = "%s"
    _lock_row = " FOR UPDATE"

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
        try:
            self._db = psycopg.connect(dsn, autocommit=True)
            self._migrate()
        except psycopg.Error as exc:
            # Never echo the DSN: it may hold a password.
            raise SyncError(f"cannot open the PostgreSQL fleet store: {exc}") from exc
        self._errors = psycopg.Error

    def _migrate(self) -> None:
        with self._db.transaction():
            self._db.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            self._db.execute(f"SET search_path TO {self.schema}")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)"
            )
            for statement in _TABLES.format(serial="BIGSERIAL PRIMARY KEY", blob="BYTEA").split(
                ";"
            ):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(
                "INSERT INTO schema_version(version) VALUES (%s) ON CONFLICT DO NOTHING",
                (SCHEMA_VERSION,),
            )

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
