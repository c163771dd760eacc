"""Retention: results, alerts and dead letters older than their configured age are deleted in
bounded batches, one transaction per batch, so ingest interleaves with a long purge (mixed into
``SqlStore``, which supplies the hooks).

Both dialects delete rows (PostgreSQL too: its tables are not partitioned by time yet, see
docs/fleet.md). What goes:

- a result received before the cutoff, with its encounter reference (``result_encounters``),
  and export ledger rows settled before the cutoff (they can only be of such results);
- an alert raised before the cutoff, once acknowledged and not an open episode (an
  unacknowledged alert is never deleted), with its acknowledgement history;
- a dead letter received before the cutoff (the refused-by-reason counts stay).
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

__all__ = ["DAY_S", "RetentionPolicy", "RetentionStore"]

DAY_S = 86400.0
_RESULT_BATCH = (
    "SELECT device_id, epoch, seq FROM results WHERE received_at<? ORDER BY received_at LIMIT ?"
)
_ALERT_BATCH = (
    "SELECT id FROM alerts WHERE raised_at<? AND acked_at IS NOT NULL "
    "AND (episode IS NULL OR closed_at IS NOT NULL) ORDER BY raised_at LIMIT ?"
)
_DEAD_LETTER_BATCH = "SELECT id FROM dead_letters WHERE received_at<? ORDER BY received_at LIMIT ?"


@dataclass(frozen=True)
class RetentionPolicy:
    """Days to keep each kind (None: forever); ``batch`` rows per transaction."""

    results_days: float | None = None
    alerts_days: float | None = None
    dead_letters_days: float | None = None
    batch: int = 5000

    @property
    def active(self) -> bool:
        return any(d is not None for d in (self.results_days, self.alerts_days,
                                           self.dead_letters_days))  # fmt: skip


class RetentionStore:
    """``apply_retention``: delete what the policy no longer keeps."""

    _lock: threading.Lock

    if TYPE_CHECKING:  # supplied by SqlStore

        def _run(self, sql: str, params: tuple[Any, ...] = ()) -> Any: ...

        def _transaction(self) -> AbstractContextManager[None]: ...

    def apply_retention(self, policy: RetentionPolicy, now: float) -> dict[str, int]:
        """Delete, batch by batch, what is older than the policy keeps; rows deleted per kind."""
        deleted = {"results": 0, "alerts": 0, "dead_letters": 0}
        steps = (
            ("results", policy.results_days, self._purge_results),
            ("alerts", policy.alerts_days, self._purge_alerts),
            ("dead_letters", policy.dead_letters_days, self._purge_dead_letters),
        )
        for kind, days, purge in steps:
            if days is None:
                continue
            cutoff = now - days * DAY_S
            while True:
                with self._lock, self._transaction():
                    n = purge(cutoff, policy.batch)
                deleted[kind] += n
                if n < policy.batch:
                    break
        return deleted

    def _purge_results(self, cutoff: float, batch: int) -> int:
        self._run(
            f"DELETE FROM result_encounters WHERE (device_id, epoch, seq) IN ({_RESULT_BATCH})",
            (cutoff, batch),
        )
        cur = self._run(
            f"DELETE FROM results WHERE (device_id, epoch, seq) IN ({_RESULT_BATCH})",
            (cutoff, batch),
        )
        self._purge_export_log(cutoff, batch)
        return int(cur.rowcount)

    def _purge_export_log(self, cutoff: float, batch: int) -> None:
        # Settled before the cutoff: of results received before it (what is left over goes
        # with the next batch or sweep).
        self._run(
            "DELETE FROM export_log WHERE (target, device_id, epoch, seq) IN (SELECT target, "
            "device_id, epoch, seq FROM export_log WHERE at<? ORDER BY at LIMIT ?)",
            (cutoff, batch * 4),
        )

    def _purge_alerts(self, cutoff: float, batch: int) -> int:
        self._run(f"DELETE FROM alert_acks WHERE alert_id IN ({_ALERT_BATCH})", (cutoff, batch))
        cur = self._run(f"DELETE FROM alerts WHERE id IN ({_ALERT_BATCH})", (cutoff, batch))
        return int(cur.rowcount)

    def _purge_dead_letters(self, cutoff: float, batch: int) -> int:
        cur = self._run(
            f"DELETE FROM dead_letters WHERE id IN ({_DEAD_LETTER_BATCH})", (cutoff, batch)
        )
        return int(cur.rowcount)
