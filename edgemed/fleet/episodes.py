"""Alert episodes: one row per run of consecutive clinical alerts, not one per result.

Measured before this module: one seizure lasting 5 windows raised 5 urgent alerts (3 seizures,
15 alerts). Now consecutive alerts of one kind (``Alert.episode``: ``news2``, ``seizure``, and
the ``news2-incomplete`` notice) on one device fold into the open episode of that kind:
``episode_count``, ``first_at``/``last_at`` (result times), ``last_seq``, ``peak`` (highest
NEWS2 score, partial for a notice, or seizure probability). Clinicians are notified once when
the episode opens and again only when it escalates:

- a later alert of the episode is more severe (NEWS2 urgent -> emergency): the row takes the
  higher rule, severity and detail, and an acknowledged episode is open again;
- an urgent episode nobody acknowledged within ``AlertRules.ack_timeout_s`` becomes an emergency
  (``escalate_unacknowledged``, run by the server's sweeper).

An episode ends (``closed_at``) when a result of its kind raises nothing (``EpisodeClear``) or
when its next alert comes more than ``gap_s`` after its last one (that alert opens a new
episode). An ended episode stays listed as open until someone acknowledges it.

Everything here runs inside the store's transactions: an alert commits with the result that
raised it, as before. A partial unique index (one open episode per device and kind) keeps two
ingest workers from opening the same episode twice; the loser joins the winner's row.

Acknowledgements carry who (``by``) and an optional comment; each is also kept in
``alert_acks`` (the history, ready for named users: today the fleet has one shared token).
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from typing import Any

from .alerts import SEVERITY_RANK, Alert, EpisodeClear

__all__ = ["EPISODE_COLUMNS", "EPISODE_DDL", "EPISODE_MIGRATION", "EpisodeStore"]

# Columns of the alerts table added in schema version 6 (name, type).
EPISODE_COLUMNS = (
    ("episode", "TEXT"),
    ("episode_count", "BIGINT NOT NULL DEFAULT 1"),
    ("first_at", "DOUBLE PRECISION"),
    ("last_at", "DOUBLE PRECISION"),
    ("last_seq", "BIGINT"),
    ("peak", "DOUBLE PRECISION"),
    ("closed_at", "DOUBLE PRECISION"),
    ("escalated_at", "DOUBLE PRECISION"),
    ("notified_at", "DOUBLE PRECISION"),
    ("ack_comment", "TEXT"),
)
EPISODE_DDL = """
CREATE TABLE IF NOT EXISTS alert_acks (
    id {serial},
    alert_id BIGINT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    acked_by TEXT NOT NULL,
    comment TEXT,
    severity TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_acks_alert ON alert_acks(alert_id, id);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_open_episode ON alerts(device_id, episode)
    WHERE episode IS NOT NULL AND closed_at IS NULL
"""
EPISODE_MIGRATION = (
    *(f"ALTER TABLE alerts ADD COLUMN {name} {kind}" for name, kind in EPISODE_COLUMNS),
    *EPISODE_DDL.split(";"),
)
ALERT_COLUMNS = (
    "id, device_id, seq, rule, severity, detail, raised_at, acked_at, acked_by, resolved_at, "
    + ", ".join(name for name, _ in EPISODE_COLUMNS if name != "notified_at")
    + ", notified_at"
)
# An alert's SEVERITY_RANK in SQL (-1 for an unknown severity).
SEVERITY_SQL = (
    "(CASE severity "
    + " ".join(f"WHEN '{name}' THEN {rank}" for name, rank in SEVERITY_RANK.items())
    + " ELSE -1 END)"
)
# Open alerts: most severe first, then the longest waiting.
OPEN_ORDER = f"{SEVERITY_SQL} DESC, raised_at, id"
_OPEN_EPISODE = (
    "SELECT id, severity, first_at, last_at, last_seq, peak, episode_count FROM alerts "
    "WHERE device_id=? AND episode=? AND closed_at IS NULL"
)


class EpisodeStore:
    """The episode half of the store (mixed into ``SqlStore``, which supplies the hooks)."""

    _lock: threading.Lock
    _lock_row = ""

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _raise_episodic(self, alert: Alert, now: float) -> bool:
        """Fold ``alert`` into its open episode or open one; True when clinicians must be
        notified (a new episode, or an escalation of the open one)."""
        assert alert.episode is not None
        at = now if alert.at is None else alert.at
        for _ in range(2):
            row = self._run(_OPEN_EPISODE + self._lock_row, (alert.device_id, alert.episode))
            found = row.fetchone()
            if found is not None and abs(at - float(found[3])) > alert.gap_s:
                self._run("UPDATE alerts SET closed_at=? WHERE id=?", (now, found[0]))
                found = None  # a long pause: this alert starts a new episode
            if found is not None:
                return self._join(found, alert, at, now)
            cur = self._run(
                "INSERT INTO alerts(device_id, seq, rule, severity, detail, raised_at, episode, "
                "episode_count, first_at, last_at, last_seq, peak, notified_at) "
                "VALUES (?,?,?,?,?,?,?,1,?,?,?,?,?) ON CONFLICT DO NOTHING",
                (alert.device_id, alert.seq, alert.rule, alert.severity, alert.detail[:500],
                 now, alert.episode, at, at, alert.seq, alert.value, now),
            )  # fmt: skip
            if cur.rowcount == 1:
                return True
            # Another worker opened this episode a moment ago (PostgreSQL): join it.
        raise RuntimeError(f"alert episode {alert.episode!r} of {alert.device_id} is contended")

    def _join(self, found: tuple[Any, ...], alert: Alert, at: float, now: float) -> bool:
        alert_id, severity, first_at, last_at, last_seq, peak, count = found
        newer = at >= float(last_at)
        values: dict[str, Any] = {
            "episode_count": int(count) + 1,
            "first_at": min(float(first_at), at),
            "last_at": max(float(last_at), at),
            "last_seq": alert.seq if newer else last_seq,
            "peak": peak if alert.value is None else max(alert.value, peak or alert.value),
        }
        escalated = SEVERITY_RANK[alert.severity] > SEVERITY_RANK.get(str(severity), 0)
        if escalated:  # notify again; an acknowledged episode needs a new acknowledgement
            values |= {"rule": alert.rule, "severity": alert.severity,
                       "detail": alert.detail[:500], "notified_at": now, "acked_at": None,
                       "acked_by": None, "ack_comment": None}  # fmt: skip
        sets = ", ".join(f"{name}=?" for name in values)
        self._run(f"UPDATE alerts SET {sets} WHERE id=?", (*values.values(), alert_id))
        return escalated

    def _clear_episode(self, clear: EpisodeClear, now: float) -> None:
        """A result of the episode's kind raised nothing: its open episode ends (unless the
        clearing result is older than the episode's last alert: a late replay)."""
        self._run(
            "UPDATE alerts SET closed_at=? WHERE device_id=? AND episode=? "
            "AND closed_at IS NULL AND last_at<=?",
            (now, clear.device_id, clear.episode, clear.at),
        )

    def escalate_unacknowledged(self, now: float, after_s: float) -> list[Alert]:
        """Urgent episodes raised more than ``after_s`` ago and still unacknowledged become
        emergencies (once each); returns them, for the caller to announce."""
        with self._lock, self._transaction():
            rows = self._run(
                "SELECT id, device_id, last_seq, rule, detail, episode FROM alerts "
                "WHERE severity='urgent' AND episode IS NOT NULL AND acked_at IS NULL "
                "AND escalated_at IS NULL AND raised_at<?" + self._lock_row,
                (now - after_s,),
            ).fetchall()
            escalated = []
            for alert_id, device_id, seq, rule, detail, episode in rows:
                note = f"{detail}; not acknowledged within {after_s / 60:.0f} min: escalated"
                self._run(
                    "UPDATE alerts SET severity='emergency', escalated_at=?, notified_at=?, "
                    "detail=? WHERE id=?",
                    (now, now, note[:500], alert_id),
                )
                escalated.append(
                    Alert(device_id=device_id, seq=seq, rule=rule, severity="emergency",
                          detail=note, episode=episode)
                )  # fmt: skip
            return escalated

    def _record_ack(self, alert_id: int, now: float, by: str, comment: str | None) -> bool:
        """Acknowledge an unacknowledged alert and keep the acknowledgement in the history."""
        cur = self._run(
            "UPDATE alerts SET acked_at=?, acked_by=?, ack_comment=? "
            "WHERE id=? AND acked_at IS NULL",
            (now, by[:100], None if comment is None else comment[:500], alert_id),
        )
        if cur.rowcount != 1:
            return False
        self._run(
            "INSERT INTO alert_acks(alert_id, at, acked_by, comment, severity) "
            "SELECT id, acked_at, acked_by, ack_comment, severity FROM alerts WHERE id=?",
            (alert_id,),
        )
        return True
