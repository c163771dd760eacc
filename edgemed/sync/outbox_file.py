"""The outbox's SQLite file: schema and its migration, the integrity check on open, moving a
corrupted file aside, transactions, and the stats read from the file (also read-only, from
outside a running device). The queue operations on it are :mod:`edgemed.sync.outbox`.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import SyncError

__all__ = [
    "SCHEMA",
    "Corrupt",
    "OutboxStats",
    "Transaction",
    "move_aside",
    "open_checked",
    "read_stats",
    "read_status",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    boot_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    bytes INTEGER NOT NULL,
    payload BLOB NOT NULL,
    epoch TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS epochs (
    epoch TEXT PRIMARY KEY,
    start_seq INTEGER NOT NULL,
    opened_at REAL NOT NULL
);
"""


class Corrupt(Exception):
    """The file opens but its content is not a sane outbox."""


@dataclass(frozen=True, kw_only=True)
class OutboxStats:
    depth: int
    bytes: int
    oldest_age_s: float | None
    next_seq: int
    last_ack_seq: int
    refused: int  # results refused since this process opened the outbox
    refused_total: int  # across restarts
    last_ack_at: float | None  # Unix time of the last fleet acknowledgement
    link_state: str  # "online" / "offline" as last recorded by the publisher, or "unknown"
    epoch: str  # the epoch of the last open ("" for an outbox from before epochs)
    recovered_from: str | None  # where a corrupted outbox was moved aside, if one was


def open_checked(path: Path) -> sqlite3.Connection:
    """Connect, check integrity and bring the schema up to date; raises on a bad file."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        # quick_check reads every page (O(size), ~1 s per GB): once per open, worth it.
        problems = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise Corrupt("; ".join(str(p) for p in problems[:3]))
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # durable across power loss, not only crashes
        db.executescript(SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
        if "epoch" not in columns:  # written by an edgemed from before epochs
            db.execute("ALTER TABLE outbox ADD COLUMN epoch TEXT NOT NULL DEFAULT ''")
        _check_meta(db)
    except BaseException:
        db.close()
        raise
    return db


def _check_meta(db: sqlite3.Connection) -> None:
    """A file that passed quick_check can still be no outbox of ours, or rewound against its rows.
    Raises Corrupt; a fresh (empty) file passes."""
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    (rows, top) = db.execute("SELECT COUNT(*), MAX(seq) FROM outbox").fetchone()
    if "device_id" not in meta:
        if rows:
            raise Corrupt("rows without a device_id in meta")
        return
    try:
        next_seq = int(meta.get("next_seq", ""))
    except ValueError:
        raise Corrupt(f"meta next_seq is {meta.get('next_seq')!r}") from None
    if next_seq < 1 or (top is not None and top >= next_seq):
        raise Corrupt(f"meta next_seq {next_seq} is not above the highest stored seq {top}")


def move_aside(path: Path) -> Path:
    """Rename a corrupted outbox and its -wal/-shm to ``<name>.corrupt-<UTC time>`` (the WAL keeps
    its suffix, so SQLite still finds it when a human opens the moved copy). Never deletes."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    for suffix in ("-wal", "-shm"):  # the side files first: the main file marks the move done
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
    if path.exists():
        path.rename(target)
    return target


def read_stats(db: sqlite3.Connection, *, refused: int) -> OutboxStats:
    def meta(key: str) -> str | None:
        row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    depth, size, oldest = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(bytes), 0), MIN(created_at) FROM outbox"
    ).fetchone()
    return OutboxStats(
        depth=int(depth),
        bytes=int(size),
        oldest_age_s=None if oldest is None else max(0.0, time.time() - oldest),
        next_seq=int(meta("next_seq") or 1),
        last_ack_seq=int(meta("last_ack_seq") or 0),
        refused=refused,
        refused_total=int(meta("refused_total") or 0),
        last_ack_at=float(meta("last_ack_at") or 0) or None,
        link_state=meta("link_state") or "unknown",
        epoch=meta("epoch") or "",
        recovered_from=meta("recovered_from"),
    )


def read_status(path: Path) -> tuple[str, OutboxStats]:
    """(device_id, stats) of an outbox file, opened read-only (safe beside a running device)."""
    if not path.is_file():
        raise SyncError(f"no outbox at {path}")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key='device_id'").fetchone()
            if row is None:
                raise SyncError(f"{path} is not an edgemed outbox")
            return str(row[0]), read_stats(db, refused=0)
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise SyncError(f"cannot read outbox {path}: {exc}") from exc


class Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type:
            self._db.execute("ROLLBACK")
            return
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error:  # e.g. BUSY: never leave the transaction open behind an error
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
