"""Stage 9: the fleet's result store (SQLite, WAL). PostgreSQL arrives with the fleet issue.

Idempotence: results are keyed on (device_id, seq). A repeat with the same payload hash is a
duplicate (absorbed); with a different hash it is a conflict (stored as an alarm, never overwrites).
Each device's ``acked_seq`` is the highest seq such that every seq up to it is committed; the
device's ``lowest_unacked_seq`` lets the fleet skip seqs that an earlier store already acknowledged.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Literal

from ..errors import SyncError
from ..wire import ResultMessage

__all__ = ["InsertOutcome", "SQLiteStore"]

InsertOutcome = Literal["stored", "duplicate", "conflict"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    acked_seq INTEGER NOT NULL DEFAULT 0,
    boot_id TEXT,
    state TEXT,
    connection INTEGER,
    edgemed_version TEXT,
    models TEXT,
    outbox_depth INTEGER,
    last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    result_id TEXT NOT NULL,
    boot_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    model_version TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL,
    received_at REAL NOT NULL,
    payload_sha256 TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE TABLE IF NOT EXISTS alarms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    seq INTEGER,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    raised_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload BLOB NOT NULL,
    received_at REAL NOT NULL
);
"""


class SQLiteStore:
    """Thread-safe store; one writer connection guarded by a lock (SQLite has one writer anyway)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise SyncError(f"cannot open fleet store {self.path}: {exc}") from exc

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
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                outcomes = [self._insert(msg, now) for msg in msgs]
                floors: dict[str, int] = {}
                for msg in msgs:
                    floors[msg.device_id] = max(
                        floors.get(msg.device_id, 0), msg.lowest_unacked_seq
                    )
                acked = {dev: self._advance(dev, low, now) for dev, low in floors.items()}
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return outcomes, acked

    def _insert(self, msg: ResultMessage, now: float) -> InsertOutcome:
        cur = self._db.execute(
            "INSERT OR IGNORE INTO results(device_id, seq, result_id, boot_id, model_id, "
            "model_version, kind, created_at, received_at, payload_sha256, payload) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                msg.device_id,
                msg.seq,
                msg.result_id,
                msg.boot_id,
                msg.model_id,
                msg.model_version,
                msg.kind,
                msg.created_at,
                now,
                msg.payload_sha256,
                msg.raw,
            ),
        )
        if cur.rowcount == 1:
            return "stored"
        (stored_hash,) = self._db.execute(
            "SELECT payload_sha256 FROM results WHERE device_id=? AND seq=?",
            (msg.device_id, msg.seq),
        ).fetchone()
        if stored_hash == msg.payload_sha256:
            return "duplicate"
        self._db.execute(
            "INSERT INTO alarms(device_id, seq, kind, detail, raised_at) VALUES (?,?,?,?,?)",
            (
                msg.device_id,
                msg.seq,
                "seq-conflict",
                f"seq {msg.seq} repeated with a different payload (result_id {msg.result_id})",
                now,
            ),
        )
        # Keep the rejected payload: nothing a device sent is ever discarded unseen.
        self._db.execute(
            "INSERT INTO dead_letters(topic, reason, payload, received_at) VALUES (?,?,?,?)",
            (
                f"edgemed/v1/{msg.device_id}/results",
                f"seq-conflict at seq {msg.seq}",
                msg.raw.encode(),
                now,
            ),
        )
        return "conflict"

    def _advance(self, device_id: str, lowest_unacked: int, now: float) -> int:
        self._db.execute(
            "INSERT INTO devices(device_id, last_seen) VALUES (?, ?) "
            "ON CONFLICT(device_id) DO UPDATE SET last_seen=excluded.last_seen",
            (device_id, now),
        )
        (acked,) = self._db.execute(
            "SELECT acked_seq FROM devices WHERE device_id=?", (device_id,)
        ).fetchone()
        acked = max(int(acked), lowest_unacked - 1)  # the device no longer holds anything below
        while self._db.execute(
            "SELECT 1 FROM results WHERE device_id=? AND seq=?", (device_id, acked + 1)
        ).fetchone():
            acked += 1
        self._db.execute("UPDATE devices SET acked_seq=? WHERE device_id=?", (acked, device_id))
        return acked

    def update_status(self, device_id: str, status: dict[str, Any]) -> None:
        models = status.get("models")
        with self._lock:
            self._db.execute(
                "INSERT INTO devices(device_id, last_seen) VALUES (?, ?) "
                "ON CONFLICT(device_id) DO UPDATE SET last_seen=excluded.last_seen",
                (device_id, time.time()),
            )
            self._db.execute(
                "UPDATE devices SET state=?, boot_id=COALESCE(?, boot_id), "
                "connection=COALESCE(?, connection), edgemed_version=COALESCE(?, edgemed_version), "
                "models=COALESCE(?, models), outbox_depth=COALESCE(?, outbox_depth) "
                "WHERE device_id=?",
                (
                    status.get("state"),
                    status.get("boot_id"),
                    status.get("connection"),
                    status.get("edgemed_version"),
                    json.dumps(models) if isinstance(models, list) else None,
                    status.get("outbox_depth"),
                    device_id,
                ),
            )

    def dead_letter(self, topic: str, reason: str, payload: bytes) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO dead_letters(topic, reason, payload, received_at) VALUES (?,?,?,?)",
                (topic, reason[:500], payload[:65536], time.time()),
            )

    # -- queries ------------------------------------------------------------------------------
    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._db.execute(sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def results(self, *, device_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where, params = ("WHERE device_id=?", (device_id,)) if device_id else ("", ())
        rows = self._rows(
            f"SELECT device_id, seq, result_id, model_id, model_version, kind, created_at, "
            f"received_at, payload FROM results {where} ORDER BY received_at DESC, seq DESC LIMIT ?",
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

    def close(self) -> None:
        with self._lock:
            self._db.close()
