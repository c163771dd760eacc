"""PostgreSQL dialect of the fleet store, for real deployments (``fleet serve --db postgresql://…``).

The server creates and migrates its own schema (``SqlStore._create_or_migrate``, under an
advisory lock so that several servers starting together do not race).
Concurrent ingest workers are safe: inserts rely on the (device_id, epoch, seq) primary key, and
the per-epoch ack high-water marks are advanced while the device's row is locked.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ...errors import SyncError
from ...wire import ResultMessage
from ..auth.audit import postgres_audit_guards
from .partitions import PURGE_BATCH, PartitionedResults, month_of, partitioned_results_ddl
from .schema import RESULT_COLUMNS, RESULT_VALUES, TABLES, result_row
from .sql import SqlStore

__all__ = ["PostgresStore"]


class PostgresStore(PartitionedResults, SqlStore):
    """PostgreSQL; a new store partitions results by month of receipt (store/partitions.py)."""

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
        self._dsn = dsn  # kept to reconnect; never logged (it may hold a password)
        self._months_ready = set()
        try:
            self._db = self._connect()
            self._create_or_migrate()
            self._check_partitioned()
        except (psycopg.Error, SyncError) as exc:
            # Never echo the DSN: it may hold a password.
            raise SyncError(f"cannot open the PostgreSQL fleet store: {exc}") from exc

    @property
    def dsn(self) -> str:
        """For the fleet's other connections to this database (shared live events)."""
        return self._dsn

    def _connect(self) -> Any:
        import psycopg

        # connect_timeout: a database that is down must fail a health check, not hang it.
        db = psycopg.connect(
            self._dsn, autocommit=True, connect_timeout=3, application_name="edgemed-fleet"
        )
        db.execute(f"SET search_path TO {self.schema}")
        return db

    def _lock_schema(self) -> None:
        # Several servers may start at once against one database: one creates, the rest wait.
        self._db.execute("SELECT pg_advisory_xact_lock(hashtext('edgemed-fleet-schema'))")
        self._db.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")

    def _audit_guards(self) -> list[str]:
        return postgres_audit_guards()

    def _create_new_store(self) -> None:
        for statement in partitioned_results_ddl(TABLES):
            self._db.execute(statement)

    def _check_partitioned(self) -> None:
        row = self._db.execute(
            "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid=c.relnamespace "
            "WHERE c.relname='results' AND n.nspname=current_schema()"
        ).fetchone()
        self.partitioned = row is not None and row[0] == "p"
        if self.partitioned:
            with self._lock, self._transaction():
                self.ensure_partitions(time.time())

    def _purge_results(self, cutoff: float, batch: int) -> int:
        if not self.partitioned:
            return super()._purge_results(cutoff, batch)
        dropped = 0
        while (rows := self.drop_expired_partition(cutoff)) is not None:
            dropped += rows
        (deleted,) = self._db.execute(PURGE_BATCH, (cutoff, batch)).fetchone()
        self._purge_export_log(cutoff, batch)
        return dropped + int(deleted)

    def _rekey_results(self) -> None:
        # PostgreSQL changes a primary key in place (no copy of the table).
        self._db.execute(
            "ALTER TABLE results ADD COLUMN IF NOT EXISTS epoch TEXT NOT NULL DEFAULT ''"
        )
        self._db.execute("ALTER TABLE results DROP CONSTRAINT results_pkey")
        self._db.execute("ALTER TABLE results ADD PRIMARY KEY (device_id, epoch, seq)")

    def _has_table(self, name: str) -> bool:
        sql = (
            "SELECT 1 FROM information_schema.tables "
            "WHERE table_schema=current_schema() AND table_name=%s"
        )
        return self._db.execute(sql, (name,)).fetchone() is not None

    def _insert_rows(self, msgs: list[ResultMessage], now: float) -> set[tuple[str, str, int]]:
        # One multi-row INSERT … RETURNING per chunk: one round trip instead of one per row.
        # Partitioned: the key first (result_keys holds the uniqueness), then the new rows.
        if self.partitioned and month_of(now) not in self._months_ready:
            self.ensure_partitions(now)
        stored: set[tuple[str, str, int]] = set()
        for i in range(0, len(msgs), 500):
            chunk = msgs[i : i + 500]
            if self.partitioned:
                keys = self._db.execute(
                    "INSERT INTO result_keys(device_id, epoch, seq, received_at) VALUES "
                    + ",".join(["(%s,%s,%s,%s)"] * len(chunk))
                    + " ON CONFLICT DO NOTHING RETURNING device_id, epoch, seq",
                    [v for m in chunk for v in (m.device_id, m.epoch, m.seq, now)],
                ).fetchall()
                new = {(d, e, int(s)) for d, e, s in keys}
                chunk = [m for m in chunk if (m.device_id, m.epoch, m.seq) in new]
                if not chunk:
                    continue
            values = ",".join([RESULT_VALUES.replace("?", "%s")] * len(chunk))
            params = [v for msg in chunk for v in result_row(msg, now)]
            cur = self._db.execute(
                f"INSERT INTO results({RESULT_COLUMNS}) VALUES {values} "
                "ON CONFLICT DO NOTHING RETURNING device_id, epoch, seq",
                params,
            )
            stored.update((d, e, int(s)) for d, e, s in cur.fetchall())
        return stored

    def _advance_all(
        self, floors: dict[tuple[str, str], int], now: float
    ) -> dict[tuple[str, str], int]:
        # A few statements per batch, whatever the number of devices (one per device each would
        # cost ~4 round trips per device): lock the devices, read their epochs' acks, fetch the
        # seqs above them, write the new acks.
        ids = sorted({dev for dev, _ in floors})
        rows = self._db.execute(
            "INSERT INTO devices(device_id, last_seen) SELECT unnest(%s::text[]), %s "
            "ON CONFLICT(device_id) DO UPDATE SET last_seen=excluded.last_seen "
            "RETURNING device_id, epoch",
            (ids, now),
        ).fetchall()  # rows are locked in id order: concurrent workers cannot deadlock
        current: dict[str, str | None] = dict(rows)
        keys = sorted(floors, key=lambda k: (k[0], floors[k]))  # a device's epochs in seq order
        stored = {
            (dev, epoch): int(acked)
            for dev, epoch, acked in self._db.execute(
                "SELECT e.device_id, e.epoch, e.acked_seq FROM device_epochs e "
                "JOIN unnest(%s::text[], %s::text[]) AS k(device_id, epoch) "
                "ON e.device_id=k.device_id AND e.epoch=k.epoch",
                ([k[0] for k in keys], [k[1] for k in keys]),
            ).fetchall()
        }
        for dev, epoch in keys:  # new epochs: once per device restart, one at a time
            if (dev, epoch) not in stored:
                current[dev] = self._new_epoch(dev, epoch, floors[(dev, epoch)], current[dev], now)
                stored[(dev, epoch)] = 0
        acked = self._contiguous({k: max(stored[k], floors[k] - 1) for k in keys})
        changed = [k for k in keys if acked[k] != stored[k]]
        if changed:
            self._db.execute(
                "UPDATE device_epochs SET acked_seq=v.acked "
                "FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS v(device_id, epoch, acked) "
                "WHERE device_epochs.device_id=v.device_id AND device_epochs.epoch=v.epoch",
                ([k[0] for k in changed], [k[1] for k in changed], [acked[k] for k in changed]),
            )
        mirrored = [k for k in keys if k[1] == current[k[0]]]  # devices.acked_seq: current epoch
        if mirrored:
            self._db.execute(
                "UPDATE devices SET acked_seq=v.acked FROM unnest(%s::text[], %s::bigint[]) "
                "AS v(device_id, acked) WHERE devices.device_id=v.device_id",
                ([k[0] for k in mirrored], [acked[k] for k in mirrored]),
            )
        return acked

    def _contiguous(self, acked: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
        """Move each (device, epoch)'s ``acked`` to the top of its contiguous run of stored
        seqs: a window of seqs per key per query, all keys in one query."""
        pending = list(acked)
        while pending:
            window = 4096
            seqs = self._db.execute(
                "SELECT r.device_id, r.epoch, r.seq FROM results r "
                "JOIN unnest(%s::text[], %s::text[], %s::bigint[]) AS f(device_id, epoch, floor) "
                "ON r.device_id=f.device_id AND r.epoch=f.epoch "
                "AND r.seq>f.floor AND r.seq<=f.floor+%s ORDER BY r.device_id, r.epoch, r.seq",
                ([k[0] for k in pending], [k[1] for k in pending],
                 [acked[k] for k in pending], window),
            ).fetchall()  # fmt: skip
            start = {k: acked[k] for k in pending}
            for dev, epoch, seq in seqs:
                if seq == acked[(dev, epoch)] + 1:
                    acked[(dev, epoch)] = int(seq)
            # A key whose run filled the whole window may continue past it.
            pending = [k for k in pending if acked[k] - start[k] == window]
        return acked

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._db.execute(sql, params)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            if self._db.closed or self._db.broken:  # the server restarted or dropped us
                self._db = self._connect()
            with self._db.transaction():
                yield
        except self._errors as exc:
            raise SyncError(f"fleet store (PostgreSQL): {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
