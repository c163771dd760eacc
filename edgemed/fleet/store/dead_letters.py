"""Dead letters: what the fleet refused, bounded (mixed into ``SqlStore``, which supplies the
hooks).

A dead letter keeps the payload's size and sha256 and only its first ``KEEP_BYTES`` bytes
(before schema 8 it kept up to 64 KiB: 1,000 junk messages grew a store by ~61 MB). Beyond the
quota (``SqlStore.dead_letter_quota``: rows and/or stored bytes) a new dead letter is refused,
but counted by reason in ``dead_letters_refused``: nothing is dropped silently, and the ingest
keeps storing valid results meanwhile. Reasons are counted by class (``reason_class``: quoted
text and numbers replaced), so a flood of distinct payloads cannot grow the counter table
without bound.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import PayloadError
from ...wire import parse_topic

__all__ = [
    "DEAD_LETTER_DDL",
    "DEAD_LETTER_MIGRATION",
    "KEEP_BYTES",
    "PREVIEW_BYTES",
    "DeadLetterQuota",
    "DeadLetterStore",
    "reason_class",
]

KEEP_BYTES = 1024  # the most of a dead-lettered payload the store keeps
PREVIEW_BYTES = 256  # the most of it the API shows
MAX_REASON_CLASSES = 1000  # distinct reasons counted apart; more are counted as OTHER
OTHER = "(other reasons)"

# Columns added in schema 8 (a new store gets them from TABLES), then a backfill of the rows
# stored before (BACKFILL: run by the store itself: size, sha256, device, prefix).
BACKFILL = "-- backfill dead letters"
DEAD_LETTER_MIGRATION = (
    # (as every store since schema 1 has it; the statement only guards the ALTERs below)
    "CREATE TABLE IF NOT EXISTS dead_letters (id {serial}, topic TEXT NOT NULL, "
    "reason TEXT NOT NULL, payload {blob} NOT NULL, received_at DOUBLE PRECISION NOT NULL)",
    "ALTER TABLE dead_letters ADD COLUMN device_id TEXT",
    "ALTER TABLE dead_letters ADD COLUMN reason_class TEXT",
    "ALTER TABLE dead_letters ADD COLUMN size BIGINT",
    "ALTER TABLE dead_letters ADD COLUMN sha256 TEXT",
    BACKFILL,
)
DEAD_LETTER_DDL = """
CREATE TABLE IF NOT EXISTS dead_letters_refused (
    reason TEXT PRIMARY KEY,
    count BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    first_at DOUBLE PRECISION NOT NULL,
    last_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_device ON dead_letters(device_id, id);
CREATE INDEX IF NOT EXISTS dead_letters_reason ON dead_letters(reason_class, id);
CREATE INDEX IF NOT EXISTS dead_letters_received ON dead_letters(received_at)
"""
_COLUMNS = "id, topic, device_id, reason, reason_class, received_at, size, sha256"
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class DeadLetterQuota:
    """At most ``rows`` dead letters and ``stored_bytes`` of kept payload prefixes (None: no
    limit of that kind). With several ingest workers on PostgreSQL the quota may be passed by
    at most one row per worker (each checks, then inserts)."""

    rows: int | None = 10_000
    stored_bytes: int | None = None


def reason_class(reason: str) -> str:
    """A reason without what varies per payload: quoted text -> '…', numbers -> N."""
    return _NUMBER.sub("N", _QUOTED.sub("'…'", reason))[:200]


def _device(topic: str) -> str | None:
    try:
        return parse_topic(topic)[0]
    except PayloadError:
        return None


class DeadLetterStore:
    """Write, bound, count and list dead letters."""

    _lock: threading.Lock
    dead_letter_quota = DeadLetterQuota()

    if TYPE_CHECKING:  # supplied by SqlStore

        def _run(self, sql: str, params: tuple[Any, ...] = ()) -> Any: ...

        def _transaction(self) -> AbstractContextManager[None]: ...

        def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]: ...

    def dead_letter(self, topic: str, reason: str, payload: bytes) -> bool:
        """Keep a rejected payload (bounded); False if the quota refused it (then counted)."""
        with self._lock, self._transaction():
            return self._insert_dead_letter(topic, reason, payload, time.time())

    def _insert_dead_letter(self, topic: str, reason: str, payload: bytes, now: float) -> bool:
        """Within the caller's transaction."""
        kept = payload[:KEEP_BYTES]
        klass = reason_class(reason)
        if self._over_quota(len(kept)):
            self._count_refused(klass, len(payload), now)
            return False
        self._run(
            "INSERT INTO dead_letters(topic, device_id, reason, reason_class, payload, size, "
            "sha256, received_at) VALUES (?,?,?,?,?,?,?,?)",
            (topic[:300], _device(topic), reason[:500], klass, kept, len(payload),
             hashlib.sha256(payload).hexdigest(), now),
        )  # fmt: skip
        return True

    def _over_quota(self, adding: int) -> bool:
        quota = self.dead_letter_quota
        if quota.rows is None and quota.stored_bytes is None:
            return False
        rows, stored = self._run(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM dead_letters"
        ).fetchone()
        return (quota.rows is not None and int(rows) >= quota.rows) or (
            quota.stored_bytes is not None and int(stored) + adding > quota.stored_bytes
        )

    def _count_refused(self, klass: str, size: int, now: float) -> None:
        known = self._run("SELECT 1 FROM dead_letters_refused WHERE reason=?", (klass,)).fetchone()
        if known is None:
            (classes,) = self._run("SELECT COUNT(*) FROM dead_letters_refused").fetchone()
            if int(classes) >= MAX_REASON_CLASSES:
                klass = OTHER
        self._run(
            "INSERT INTO dead_letters_refused(reason, count, bytes, first_at, last_at) "
            "VALUES (?, 1, ?, ?, ?) ON CONFLICT(reason) DO UPDATE SET "
            "count=dead_letters_refused.count+1, bytes=dead_letters_refused.bytes+excluded.bytes, "
            "last_at=excluded.last_at",
            (klass, size, now, now),
        )

    def dead_letters_sql(
        self, *, device_id: str | None = None, reason: str | None = None,
        before: int | None = None, limit: int = 100,
    ) -> tuple[str, tuple[Any, ...]]:  # fmt: skip
        """The list query and its parameters (tests EXPLAIN it)."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("device_id", device_id), ("reason_class", reason)):
            if value is not None:
                clauses.append(f"{column}=?")
                params.append(value)
        if before is not None:
            clauses.append("id<?")
            params.append(before)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = (
            f"SELECT {_COLUMNS}, SUBSTR(payload, 1, {PREVIEW_BYTES}) AS preview "
            f"FROM dead_letters {where} ORDER BY id DESC LIMIT ?"
        )
        return sql, (*params, limit)

    def dead_letters(
        self, *, device_id: str | None = None, reason: str | None = None,
        before: int | None = None, limit: int = 100,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Newest first; ``reason`` is a ``reason_class``; ``before``: the last page's last id
        (keyset pages). ``preview``: the payload's first PREVIEW_BYTES bytes as text (bytes
        that are not UTF-8 as \\x escapes); ``truncated``: the payload was longer."""
        rows = self._rows(
            *self.dead_letters_sql(device_id=device_id, reason=reason, before=before, limit=limit)
        )
        for row in rows:
            preview = bytes(row.pop("preview"))
            row["preview"] = preview.decode("utf-8", "backslashreplace")
            row["truncated"] = row["size"] is None or row["size"] > len(preview)
        return rows

    def dead_letters_refused(self) -> list[dict[str, Any]]:
        """Dead letters the quota refused, counted per reason class, most first."""
        return self._rows(
            "SELECT reason, count, bytes, first_at, last_at FROM dead_letters_refused "
            "ORDER BY count DESC, reason LIMIT 1000"
        )

    def _backfill_dead_letters(self) -> None:
        """Migration 8, within its transaction: size, sha256, device and reason class of the
        rows stored before, and their payloads cut to KEEP_BYTES (what was stored before was
        already cut at 64 KiB: its size and sha256 are those of what was kept)."""
        last = 0
        while True:
            rows = self._run(
                "SELECT id, topic, reason, payload FROM dead_letters WHERE id>? ORDER BY id "
                "LIMIT 500",
                (last,),
            ).fetchall()
            for id_, topic, reason, payload in rows:
                data = bytes(payload)
                self._run(
                    "UPDATE dead_letters SET device_id=?, reason_class=?, size=?, sha256=?, "
                    "payload=? WHERE id=?",
                    (_device(topic), reason_class(reason), len(data),
                     hashlib.sha256(data).hexdigest(), data[:KEEP_BYTES], id_),
                )  # fmt: skip
            if len(rows) < 500:
                return
            last = rows[-1][0]
