"""PostgreSQL: results partitioned by month of receipt, so that retention drops whole months.

A new PostgreSQL store makes ``results`` a table partitioned by range of ``received_at``, one
partition per calendar month (UTC), made three months ahead, plus a default partition that
catches a row no month partition takes (a server clock gone wrong): an insert never fails for
want of a partition. PostgreSQL requires the partition key in every unique key, so the
uniqueness that makes a resend a duplicate instead of a second row, (device_id, epoch, seq),
moves to a narrow unpartitioned table ``result_keys`` that ingest writes first, in the same
transaction: a result is stored only when its key was new.

Retention (``purge_results``) then drops each month partition that lies wholly before the
cutoff (``DROP TABLE``: no row-by-row delete, no bloat), deleting only the narrow rows that
refer to it (its keys and encounter references), and deletes row by row only inside the one
month the cutoff falls in. PostgreSQL stores made before schema 12, and SQLite stores, keep the
unpartitioned table and row deletes (``RetentionStore``); converting an existing PostgreSQL
store is not automatic (docs/fleet.md).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "KEYS_DDL",
    "MONTHS_AHEAD",
    "PURGE_BATCH",
    "PartitionedResults",
    "month_bounds",
    "month_of",
    "partition_name",
    "partitioned_results_ddl",
]

log = logging.getLogger(__name__)
MONTHS_AHEAD = 3
KEYS_DDL = (
    "CREATE TABLE IF NOT EXISTS result_keys (device_id TEXT NOT NULL, epoch TEXT NOT NULL, "
    "seq BIGINT NOT NULL, received_at DOUBLE PRECISION NOT NULL, "
    "PRIMARY KEY (device_id, epoch, seq))",
    "CREATE INDEX IF NOT EXISTS result_keys_received ON result_keys(received_at)",
)
_PARTITION = re.compile(r"^results_y(\d{4})m(\d{2})$")


def partitioned_results_ddl(tables: str) -> list[str]:
    """The partitioned ``results`` (same columns as ``TABLES``), its default partition and
    ``result_keys``: run for a new PostgreSQL store before the full DDL."""
    (create,) = [s for s in tables.split(";") if "TABLE IF NOT EXISTS results (" in s]
    old_key = "PRIMARY KEY (device_id, epoch, seq)\n)"
    if old_key not in create:  # a schema change this module has not followed
        raise RuntimeError("results' primary key changed: update store/partitions.py")
    partitioned = create.replace(
        old_key,
        "PRIMARY KEY (device_id, epoch, seq, received_at)\n) PARTITION BY RANGE (received_at)",
    )
    return [
        partitioned,
        "CREATE TABLE IF NOT EXISTS results_default PARTITION OF results DEFAULT",
        *KEYS_DDL,
    ]


def month_bounds(year: int, month: int) -> tuple[float, float]:
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=timezone.utc)
    return start.timestamp(), end.timestamp()


def partition_name(year: int, month: int) -> str:
    return f"results_y{year:04d}m{month:02d}"


def month_of(at: float) -> tuple[int, int]:
    when = datetime.fromtimestamp(at, timezone.utc)
    return when.year, when.month


def months_from(at: float, count: int) -> list[tuple[int, int]]:
    """The month of ``at`` and the ``count - 1`` after it, as (year, month)."""
    when = datetime.fromtimestamp(at, timezone.utc)
    index = when.year * 12 + when.month - 1
    return [((i // 12), i % 12 + 1) for i in range(index, index + count)]


# The cutoff's own month: rows before it, a batch at a time, with their keys and encounter
# references (one statement: the keys deleted are exactly those of the rows deleted).
PURGE_BATCH = """
WITH gone AS (
    DELETE FROM results WHERE (device_id, epoch, seq, received_at) IN (
        SELECT device_id, epoch, seq, received_at FROM results WHERE received_at<%s
        ORDER BY received_at LIMIT %s)
    RETURNING device_id, epoch, seq),
keys AS (DELETE FROM result_keys k USING gone g
    WHERE k.device_id=g.device_id AND k.epoch=g.epoch AND k.seq=g.seq),
refs AS (DELETE FROM result_encounters e USING gone g
    WHERE e.device_id=g.device_id AND e.epoch=g.epoch AND e.seq=g.seq)
SELECT COUNT(*) FROM gone
"""


class PartitionedResults:
    """The partitioned half of the PostgreSQL store (mixed into ``PostgresStore``)."""

    partitioned = False  # set by the store: results is a partitioned table
    _months_ready: set[tuple[int, int]]

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        raise NotImplementedError

    def ensure_partitions(self, at: float) -> None:
        """Month partitions from the month of ``at`` to MONTHS_AHEAD after it; inside the
        caller's transaction. A month whose rows already sit in the default partition is
        skipped (logged): its rows stay queryable there and go with row deletes."""
        for year, month in months_from(at, MONTHS_AHEAD + 1):
            if (year, month) in self._months_ready:
                continue
            start, end = month_bounds(year, month)
            self._execute("SAVEPOINT partition")
            try:
                self._execute(
                    f"CREATE TABLE IF NOT EXISTS {partition_name(year, month)} PARTITION OF "
                    f"results FOR VALUES FROM ({start!r}) TO ({end!r})"
                )
                self._execute("RELEASE SAVEPOINT partition")
            except Exception as exc:  # the default partition already holds rows of it
                self._execute("ROLLBACK TO SAVEPOINT partition")
                log.warning("results partition %04d-%02d not made: %s", year, month, exc)
            self._months_ready.add((year, month))

    def month_partitions(self) -> list[tuple[str, float]]:
        """(name, end) of every month partition, oldest first."""
        rows = self._execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid=i.inhrelid "
            "JOIN pg_class p ON p.oid=i.inhparent JOIN pg_namespace n ON n.oid=p.relnamespace "
            "WHERE p.relname='results' AND n.nspname=current_schema()"
        ).fetchall()
        found = []
        for (name,) in rows:
            match = _PARTITION.match(name)
            if match:
                found.append((name, month_bounds(int(match[1]), int(match[2]))[1]))
        return sorted(found, key=lambda p: p[1])

    def drop_expired_partition(self, cutoff: float) -> int | None:
        """Drop the oldest month partition wholly before ``cutoff``, with the narrow rows that
        refer to its results; its row count, or None when no partition has expired."""
        expired = [(name, end) for name, end in self.month_partitions() if end <= cutoff]
        if not expired:
            return None
        name = expired[0][0]
        (rows,) = self._execute(f"SELECT COUNT(*) FROM {name}").fetchone()
        self._execute(
            f"DELETE FROM result_encounters e USING {name} r WHERE e.device_id=r.device_id "
            "AND e.epoch=r.epoch AND e.seq=r.seq"
        )
        self._execute(
            f"DELETE FROM result_keys k USING {name} r WHERE k.device_id=r.device_id "
            "AND k.epoch=r.epoch AND k.seq=r.seq"
        )
        self._execute(f"DROP TABLE {name}")
        match = _PARTITION.match(name)
        assert match is not None
        self._months_ready.discard((int(match[1]), int(match[2])))
        return int(rows)
