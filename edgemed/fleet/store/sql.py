"""The fleet store's logic over a DB-API connection, shared by both dialects (``sqlite.py``,
``postgres.py``): schema creation and migration, device status, alerts and dead letters. The
result writes (``results.py``), the queries (``queries.py``), alert episodes
(``fleet/episodes.py``) and exports (``fleet/exports/ledger.py``) are mixed in.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ...errors import SyncError
from ..alerts import Alert
from ..auth.accounts import AUTH_DDL, AccountStore
from ..auth.audit import AUDIT_DDL, AUDIT_GUARDS, AuditStore
from ..episodes import ALERT_COLUMNS, EPISODE_DDL, EpisodeStore
from ..exports.ledger import EXPORT_DDL, ExportStore
from ..rollouts.store import ROLLOUT_DDL, RolloutStore
from ..wards.registry import WARD_DDL
from .dead_letters import BACKFILL, DEAD_LETTER_DDL, DeadLetterStore
from .queries import StoreQueries
from .results import ResultWrites
from .retention import RetentionStore
from .schema import (
    ALERTS,
    EPOCH_TABLES,
    LIST_INDEXES,
    MIGRATIONS,
    REKEY_RESULTS,
    SCHEMA_VERSION,
    TABLES,
    UPSERT_DEVICE,
)

__all__ = ["SqlStore"]

_INSERT_ALERT = (
    "INSERT INTO alerts(device_id, seq, rule, severity, detail, raised_at, dedupe_key) "
    "VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING"
)


class SqlStore(
    ResultWrites, StoreQueries, EpisodeStore, ExportStore, DeadLetterStore, RetentionStore,
    AccountStore, AuditStore, RolloutStore,
):  # fmt: skip
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

    def _create_new_store(self) -> None:
        """Tables a new store of this dialect makes differently, before the full DDL."""

    def _audit_guards(self) -> list[str]:
        """Statements that make ``audit_log`` append-only in this dialect."""
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
            if version == 0:
                self._create_new_store()
            steps = [] if version == 0 else [
                step for v in range(version + 1, SCHEMA_VERSION + 1) for step in MIGRATIONS.get(v, ())
            ]  # fmt: skip
            # The full DDL is idempotent: after the upgrade steps it only adds what is missing.
            steps += [*TABLES.split(";"), *EPOCH_TABLES.split(";"), *EPISODE_DDL.split(";")]
            steps += [*EXPORT_DDL.split(";"), *LIST_INDEXES.split(";"), *DEAD_LETTER_DDL.split(";")]
            steps += WARD_DDL.split(";")
            steps += [*AUTH_DDL.split(";"), *AUDIT_DDL.split(";"), AUDIT_GUARDS]
            steps += ROLLOUT_DDL.split(";")  # bundles and rollouts (fleet/rollouts/store.py)
            for step in steps:
                if step == REKEY_RESULTS:
                    self._rekey_results()
                elif step == BACKFILL:
                    self._backfill_dead_letters()
                elif step == AUDIT_GUARDS:
                    for guard in self._audit_guards():
                        self._run(guard)
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
        alerts = ALERTS.format(serial=self._serial)
        return ddl.format(serial=self._serial, blob=self._blob, alerts=alerts)

    def _rekey_results(self) -> None:
        """Migration 4: key results on (device_id, epoch, seq) (dialect: how to change a key)."""
        raise NotImplementedError

    def ping(self) -> None:
        """A round trip to the database (health checks); raises what the driver raises."""
        self._rows("SELECT 1 AS one")

    def schema_version(self) -> int:
        return int(self._rows("SELECT MAX(version) AS v FROM schema_version")[0]["v"])

    # -- alerts, device status, dead letters ---------------------------------------------
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
            self._run(UPSERT_DEVICE, (device_id, now))
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

    # -- reads (queries.py builds on this) -----------------------------------------------
    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock, self._transaction():
            cur = self._run(sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _text(value: Any) -> str | None:
    return value[:64] if isinstance(value, str) else None


def _heartbeat(status: dict[str, Any]) -> float | None:
    """The device's announced heartbeat, if it gave a usable one (older devices do not)."""
    value = status.get("heartbeat_s")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 < value <= 86400 else None
