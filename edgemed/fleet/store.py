"""Stage 9: the fleet's result store. SQLite by default; PostgreSQL in ``fleet/postgres.py``.

Both run the same SQL (``ON CONFLICT`` works in SQLite >= 3.24 and PostgreSQL); a dialect only
supplies the connection, its placeholder style and a few column types. The server creates and
migrates its own schema (``schema_version``; upgrades in ``_MIGRATIONS``).

Idempotence: results are keyed on (device_id, epoch, seq). A repeat with the same payload hash
is a duplicate (absorbed); with a different hash it is a conflict (an integrity alert plus a dead
letter, never an overwrite). Acks are per (device, epoch) (``device_epochs.acked_seq``): the
highest seq such that every seq up to it is committed; the device's ``lowest_unacked_seq`` lets
the fleet skip seqs that an earlier store already acknowledged. ``devices.acked_seq`` mirrors
the device's current epoch.

Epochs (sync/outbox.py): a device starts one each time it opens its outbox; payloads without one
(older devices) are filed under "". A new epoch whose seqs overlap those another epoch of the
device holds means the device's counter went back (outbox deleted, corrupted or restored from an
old copy): both are kept, and a ``seq-restart`` event in ``device_events`` records the gap.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import SyncError
from ..wire import ResultMessage
from .alerts import Alert, EpisodeClear
from .episodes import (
    ALERT_COLUMNS,
    EPISODE_COLUMNS,
    EPISODE_DDL,
    EPISODE_MIGRATION,
    OPEN_ORDER,
    EpisodeStore,
)
from .exports.ledger import EXPORT_DDL, ExportStore

__all__ = ["SCHEMA_VERSION", "Committed", "InsertOutcome", "SQLiteStore", "SqlStore", "open_store"]

InsertOutcome = Literal["stored", "duplicate", "conflict"]

# The alerts table as schema version 2 made it (migration 2); later columns are added by later
# migrations, and a new store gets them all from _ALERTS.
_ALERTS_V2 = """
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
_ALERTS = _ALERTS_V2.replace(
    "dedupe_key TEXT UNIQUE",
    "dedupe_key TEXT UNIQUE,\n    " + ",\n    ".join(f"{n} {t}" for n, t in EPISODE_COLUMNS),
)
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
    heartbeat_s DOUBLE PRECISION,
    last_seen DOUBLE PRECISION NOT NULL,
    epoch TEXT
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
    clock_suspect INTEGER NOT NULL DEFAULT 0,
    epoch TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (device_id, epoch, seq)
);
{alerts};
CREATE TABLE IF NOT EXISTS dead_letters (
    id {serial},
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload {blob} NOT NULL,
    received_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS fleet_identity (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    store_id TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_open ON alerts(acked_at, id);
CREATE INDEX IF NOT EXISTS results_received ON results(received_at);
"""

# Per (device, epoch): the ack, and where the epoch's seqs began (the lowest_unacked_seq it was
# first seen with). Events: what happened to a device's outbox (seq-restart, outbox-moved-aside).
_EPOCH_TABLES = """
CREATE TABLE IF NOT EXISTS device_epochs (
    device_id TEXT NOT NULL,
    epoch TEXT NOT NULL,
    acked_seq BIGINT NOT NULL DEFAULT 0,
    first_seq BIGINT NOT NULL,
    first_seen DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (device_id, epoch)
);
CREATE TABLE IF NOT EXISTS device_events (
    id {serial},
    device_id TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    epoch TEXT,
    previous_epoch TEXT,
    previous_acked_seq BIGINT,
    start_seq BIGINT,
    detail TEXT NOT NULL,
    dedupe_key TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS device_events_device ON device_events(device_id, id)
"""
# A migration step the dialect runs itself (_rekey_results): SQLite cannot alter a primary key.
_REKEY_RESULTS = "-- rekey results on (device_id, epoch, seq)"

SCHEMA_VERSION = 7
# Upgrades from version n-1 to n, run by the server itself (one transaction, under a lock).
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (
        "ALTER TABLE devices ADD COLUMN state_since DOUBLE PRECISION",
        _ALERTS_V2,
        "INSERT INTO alerts(device_id, seq, rule, severity, detail, raised_at) "
        "SELECT device_id, seq, kind, 'integrity', detail, raised_at FROM alarms",
        "DROP TABLE alarms",
    ),
    # clock_suspect: created_at implausible against the server clock (fleet/validation.py).
    # Rows stored before are marked by the default rule (before 2000, or a day ahead of receipt).
    3: (
        "ALTER TABLE results ADD COLUMN clock_suspect INTEGER NOT NULL DEFAULT 0",
        "UPDATE results SET clock_suspect=1 "
        "WHERE created_at < 946684800 OR created_at > received_at + 86400",
    ),
    # Results keyed on (device_id, epoch, seq); acks per epoch; device events.
    4: (
        _REKEY_RESULTS,
        "ALTER TABLE devices ADD COLUMN epoch TEXT",
        *_EPOCH_TABLES.split(";"),
        # Results stored so far are epoch "": their acks carry over.
        "INSERT INTO device_epochs(device_id, epoch, acked_seq, first_seq, first_seen) "
        "SELECT device_id, '', acked_seq, 1, last_seen FROM devices",
        "UPDATE devices SET epoch=''",
    ),
    # heartbeat_s: how often the device promised a status; silent for 1.5x that -> "unknown".
    5: ("ALTER TABLE devices ADD COLUMN heartbeat_s DOUBLE PRECISION",),
    # Alert episodes (fleet/episodes.py): episode columns, acknowledgement history.
    6: EPISODE_MIGRATION,
    # Exports (fleet/exports): encounter mapping, each result's encounter, what targets acked.
    7: tuple(EXPORT_DDL.split(";")),
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
    "received_at, payload_sha256, payload, clock_suspect, epoch"
)
_RESULT_VALUES = "(" + ",".join("?" * (_RESULT_COLUMNS.count(",") + 1)) + ")"
MAX_PAGE = 1000


@dataclass(frozen=True)
class Committed:
    """What one ``insert_results`` transaction committed."""

    outcomes: list[InsertOutcome]  # one per message, in the order given
    # per (device, epoch): the highest contiguous seq now held (the ack to send)
    acked: dict[tuple[str, str], int]
    alerts: list[Alert]  # raised in the same transaction


Evaluate = Callable[[ResultMessage], "list[Alert] | list[Alert | EpisodeClear]"]


class SqlStore(EpisodeStore, ExportStore):
    """The store's logic over a DB-API connection; thread-safe through one lock."""

    placeholder = "?"  # dialect: parameter style
    _lock_row = ""  # dialect: row-lock suffix for SELECT (PostgreSQL: " FOR UPDATE")
    _serial = "INTEGER PRIMARY KEY AUTOINCREMENT"  # dialect: auto-increment key column
    _blob = "BLOB"  # dialect: binary column

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.store_id = ""  # set by _create_or_migrate: a short random id, kept for life

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
            steps += [*_TABLES.split(";"), *_EPOCH_TABLES.split(";"), *EPISODE_DDL.split(";")]
            steps += EXPORT_DDL.split(";")
            for step in steps:
                if step == _REKEY_RESULTS:
                    self._rekey_results()
                elif step.strip():
                    self._run(self._format(step))
            self._run(
                "INSERT INTO schema_version(version) VALUES (?) ON CONFLICT DO NOTHING",
                (SCHEMA_VERSION,),
            )
            # The store's identity, made once: every fleet process writing here announces it,
            # so a fleet on another store sharing the broker is detected (fleet/presence.py).
            self._run(
                "INSERT INTO fleet_identity(singleton, store_id, created_at) VALUES (1, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (uuid.uuid4().hex[:16], time.time()),
            )
            (store_id,) = self._run("SELECT store_id FROM fleet_identity").fetchone()
            self.store_id = str(store_id)

    def _format(self, ddl: str) -> str:
        alerts = _ALERTS.format(serial=self._serial)
        return ddl.format(serial=self._serial, blob=self._blob, alerts=alerts)

    def _rekey_results(self) -> None:
        """Migration 4: key results on (device_id, epoch, seq) (dialect: how to change a key)."""
        raise NotImplementedError

    def ping(self) -> None:
        """A round trip to the database (health checks); raises what the driver raises."""
        self._rows("SELECT 1 AS one")

    def schema_version(self) -> int:
        return int(self._rows("SELECT MAX(version) AS v FROM schema_version")[0]["v"])

    # -- writes ---------------------------------------------------------------------------
    def insert_result(self, msg: ResultMessage) -> tuple[InsertOutcome, int]:
        """Commit one result idempotently; returns the outcome and its epoch's new ack seq."""
        done = self.insert_results([msg])
        return done.outcomes[0], done.acked[(msg.device_id, msg.epoch)]

    def insert_results(
        self, msgs: list[ResultMessage], evaluate: Evaluate | None = None
    ) -> Committed:
        """Commit many results in one transaction (one fsync), with the alerts they raise.

        ``evaluate`` gives the alerts of each newly stored result (not of duplicates); they
        commit atomically with it, so a crash can neither lose nor repeat an alert.
        """
        now = time.time()
        floors: dict[tuple[str, str], int] = {}
        for msg in msgs:
            key = (msg.device_id, msg.epoch)
            floors[key] = max(floors.get(key, 0), msg.lowest_unacked_seq)
        # Rows are locked in key order, devices in id order: concurrent workers on PostgreSQL
        # then always take locks in the same order and cannot deadlock.
        order = sorted(range(len(msgs)), key=lambda i: _key(msgs[i]))
        outcomes: list[InsertOutcome] = ["stored"] * len(msgs)
        raised: list[Alert] = []
        with self._lock, self._transaction():
            stored = self._insert_rows([msgs[i] for i in order], now)
            for i in order:
                msg = msgs[i]
                if _key(msg) in stored:
                    stored.discard(_key(msg))  # a repeat in this batch: duplicate
                    self._record_encounter(_key(msg), msg.body.get("encounter"), msg.created_at)
                    for item in evaluate(msg) if evaluate else ():
                        if isinstance(item, EpisodeClear):
                            self._clear_episode(item, now)
                        elif self._raise(item, now):
                            raised.append(item)
                else:
                    outcomes[i] = self._repeat(msg, now)
            acked = self._advance_all(floors, now)
        return Committed(outcomes, acked, raised)

    def _insert_rows(self, msgs: list[ResultMessage], now: float) -> set[tuple[str, str, int]]:
        """Insert, skipping existing keys; returns the keys this call stored."""
        stored: set[tuple[str, str, int]] = set()
        for msg in msgs:
            cur = self._run(
                f"INSERT INTO results({_RESULT_COLUMNS}) VALUES {_RESULT_VALUES} "
                "ON CONFLICT DO NOTHING",
                _row(msg, now),
            )
            if cur.rowcount == 1:
                stored.add(_key(msg))
        return stored

    def _repeat(self, msg: ResultMessage, now: float) -> InsertOutcome:
        (stored_hash,) = self._run(
            "SELECT payload_sha256 FROM results WHERE device_id=? AND epoch=? AND seq=?",
            _key(msg),
        ).fetchone()
        if stored_hash == msg.payload_sha256:
            return "duplicate"
        self._raise(
            Alert(
                device_id=msg.device_id, seq=msg.seq, rule="seq-conflict", severity="integrity",
                detail=f"seq {msg.seq} (epoch {msg.epoch or '-'}) repeated with a different "
                f"payload (result_id {msg.result_id}); the first payload is kept",
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

    def _advance_all(
        self, floors: dict[tuple[str, str], int], now: float
    ) -> dict[tuple[str, str], int]:
        """Per (device, epoch): touch the device, and move the epoch's ack to the top of its
        contiguous run of seqs. A device's epochs go in seq order (_new_epoch relies on it)."""
        return {
            key: self._advance(key[0], key[1], floors[key], now)
            for key in sorted(floors, key=lambda k: (k[0], floors[k]))
        }

    def _advance(self, device_id: str, epoch: str, lowest_unacked: int, now: float) -> int:
        self._run(_UPSERT_DEVICE, (device_id, now))
        # FOR UPDATE where supported: concurrent ingest workers serialise per device here.
        (current,) = self._run(
            "SELECT epoch FROM devices WHERE device_id=?" + self._lock_row, (device_id,)
        ).fetchone()
        row = self._run(
            "SELECT acked_seq FROM device_epochs WHERE device_id=? AND epoch=?", (device_id, epoch)
        ).fetchone()
        if row is None:
            current = self._new_epoch(device_id, epoch, lowest_unacked, current, now)
        stored_acked = 0 if row is None else int(row[0])
        acked = max(stored_acked, lowest_unacked - 1)  # the device holds nothing below
        while True:  # walk the contiguous run above acked, a page of seqs per query
            seqs = self._run(
                "SELECT seq FROM results WHERE device_id=? AND epoch=? AND seq>? "
                "ORDER BY seq LIMIT 512",
                (device_id, epoch, acked),
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
            self._run(
                "UPDATE device_epochs SET acked_seq=? WHERE device_id=? AND epoch=?",
                (acked, device_id, epoch),
            )
        if epoch == current:
            self._run("UPDATE devices SET acked_seq=? WHERE device_id=?", (acked, device_id))
        return acked

    def _new_epoch(
        self, device_id: str, epoch: str, first_seq: int, current: str | None, now: float
    ) -> str | None:
        """Record an epoch seen for the first time; returns the device's current epoch.

        ``first_seq`` is the batch's lowest_unacked_seq: until the fleet acknowledges anything
        of a new epoch, the device stamps every result of it with the epoch's first seq. If
        another epoch of this device holds a seq in [first_seq, highest seq of this epoch],
        the device's counter went back: its outbox was deleted, corrupted or restored from an
        old copy. Both epochs are kept and a ``seq-restart`` event records it. An epoch that
        lies wholly below the others is an older one arriving late: neither an event nor the
        device's current epoch. Otherwise (a reboot) it simply becomes the current epoch.
        """
        self._run(
            "INSERT INTO device_epochs(device_id, epoch, acked_seq, first_seq, first_seen) "
            "VALUES (?,?,0,?,?) ON CONFLICT DO NOTHING",
            (device_id, epoch, first_seq, now),
        )
        (top,) = self._run(
            "SELECT MAX(seq) FROM results WHERE device_id=? AND epoch=?", (device_id, epoch)
        ).fetchone()
        overlapping = self._run(
            "SELECT e.epoch, e.acked_seq FROM device_epochs e WHERE e.device_id=? "
            "AND e.epoch<>? AND e.first_seq<=? AND EXISTS (SELECT 1 FROM results r WHERE "
            "r.device_id=e.device_id AND r.epoch=e.epoch AND r.seq>=?) "
            "ORDER BY e.first_seen DESC, e.epoch LIMIT 1",
            (device_id, epoch, max(first_seq, top or 0), first_seq),
        ).fetchone()
        if overlapping is not None:
            previous, previous_acked = overlapping[0], int(overlapping[1])
            self._record_event(
                device_id, "seq-restart", now, epoch=epoch, previous_epoch=previous,
                previous_acked_seq=previous_acked, start_seq=first_seq,
                detail=f"outbox replaced or rewound (deleted, corrupted or restored): new epoch "
                f"{_short(epoch)} starts at seq {first_seq}; previous epoch {_short(previous)} "
                f"ended at acked seq {previous_acked}. Both are kept.",
                dedupe_key=f"seq-restart:{device_id}:{epoch}",
            )  # fmt: skip
        elif current is not None:
            (current_first,) = self._run(
                "SELECT first_seq FROM device_epochs WHERE device_id=? AND epoch=?",
                (device_id, current),
            ).fetchone() or (None,)
            if current_first is not None and first_seq < int(current_first):
                return current  # an older epoch, late
        self._run("UPDATE devices SET epoch=? WHERE device_id=?", (epoch, device_id))
        return epoch

    def _record_event(
        self, device_id: str, kind: str, now: float, *, detail: str, dedupe_key: str,
        epoch: str | None = None, previous_epoch: str | None = None,
        previous_acked_seq: int | None = None, start_seq: int | None = None,
    ) -> bool:  # fmt: skip
        """Insert a device event unless one with the same dedupe key exists."""
        cur = self._run(
            "INSERT INTO device_events(device_id, at, kind, epoch, previous_epoch, "
            "previous_acked_seq, start_seq, detail, dedupe_key) VALUES (?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT DO NOTHING",
            (device_id, now, kind, epoch, previous_epoch, previous_acked_seq, start_seq,
             detail[:500], dedupe_key),
        )  # fmt: skip
        return bool(cur.rowcount == 1)

    def _raise(self, alert: Alert, now: float) -> bool:
        """Insert an alert unless one with the same dedupe key was ever raised; a clinical
        alert folds into its episode (True: new or escalated, to be announced)."""
        if alert.episode is not None:
            return self._raise_episodic(alert, now)
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

    def acknowledge_alert(
        self, alert_id: int, *, by: str, comment: str | None = None
    ) -> dict[str, Any] | None:
        """Mark an alert acknowledged, by whom and with an optional comment (idempotent: the
        first acknowledgement stands until the episode escalates); None if there is no such
        alert. Every acknowledgement is kept in ``alert_acks``."""
        now = time.time()
        with self._lock, self._transaction():
            self._record_ack(alert_id, now, by, comment)
        rows = self._rows(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id=?", (alert_id,))
        if not rows:
            return None
        rows[0]["acks"] = self._rows(
            "SELECT at, acked_by, comment, severity FROM alert_acks WHERE alert_id=? ORDER BY id",
            (alert_id,),
        )
        return rows[0]

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
                "heartbeat_s=COALESCE(?, heartbeat_s), state_since=? WHERE device_id=?",
                (
                    state, status.get("boot_id"), incoming, status.get("edgemed_version"),
                    json.dumps(models) if isinstance(models, list) else None,
                    status.get("outbox_depth"), _heartbeat(status), since, device_id,
                ),
            )  # fmt: skip
            moved = status.get("outbox_moved_aside")
            if isinstance(moved, str) and moved:
                # The device found its outbox corrupted and moved it aside (sync/outbox.py).
                name = moved[:200]
                self._record_event(
                    device_id, "outbox-moved-aside", now, epoch=_text(status.get("epoch")),
                    detail=f"the device found its outbox corrupted and moved it aside as "
                    f"{name!r} (kept on the device for recovery); it started a new outbox",
                    dedupe_key=f"outbox-moved-aside:{device_id}:{name}",
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
            row["clock_suspect"] = bool(row["clock_suspect"])
        return rows

    def devices(self) -> list[dict[str, Any]]:
        return [_device_row(r) for r in self._rows("SELECT * FROM devices ORDER BY device_id")]

    def device(self, device_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM devices WHERE device_id=?", (device_id,))
        return _device_row(rows[0]) if rows else None

    def offline_since(self, before: float) -> list[dict[str, Any]]:
        """Devices offline (or silent: "unknown") since before ``before``."""
        return self._rows(
            "SELECT device_id, state_since FROM devices "
            "WHERE state IN ('offline', 'unknown') AND state_since<?",
            (before,),
        )

    def expire_silent(self, now: float) -> list[str]:
        """Online devices silent for 1.5x their announced heartbeat become "unknown" since
        their last message: a device's last will can be lost (a broker restarted without
        persistence while the device was dead), so "online" must not rest on it alone."""
        where = "state='online' AND heartbeat_s IS NOT NULL AND last_seen < ? - 1.5 * heartbeat_s"
        with self._lock, self._transaction():
            rows = self._run(f"SELECT device_id FROM devices WHERE {where}", (now,)).fetchall()
            if rows:
                self._run(
                    f"UPDATE devices SET state='unknown', state_since=last_seen WHERE {where}",
                    (now,),
                )
        return [str(r[0]) for r in rows]

    def alerts(
        self,
        *,
        open_only: bool = False,
        device_id: str | None = None,
        rule: str | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """Newest first; ``open_only``: not yet acknowledged, most severe first, then the
        longest waiting. A clinical alert is an episode (fleet/episodes.py)."""
        clauses, params = _equal(device_id=device_id, rule=rule)
        if open_only:
            clauses.append("acked_at IS NULL")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = OPEN_ORDER if open_only else "id DESC"
        return self._rows(
            f"SELECT {ALERT_COLUMNS} FROM alerts {where} ORDER BY {order} LIMIT ?",
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

    def device_events(self, device_id: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """What happened to a device's outbox (``seq-restart``, ``outbox-moved-aside``), newest
        first."""
        return self._rows(
            "SELECT id, device_id, at, kind, epoch, previous_epoch, previous_acked_seq, "
            "start_seq, detail FROM device_events WHERE device_id=? ORDER BY id DESC LIMIT ?",
            (device_id, limit),
        )

    def dead_letters(self) -> list[dict[str, Any]]:
        return self._rows("SELECT id, topic, reason, received_at FROM dead_letters ORDER BY id")

    def count_results(self) -> int:
        return int(self._rows("SELECT COUNT(*) AS n FROM results")[0]["n"])


def _row(msg: ResultMessage, now: float) -> tuple[Any, ...]:
    return (
        msg.device_id, msg.seq, msg.result_id, msg.boot_id, msg.model_id, msg.model_version,
        msg.kind, msg.created_at, now, msg.payload_sha256, msg.raw, int(msg.clock_suspect),
        msg.epoch,
    )  # fmt: skip


def _key(msg: ResultMessage) -> tuple[str, str, int]:
    return msg.device_id, msg.epoch, msg.seq


def _text(value: Any) -> str | None:
    return value[:64] if isinstance(value, str) else None


def _short(epoch: str) -> str:
    """An epoch as events show it: long enough to tell apart, short enough to read."""
    return repr(epoch[:12]) if epoch else "'' (before epochs)"


def _heartbeat(status: dict[str, Any]) -> float | None:
    """The device's announced heartbeat, if it gave a usable one (older devices do not)."""
    value = status.get("heartbeat_s")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 < value <= 86400 else None


def _equal(**columns: Any) -> tuple[list[str], list[Any]]:
    """WHERE clauses and parameters for the filters that were given (None: no filter)."""
    given = {c: v for c, v in columns.items() if v is not None}
    return [f"{c}=?" for c in given], list(given.values())


def _device_row(row: dict[str, Any]) -> dict[str, Any]:
    row["models"] = json.loads(row["models"]) if row["models"] else []
    return row


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

    def _rekey_results(self) -> None:
        # SQLite cannot change a primary key: rebuild the table (rename, create, copy, drop),
        # inside the migration's transaction. Every column the old table has is copied; the
        # new one gets its definition from _TABLES, epoch "" by default.
        columns = ", ".join(row[1] for row in self._db.execute("PRAGMA table_info(results)"))
        self._db.execute("ALTER TABLE results RENAME TO results_before_epochs")
        (create,) = [s for s in _TABLES.split(";") if "TABLE IF NOT EXISTS results (" in s]
        self._db.execute(self._format(create))
        self._db.execute(
            f"INSERT INTO results({columns}) SELECT {columns} FROM results_before_epochs"
        )
        self._db.execute("DROP TABLE results_before_epochs")  # with its index; _TABLES remakes it

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
