"""What the API and the dashboard read: the query half of ``SqlStore`` (mixed into
``SqlStore``, which supplies the hooks)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..alerts import SEVERITY_RANK
from ..episodes import ALERT_COLUMNS, OPEN_ORDER, SEVERITY_SQL
from .schema import RESULT_COLUMNS

__all__ = ["MAX_PAGE", "StoreQueries", "alert_cursor"]

MAX_PAGE = 1000  # the most rows one API page returns


class StoreQueries:
    """Results, devices, alerts and events, newest first where it matters (dead letters:
    ``dead_letters.py``)."""

    if TYPE_CHECKING:  # supplied by SqlStore

        def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]: ...

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
        rows = self._rows(
            *self.results_sql(
                device_id=device_id, model_id=model_id, kind=kind, since=since, until=until,
                before=before, limit=limit,
            )
        )  # fmt: skip
        for row in rows:
            row["payload"] = json.loads(row["payload"])
            row["clock_suspect"] = bool(row["clock_suspect"])
        return rows

    def results_sql(
        self, *, device_id: str | None = None, model_id: str | None = None,
        kind: str | None = None, since: float | None = None, until: float | None = None,
        before: tuple[float, str, int] | None = None, limit: int = 100,
    ) -> tuple[str, tuple[Any, ...]]:  # fmt: skip
        """The results list query and its parameters (each filter has an index: schema 8's
        LIST_INDEXES; tests EXPLAIN it)."""
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
        sql = (
            f"SELECT {RESULT_COLUMNS} FROM results {where} "
            "ORDER BY received_at DESC, device_id DESC, seq DESC LIMIT ?"
        )
        return sql, (*params, limit)

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

    def alerts(
        self,
        *,
        open_only: bool = False,
        device_id: str | None = None,
        rule: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after: tuple[Any, ...] | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """Newest first; ``open_only``: not yet acknowledged, most severe first, then the
        longest waiting. A clinical alert is an episode (fleet/episodes.py). ``since`` and
        ``until`` bound ``raised_at``; ``after`` is ``alert_cursor`` of the previous page's
        last row (keyset: a page never repeats or skips a row because others were added)."""
        return self._rows(
            *self.alerts_sql(open_only=open_only, device_id=device_id, rule=rule, since=since,
                             until=until, after=after, limit=limit)
        )  # fmt: skip

    def alerts_sql(
        self, *, open_only: bool = False, device_id: str | None = None,
        rule: str | None = None, since: float | None = None, until: float | None = None,
        after: tuple[Any, ...] | None = None, limit: int = 200,
    ) -> tuple[str, tuple[Any, ...]]:  # fmt: skip
        """The alerts list query and its parameters (tests EXPLAIN it)."""
        clauses, params = _equal(device_id=device_id, rule=rule)
        if open_only:
            clauses.append("acked_at IS NULL")
        for clause, value in (("raised_at>=?", since), ("raised_at<?", until)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        if after is not None and open_only:  # (severity rank desc, raised_at, id)
            rank, raised_at, id_ = after
            clauses.append(f"({SEVERITY_SQL}<? OR ({SEVERITY_SQL}=? AND (raised_at>? OR "
                           "(raised_at=? AND id>?))))")  # fmt: skip
            params += [rank, rank, raised_at, raised_at, id_]
        elif after is not None:
            clauses.append("id<?")
            params.append(after[-1])
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = OPEN_ORDER if open_only else "id DESC"
        sql = f"SELECT {ALERT_COLUMNS} FROM alerts {where} ORDER BY {order} LIMIT ?"
        return sql, (*params, limit)

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

    def count_results(self) -> int:
        return int(self._rows("SELECT COUNT(*) AS n FROM results")[0]["n"])


def alert_cursor(row: dict[str, Any], *, open_only: bool) -> tuple[Any, ...]:
    """The ``after`` of the page that follows ``row`` (the last row of a page)."""
    if open_only:
        return (SEVERITY_RANK.get(row["severity"], -1), row["raised_at"], row["id"])
    return (row["id"],)


def _equal(**columns: Any) -> tuple[list[str], list[Any]]:
    """WHERE clauses and parameters for the filters that were given (None: no filter)."""
    given = {c: v for c, v in columns.items() if v is not None}
    return [f"{c}=?" for c in given], list(given.values())


def _device_row(row: dict[str, Any]) -> dict[str, Any]:
    row["models"] = json.loads(row["models"]) if row["models"] else []
    return row
