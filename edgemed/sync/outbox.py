"""Stage 6: the durable on-device outbox (SQLite, WAL, synchronous=FULL).

A result is accepted only when it is committed together with its per-device ``seq`` (never
reused, also across restarts and after deletion) and the current ``boot_id``. Rows are deleted only
when the fleet acknowledges them. When the byte or age bound is reached, new results are refused
with :class:`OutboxFullError`: never dropped silently.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from ..config import OutboxConfig
from ..errors import OutboxFullError, SyncError
from ..wire import check_device_id

__all__ = ["Outbox", "OutboxRow", "OutboxStats"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    boot_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    bytes INTEGER NOT NULL,
    payload BLOB NOT NULL
);
"""


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    payload: bytes


@dataclass(frozen=True, kw_only=True)
class OutboxStats:
    depth: int
    bytes: int
    oldest_age_s: float | None
    next_seq: int
    last_ack_seq: int
    refused: int  # results refused since this process opened the outbox


class Outbox:
    """Thread-safe; one per device. Payloads are built inside the storing transaction."""

    def __init__(self, config: OutboxConfig) -> None:
        self.config = config
        self.device_id = check_device_id(config.device_id)
        self.boot_id = str(uuid.uuid4())
        self.refused = 0
        self._lock = threading.Lock()
        config.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(config.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "PRAGMA synchronous=FULL"
            )  # durable across power loss, not only crashes
            self._db.executescript(_SCHEMA)
            self._init_meta()
        except sqlite3.DatabaseError as exc:
            raise SyncError(f"cannot open outbox {config.path}: {exc}") from exc

    def _init_meta(self) -> None:
        with self._tx():
            stored = self._meta("device_id")
            if stored is None:
                self._set_meta("device_id", self.device_id)
                self._set_meta("next_seq", "1")
                self._set_meta("last_ack_seq", "0")
            elif stored != self.device_id:
                raise SyncError(
                    f"outbox {self.config.path} belongs to device {stored!r}, not {self.device_id!r}"
                )
            self._set_meta("boot_id", self.boot_id)

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    def put(self, build_payload: Callable[[int, str, int], bytes]) -> int:
        """Store one result durably and return its seq.

        ``build_payload(seq, boot_id, lowest_unacked_seq)`` makes the bytes to publish; it runs
        inside the transaction, so the seq in the payload and in the row always agree.
        """
        with self._lock, self._tx():
            total, oldest = self._db.execute(
                "SELECT COALESCE(SUM(bytes), 0), MIN(created_at) FROM outbox"
            ).fetchone()
            now = time.time()
            if oldest is not None and now - oldest > self.config.max_age_s:
                self.refused += 1
                raise OutboxFullError(
                    f"outbox holds a result unacknowledged for {(now - oldest) / 3600:.1f} h "
                    f"(limit {self.config.max_age_s / 3600:.1f} h): is the fleet reachable?"
                )
            seq = int(self._meta("next_seq") or 1)
            low = self._lowest_unacked(default=seq)
            payload = build_payload(seq, self.boot_id, low)
            if total + len(payload) > self.config.max_bytes:
                self.refused += 1
                raise OutboxFullError(
                    f"outbox is full ({total:,} of {self.config.max_bytes:,} bytes); result refused"
                )
            self._db.execute(
                "INSERT INTO outbox(seq, boot_id, created_at, bytes, payload) VALUES (?,?,?,?,?)",
                (seq, self.boot_id, now, len(payload), payload),
            )
            self._set_meta("next_seq", str(seq + 1))
            return seq

    def _lowest_unacked(self, default: int) -> int:
        row = self._db.execute("SELECT MIN(seq) FROM outbox").fetchone()
        return default if row[0] is None else int(row[0])

    def pending(self, limit: int) -> list[OutboxRow]:
        """The ``limit`` oldest unacknowledged rows, lowest seq first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, payload FROM outbox ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [OutboxRow(int(seq), bytes(payload)) for seq, payload in rows]

    def ack_through(self, ack_seq: int) -> int:
        """The fleet committed every seq <= ack_seq: delete them. Returns rows deleted."""
        with self._lock, self._tx():
            if ack_seq >= int(self._meta("next_seq") or 1):
                raise SyncError(f"ack for seq {ack_seq} that this outbox never assigned")
            deleted = self._db.execute("DELETE FROM outbox WHERE seq <= ?", (ack_seq,)).rowcount
            last = int(self._meta("last_ack_seq") or 0)
            self._set_meta("last_ack_seq", str(max(last, ack_seq)))
            return int(deleted)

    def stats(self) -> OutboxStats:
        with self._lock:
            depth, size, oldest = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0), MIN(created_at) FROM outbox"
            ).fetchone()
            return OutboxStats(
                depth=int(depth),
                bytes=int(size),
                oldest_age_s=None if oldest is None else max(0.0, time.time() - oldest),
                next_seq=int(self._meta("next_seq") or 1),
                last_ack_seq=int(self._meta("last_ack_seq") or 0),
                refused=self.refused,
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
