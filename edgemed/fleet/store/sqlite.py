"""SQLite dialect of the fleet store: the default, zero-setup store (``fleet serve --db FILE``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ...errors import SyncError
from ..auth.audit import sqlite_audit_guards
from .schema import TABLES
from .sql import SqlStore

__all__ = ["BUSY_TIMEOUT_S", "SQLiteStore"]

BUSY_TIMEOUT_S = 30.0  # SQLite: how long a writer waits for another process's lock


class SQLiteStore(SqlStore):
    """SQLite in WAL mode with synchronous=FULL: the default, zero-setup fleet store."""

    def __init__(self, path: Path | str) -> None:
        super().__init__()
        self.path = Path(path)
        try:
            # Several processes may open one new store at once (fleet serve x 3): each waits
            # for the others' schema migration (busy timeout), up to BUSY_TIMEOUT_S.
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._create_or_migrate()
        except sqlite3.DatabaseError as exc:
            raise SyncError(f"cannot open fleet store {self.path}: {exc}") from exc

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._db.execute(sql, params)

    def _has_table(self, name: str) -> bool:
        sql = "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?"
        return self._db.execute(sql, (name,)).fetchone() is not None

    def _audit_guards(self) -> list[str]:
        return sqlite_audit_guards()

    def _rekey_results(self) -> None:
        # SQLite cannot change a primary key: rebuild the table (rename, create, copy, drop),
        # inside the migration's transaction. Every column the old table has is copied; the
        # new one gets its definition from TABLES, epoch "" by default.
        columns = ", ".join(row[1] for row in self._db.execute("PRAGMA table_info(results)"))
        self._db.execute("ALTER TABLE results RENAME TO results_before_epochs")
        (create,) = [s for s in TABLES.split(";") if "TABLE IF NOT EXISTS results (" in s]
        self._db.execute(self._format(create))
        self._db.execute(
            f"INSERT INTO results({columns}) SELECT {columns} FROM results_before_epochs"
        )
        self._db.execute("DROP TABLE results_before_epochs")  # with its index; TABLES remakes it

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()
