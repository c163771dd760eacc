"""Stage 9: the fleet's result store. SQLite by default; PostgreSQL in ``fleet/postgres.py``.

Both run the same SQL (``ON CONFLICT`` works in SQLite >= 3.24 and PostgreSQL); a dialect only
supplies the connection, its placeholder style and a few column types. The server creates and
migrates its own schema (``schema_version``; upgrades in ``_MIGRATIONS``).

Idempotence: results are keyed on (device_id, seq). A repeat with the same payload hash is a
duplicate (absorbed); with a different hash it is a conflict (an integrity alert plus a dead
letter, never an overwrite). Each device's ``acked_seq`` is the highest seq such that every seq up to it is
committed; the device's ``lowest_unacked_seq`` lets the fleet skip seqs that an earlier store
already acknowledged.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import SyncError
from ..wire import ResultMessage
from .alerts import Alert

__all__ = ["SCHEMA_VERSION", "Committed", "InsertOutcome", "SQLiteStore", "SqlStore", "open_store"]

InsertOutcome = Literal["stored", "duplicate", "conflict"]

_ALERTS = """
CREATE TABLE IF NOT EXISTS alerts (
    id {serial},
    device_id TEXT NOT NULL,
    seq BIGINT,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    detail TEXT NOT NULL,
    raised_at DOUBLE PRECISION NOT NULL,
    acked_at DOUBLE PRECISION,
    acked_by TEXT,
    resolved_at DOUBLE PRECISION,
    dedupe_key TEXT UNIQUE
)
"""
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
    state_since DOUBLE PRECISION,
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
{alerts};
CREATE TABLE IF NOT EXISTS dead_letters (
    id {serial},
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload {blob} NOT NULL,
    received_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_open ON alerts(acked_at, id);
CREATE INDEX IF NOT EXISTS results_received ON results(received_at);
"""

SCHEMA_VERSION = 2
# Upgrades from version n-1 to n, run by the server itself (one transaction, under a lock).
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (
        "ALTER TABLE devices ADD COLUMN state_since DOUBLE PRECISION",
        _ALERTS,
        "INSERT INTO alerts(device_id, seq, rule, severity, detail, raised_at) "
        "SELECT device_id, seq, kind, 'integrity', detail, raised_at FROM alarms",
        "DROP TABLE alarms",
    ),
}

_UPSERT_DEVICE = (
    "INSERT INTO devices(device_id, last_seen) VALUES (?, ?) "
    "ON CONFLICT(device_id) DO UPDATE SET last_seen=excluded.last_seen"
)
_INSERT_ALERT = (
    "INSERT INTO alerts(device_id, seq, rule, severity, detail, raised_at, dedupe_key) "
    "VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING"
)
_RESULT_COLUMNS = (
    "device_id, seq, result_id, boot_id, model_id, model_version, kind, created_at, "
    "received_at, payload_sha256, payload"
)
MAX_PAGE = 1000


@dataclass(frozen=True)
class Committed:
    """What one ``insert_results`` transaction committed."""

    outcomes: list[InsertOutcome]  # one per message, in the order given
    acked: dict[str, int]  # per device: the highest contiguous seq now held (the ack to send)
    alerts: list[Alert]  # raised in the same transaction


Evaluate = Callable[[ResultMessage], list[Alert]]


class SqlStore:
    """The store's logic over a DB-API connection; thread-safe through one lock."""

    placeholder = "?"  # dialect: parameter style
    _lock_row = ""  # dialect: row-lock suffix for SELECT (PostgreSQL: " FOR UPDATE")
    _serial = "INTEGER PRIMARY KEY AUTOINCREMENT"  # dialect: auto-increment key column
    _blob = "BLOB"  # dialect: binary column

    def __init__(self) -> None:
        self._lock = threading.Lock()

    # -- dialect hooks --------------------------------------------------------------------
    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        raise NotImplementedError

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        raise NotImplementedError
        yield

    def _has_table(self, name: str) -> bool:
        raise NotImplementedError

    def _lock_schema(self) -> None:
        """Serialise concurrent servers creating or migrating the schema (PostgreSQL)."""

    def close(self) -> None:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._execute(self._sql(sql), params)

    # -- schema ---------------------------------------------------------------------------
    def _create_or_migrate(self) -> None:
        with self._lock, self._transaction():
            self._lock_schema()
            self._run("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)")
            version = int(self._run("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)
            if version == 0 and self._has_table("results"):
                version = 1  # version-1 SQLite stores predate the schema_version table
            if version > SCHEMA_VERSION:
                raise SyncError(
                    f"fleet store has schema version {version}; this edgemed knows up to "
                    f"{SCHEMA_VERSION}: upgrade edgemed"
                )
            steps = [] if version == 0 else [
                step for v in range(version + 1, SCHEMA_VERSION + 1) for step in _MIGRATIONS[v]
            ]  # fmt: skip
            # The full DDL is idempotent: after the upgrade steps it only adds what is missing.
            steps += _TABLES.split(";")
            for step in steps:
                if step.strip():
                    self._run(self._format(step))
            self._run(
                "INSERT INTO schema_version(version) VALUES (?) ON CONFLICT DO NOTHING",
                (SCHEMA_VERSION,),
            )

    def _format(self, ddl: str) -> str:
        alerts = _ALERTS.format(serial=self._serial)
        return ddl.format(serial=self._serial, blob=self._blob, alerts=alerts)

    def schema_version(self) -> int:
        return int(self._rows("SELECT MAX(version) AS v FROM schema_version")[0]["v"])

    # -- writes ---------------------------------------------------------------------------
    def insert_result(self, msg: ResultMessage) -> tuple[InsertOutcome, int]:
        """Commit one result idempotently; returns the outcome and the device's new ack seq."""
        done = self.insert_results([msg])
        return done.outcomes[0], done.acked[msg.device_id]

    def insert_results(
        self, msgs: list[ResultMessage], evaluate: Evaluate | None = None
    ) -> Committed:
        """Commit many results in one transaction (one fsync), with the alerts they raise.

        ``evaluate`` gives the alerts of each newly stored result (not of duplicates); they
        commit atomically with it, so a crash can neither lose nor repeat an alert.
        """
        now = time.time()
        floors: dict[str, int] = {}
        for msg in msgs:
            floors[msg.device_id] = max(floors.get(msg.device_id, 0), msg.lowest_unacked_seq)
        # Rows are locked in (device_id, seq) order, devices in id order: concurrent workers
        # on PostgreSQL then always take locks in the same order and cannot deadlock.
        order = sorted(range(len(msgs)), key=lambda i: (msgs[i].device_id, msgs[i].seq))
        outcomes: list[InsertOutcome] = ["stored"] * len(msgs)
        raised: list[Alert] = []
        with self._lock, self._transaction():
            stored = self._insert_rows([msgs[i] for i in order], now)
            for i in order:
                msg = msgs[i]
                if (msg.device_id, msg.seq) in stored:
                    stored.discard((msg.device_id, msg.seq))  # a repeat in this batch: duplicate
                    for alert in evaluate(msg) if evaluate else ():
                        if self._raise(alert, now):
                            raised.append(alert)
                else:
                    outcomes[i] = self._repeat(msg, now)
            acked = self._advance_all(floors, now)
        return Committed(outcomes, acked, raised)

    def _insert_rows(self, msgs: list[ResultMessage], now: float) -> set[tuple[str, int]]:
        """Insert, skipping existing keys; returns the keys this call stored."""
        stored: set[tuple[str, int]] = set()
        for msg in msgs:
            cur = self._run(
                f"INSERT INTO results({_RESULT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT DO NOTHING",
                _row(msg, now),
            )
            if cur.rowcount == 1:
                stored.add((msg.device_id, msg.seq))
        return stored

    def _repeat(self, msg: ResultMessage, now: float) -> InsertOutcome:
        (stored_hash,) = self._run(
            "SELECT payload_sha256 FROM results WHERE device_id=? AND seq=?",
            (msg.device_id, msg.seq),
        ).fetchone()
        if stored_hash == msg.payload_sha256:
            return "duplicate"
        self._raise(
            Alert(
                device_id=msg.device_id, seq=msg.seq, rule="seq-conflict", severity="integrity",
                detail=f"seq {msg.seq} repeated with a different payload (result_id "
                f"{msg.result_id}); the first payload is kept",
            ),
            now,
        )  # fmt: skip
        # Keep the rejected payload: nothing a device sent is ever discarded unseen.
        self._run(
            "INSERT INTO dead_letters(topic, reason, payload, received_at) VALUES (?,?,?,?)",
            (f"edgemed/v1/{msg.device_id}/results", f"seq-conflict at seq {msg.seq}",
             msg.raw.encode(), now),
        )  # fmt: skip
        return "conflict"

    def _advance_all(self, floors: dict[str, int], now: float) -> dict[str, int]:
        """Per device: touch it, and move its ack to the top of the contiguous run of seqs."""
        return {dev: self._advance(dev, low, now) for dev, low in sorted(floors.items())}

    def _advance(self, device_id: str, lowest_unacked: int, now: float) -> int:
        self._run(_UPSERT_DEVICE, (device_id, now))
        # FOR UPDATE where supported: concurrent ingest workers serialise per device here.
        (acked,) = self._run(
            "SELECT acked_seq FROM devices WHERE device_id=?" + self._lock_row, (device_id,)
        ).fetchone()
        stored_acked = int(acked)
        acked = max(stored_acked, lowest_unacked - 1)  # the device holds nothing below
        while True:  # walk the contiguous run above acked, a page of seqs per query
            seqs = self._run(
                "SELECT seq FROM results WHERE device_id=? AND seq>? ORDER BY seq LIMIT 512",
                (device_id, acked),
            ).fetchall()
            for (seq,) in seqs:
                if seq != acked + 1:
                    break
                acked += 1
            else:
                if len(seqs) == 512:
                    continue
            break
        if acked != stored_acked:
            self._run("UPDATE devices SET acked_seq=? WHERE device_id=?", (acked, device_id))
        return acked

    def _raise(self, alert: Alert, now: float) -> bool:
        """Insert an alert unless one with the same dedupe key was ever raised."""
        cur = self._run(
            _INSERT_ALERT,
            (alert.device_id, alert.seq, alert.rule, alert.severity, alert.detail[:500], now,
             alert.dedupe_key),
        )  # fmt: skip
        return bool(cur.rowcount == 1)

    def raise_alerts(self, alerts: list[Alert]) -> list[Alert]:
        """Commit alerts raised outside a result (device offline); returns those newly raised."""
        if not alerts:
            return []  # the sweeper and every status message call this: no empty transactions
        now = time.time()
        with self._lock, self._transaction():
            return [a for a in alerts if self._raise(a, now)]

    def acknowledge_alert(self, alert_id: int, *, by: str) -> dict[str, Any] | None:
        """Mark an alert acknowledged (idempotent); None if there is no such alert."""
        now = time.time()
        with self._lock, self._transaction():
            self._run(
                "UPDATE alerts SET acked_at=?, acked_by=? WHERE id=? AND acked_at IS NULL",
                (now, by[:100], alert_id),
            )
        rows = self._rows("SELECT * FROM alerts WHERE id=?", (alert_id,))
        return rows[0] if rows else None

    def resolve_alerts(self, device_id: str, rule: str) -> int:
        """The condition behind an alert has cleared (device back online); it still needs an
        acknowledgement, but the dashboard shows it as resolved."""
        with self._lock, self._transaction():
            cur = self._run(
                "UPDATE alerts SET resolved_at=? "
                "WHERE device_id=? AND rule=? AND resolved_at IS NULL",
                (time.time(), device_id, rule),
            )
            return int(cur.rowcount)

    def update_status(self, device_id: str, status: dict[str, Any]) -> bool:
        """Apply a birth/death message; False if it is stale (an older connection's death)."""
        models = status.get("models")
        state = status.get("state")
        now = time.time()
        with self._lock, self._transaction():
            self._run(_UPSERT_DEVICE, (device_id, now))
            (boot_id, connection, old_state, old_since) = self._run(
                "SELECT boot_id, connection, state, state_since FROM devices WHERE device_id=?"
                + self._lock_row,
                (device_id,),
            ).fetchone()
            incoming = status.get("connection")
            if (
                boot_id is not None
                and status.get("boot_id") == boot_id
                and isinstance(incoming, int)
                and connection is not None
                and incoming < connection
            ):
                return False  # the retained death of a connection the device has replaced
            # A repeated state (a retained status redelivered) keeps the time it began.
            since = old_since if state == old_state and old_since is not None else now
            self._run(
                "UPDATE devices SET state=?, boot_id=COALESCE(?, boot_id), "
                "connection=COALESCE(?, connection), edgemed_version=COALESCE(?, edgemed_version), "
                "models=COALESCE(?, models), outbox_depth=COALESCE(?, outbox_depth), "
                "state_since=? WHERE device_id=?",
                (
                    state, status.get("boot_id"), incoming, status.get("edgemed_version"),
                    json.dumps(models) if isinstance(models, list) else None,
                    status.get("outbox_depth"), since, device_id,
                ),
            )  # fmt: skip
            return True

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

    def results(
        self,
        *,
        device_id: str | None = None,
        model_id: str | None = None,
        kind: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before: tuple[float, str, int] | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest first. ``before`` is the (received_at, device_id, seq) of the last row of the
        previous page: keyset pagination, stable while new results arrive."""
        clauses, params = _equal(device_id=device_id, model_id=model_id, kind=kind)
        if since is not None:
            clauses.append("received_at>=?")
            params.append(since)
        if until is not None:
            clauses.append("received_at<?")
            params.append(until)
        if before is not None:
            clauses.append(
                "(received_at<? OR (received_at=? AND (device_id<? OR (device_id=? AND seq<?))))"
            )
            params += [before[0], before[0], before[1], before[1], before[2]]
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._rows(
            f"SELECT {_RESULT_COLUMNS} FROM results {where} "
            "ORDER BY received_at DESC, device_id DESC, seq DESC LIMIT ?",
            (*params, limit),
        )
        for row in rows:
            row["payload"] = json.loads(row["payload"])
        return rows

    def devices(self) -> list[dict[str, Any]]:
        return [_device_row(r) for r in self._rows("SELECT * FROM devices ORDER BY device_id")]

    def device(self, device_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM devices WHERE device_id=?", (device_id,))
        return _device_row(rows[0]) if rows else None

    def offline_since(self, before: float) -> list[dict[str, Any]]:
        """Devices whose last status is offline and that went offline before ``before``."""
        return self._rows(
            "SELECT device_id, state_since FROM devices WHERE state='offline' AND state_since<?",
            (before,),
        )

    def alerts(
        self,
        *,
        open_only: bool = False,
        device_id: str | None = None,
        rule: str | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """Newest first; ``open_only``: not yet acknowledged."""
        clauses, params = _equal(device_id=device_id, rule=rule)
        if open_only:
            clauses.append("acked_at IS NULL")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._rows(
            f"SELECT id, device_id, seq, rule, severity, detail, raised_at, acked_at, acked_by, "
            f"resolved_at FROM alerts {where} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )

    def model_inventory(self) -> list[dict[str, Any]]:
        """Which model versions the fleet runs: from each device's latest birth message."""
        counts: dict[tuple[str, str], list[str]] = {}
        for device in self.devices():
            for entry in device["models"]:
                model_id, _, version = str(entry).partition("@")
                counts.setdefault((model_id, version), []).append(device["device_id"])
        return [
            {"model_id": m, "version": v, "devices": len(ids), "device_ids": ids}
            for (m, v), ids in sorted(counts.items())
        ]

    def dead_letters(self) -> list[dict[str, Any]]:
        return self._rows("SELECT id, topic, reason, received_at FROM dead_letters ORDER BY id")

    def count_results(self) -> int:
        return int(self._rows("SELECT COUNT(*) AS n FROM results")[0]["n"])


def _row(msg: ResultMessage, now: float) -> tuple[Any, ...]:
    return (
        msg.device_id, msg.seq, msg.result_id, msg.boot_id, msg.model_id, msg.model_version,
        msg.kind, msg.created_at, now, msg.payload_sha256, msg.raw,
    )  # fmt: skip


def _equal(**columns: Any) -> tuple[list[str], list[Any]]:
    """WHERE clauses and parameters for the filters that were given (None: no filter)."""
    given = {c: v for c, v in columns.items() if v is not None}
    return [f"{c}=?" for c in given], list(given.values())


def _device_row(row: dict[str, Any]) -> dict[str, Any]:
    row["models"] = json.loads(row["models"]) if row["models"] else []
    return row


class SQLiteStore(SqlStore):
    """SQLite in WAL mode with synchronous=FULL: the default, zero-setup fleet store."""

    def __init__(self, path: Path | str) -> None:
        super().__init__()
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
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


def open_store(db: str | Path, *, schema: str = "edgemed") -> SqlStore:
    """``postgresql://…`` -> PostgresStore in ``schema`` (needs psycopg); anything else is a
    SQLite path."""
    text = str(db)
    if text.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(text, schema=schema)
    return SQLiteStore(Path(text))
