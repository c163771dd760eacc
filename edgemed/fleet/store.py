"""Stage 9: the fleet's result store. SQLite by default; PostgreSQL in ``fleet/postgres.py``.

Both run the same SQL (``ON CONFLICT`` works in SQLite >= 3.24 and PostgreSQL); a dialect only
supplies the connection, the DDL and its placeholder style.

Idempotence: results are keyed on (device_id, seq). A repeat with the same payload hash is a
duplicate (absorbed); with a different hash it is a conflict (an alarm plus a dead letter, never
an overwrite). Each device's ``acked_seq`` is the highest seq such that every seq up to it is
committed; the device's ``lowest_unacked_seq`` lets the fleet skip seqs that an earlier store
already acknowledged.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from ..errors import SyncError
from ..wire import ResultMessage

__all__ = ["InsertOutcome", "SQLiteStore", "SqlStore", "open_store"]

InsertOutcome = Literal["stored", "duplicate", "conflict"]

_TABLES = """
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    acked_seq BIGINT NOT NULL DEFAULT 0,
    boot_id TEXT,
    state TEXT,
    connection BIGINT,
    edgemed_version TEXT,
    models TEXT,
    outbox_depth BIGINT,
    last_seen DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    device_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    result_id TEXT NOT NULL,
    boot_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    model_version TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    payload_sha256 TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE TABLE IF NOT EXISTS alarms (
    id {serial},
    device_id TEXT NOT NULL,
    seq BIGINT,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    raised_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id {serial},
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload {blob} NOT NULL,
    received_at DOUBLE PRECISION NOT NULL
);
"""

_TOUCH_DEVICE = (
    "INSERT INTO devices(device_id, last_seen) VALUES (?, ?) "
    "ON CONFLICT(device_id) DO UPDATE SET last_seen=excluded.last_seen"
)


class SqlStore:
    """The store's logic over a DB-API connection; thread-safe through one lock."""

    placeholder = "?"  # dialect: parameter style
    _lock_row = ""  # dialect: row-lock suffix for SELECT (PostgreSQL: " FOR UPDATE")

    def __init__(self) -> None:
        self._lock = threading.Lock()

    # -- dialect hooks --------------------------------------------------------------------
    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        raise NotImplementedError

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        raise NotImplementedError
        yield

    def close(self) -> None:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._execute(self._sql(sql), params)

    # -- writes ---------------------------------------------------------------------------
    def insert_result(self, msg: ResultMessage) -> tuple[InsertOutcome, int]:
        """Commit one result idempotently; returns the outcome and the device's new ack seq."""
        outcomes, acked = self.insert_results([msg])
        return outcomes[0], acked[msg.device_id]

    def insert_results(
        self, msgs: list[ResultMessage]
    ) -> tuple[list[InsertOutcome], dict[str, int]]:
        """Commit many results in one transaction (one fsync).

        Returns each message's outcome and, per device, the highest contiguous seq committed:
        the ack to send once this call has returned.
        """
        now = time.time()
        floors: dict[str, int] = {}
        for msg in msgs:
            floors[msg.device_id] = max(floors.get(msg.device_id, 0), msg.lowest_unacked_seq)
        # Rows are locked in (device_id, seq) order, devices in id order: concurrent workers
        # on PostgreSQL then always take locks in the same order and cannot deadlock.
        order = sorted(range(len(msgs)), key=lambda i: (msgs[i].device_id, msgs[i].seq))
        outcomes: list[InsertOutcome] = ["stored"] * len(msgs)
        with self._lock, self._transaction():
            for i in order:
                outcomes[i] = self._insert(msgs[i], now)
            acked = {dev: self._advance(dev, low, now) for dev, low in sorted(floors.items())}
        return outcomes, acked

    def _insert(self, msg: ResultMessage, now: float) -> InsertOutcome:
        cur = self._run(
            "INSERT INTO results(device_id, seq, result_id, boot_id, model_id, model_version, "
            "kind, created_at, received_at, payload_sha256, payload) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            (
                msg.device_id, msg.seq, msg.result_id, msg.boot_id, msg.model_id,
                msg.model_version, msg.kind, msg.created_at, now, msg.payload_sha256, msg.raw,
            ),
        )  # fmt: skip
        if cur.rowcount == 1:
            return "stored"
        (stored_hash,) = self._run(
            "SELECT payload_sha256 FROM results WHERE device_id=? AND seq=?",
            (msg.device_id, msg.seq),
        ).fetchone()
        if stored_hash == msg.payload_sha256:
            return "duplicate"
        self._run(
            "INSERT INTO alarms(device_id, seq, kind, detail, raised_at) VALUES (?,?,?,?,?)",
            (
                msg.device_id, msg.seq, "seq-conflict",
                f"seq {msg.seq} repeated with a different payload (result_id {msg.result_id})", now,
            ),
        )  # fmt: skip
        # Keep the rejected payload: nothing a device sent is ever discarded unseen.
        self._run(
            "INSERT INTO dead_letters(topic, reason, payload, received_at) VALUES (?,?,?,?)",
            (f"edgemed/v1/{msg.device_id}/results", f"seq-conflict at seq {msg.seq}",
             msg.raw.encode(), now),
        )  # fmt: skip
        return "conflict"

    def _advance(self, device_id: str, lowest_unacked: int, now: float) -> int:
        self._run(_TOUCH_DEVICE, (device_id, now))
        # FOR UPDATE where supported: concurrent ingest workers serialise per device here.
        (acked,) = self._run(
            "SELECT acked_seq FROM devices WHERE device_id=?" + self._lock_row, (device_id,)
        ).fetchone()
        acked = max(int(acked), lowest_unacked - 1)  # the device no longer holds anything below
        while self._run(
            "SELECT 1 FROM results WHERE device_id=? AND seq=?", (device_id, acked + 1)
        ).fetchone():
            acked += 1
        self._run("UPDATE devices SET acked_seq=? WHERE device_id=?", (acked, device_id))
        return acked

    def update_status(self, device_id: str, status: dict[str, Any]) -> None:
        models = status.get("models")
        with self._lock, self._transaction():
            self._run(_TOUCH_DEVICE, (device_id, time.time()))
            self._run(
                "UPDATE devices SET state=?, boot_id=COALESCE(?, boot_id), "
                "connection=COALESCE(?, connection), edgemed_version=COALESCE(?, edgemed_version), "
                "models=COALESCE(?, models), outbox_depth=COALESCE(?, outbox_depth) "
                "WHERE device_id=?",
                (
                    status.get("state"), status.get("boot_id"), status.get("connection"),
                    status.get("edgemed_version"),
                    json.dumps(models) if isinstance(models, list) else None,
                    status.get("outbox_depth"), device_id,
                ),
            )  # fmt: skip

    def dead_letter(self, topic: str, reason: str, payload: bytes) -> None:
        with self._lock, self._transaction():
            self._run(
                "INSERT INTO dead_letters(topic, reason, payload, received_at) VALUES (?,?,?,?)",
                (topic, reason[:500], payload[:65536], time.time()),
            )

    # -- queries --------------------------------------------------------------------------
    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock, self._transaction():
            cur = self._run(sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def results(self, *, device_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where, params = ("WHERE device_id=?", (device_id,)) if device_id else ("", ())
        rows = self._rows(
            "SELECT device_id, seq, result_id, model_id, model_version, kind, created_at, "
            f"received_at, payload FROM results {where} "
            "ORDER BY received_at DESC, seq DESC LIMIT ?",
            (*params, limit),
        )
        for row in rows:
            row["payload"] = json.loads(row["payload"])
        return rows

    def devices(self) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM devices ORDER BY device_id")
        for row in rows:
            row["models"] = json.loads(row["models"]) if row["models"] else []
        return rows

    def alarms(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM alarms ORDER BY id")

    def dead_letters(self) -> list[dict[str, Any]]:
        return self._rows("SELECT id, topic, reason, received_at FROM dead_letters ORDER BY id")

    def count_results(self) -> int:
        return int(self._rows("SELECT COUNT(*) AS n FROM results")[0]["n"])


class SQLiteStore(SqlStore):
    """SQLite in WAL mode with synchronous=FULL: the default, zero-setup fleet store."""

    def __init__(self, path: Path | str) -> None:
        super().__init__()
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(
                _TABLES.format(serial="INTEGER PRIMARY KEY AUTOINCREMENT", blob="BLOB")
            )
        except sqlite3.DatabaseError as exc:
            raise SyncError(f"cannot open fleet store {self.path}: {exc}") from exc

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._db.execute(sql, params)

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


def open_store(db: str | Path) -> SqlStore:
    """``postgresql://…`` -> PostgresStore (needs psycopg); anything else is a SQLite path."""
    text = str(db)
    if text.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(text)
    return SQLiteStore(Path(text))
