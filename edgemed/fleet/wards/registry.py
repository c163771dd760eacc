"""Wards, beds and the devices that serve each bed (schema version 10), and the hospital's
time zone.

Tables:

- ``wards``: a ward's opaque id (``5B``, ``icu-north``) and its display name;
- ``beds``: the beds of a ward (``bed_id`` unique within the ward, an optional display label);
- ``bed_devices``: which bed each device serves. A device serves at most one bed (assigning it
  elsewhere moves it); a bed may have several (a monitor reader, an EEG amplifier, ...). A
  device may be assigned before it has ever connected;
- ``ward_settings``: fleet-wide settings of the ward page (``timezone``: an IANA zone name).

A bed is a place, never a person: no patient identifier belongs in an id, a name or a label
(patients are mapped to results through the encounter mapping, ``fleet/exports``). The
registry works through the store's own connection and lock (``SqlStore`` hooks), so every
change is one transaction on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
import re
import time
import zoneinfo
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ...errors import InputError
from ..episodes import ALERT_COLUMNS, OPEN_ORDER

if TYPE_CHECKING:
    from ..store import SqlStore

__all__ = [
    "BED_ID",
    "DEFAULT_TIMEZONE",
    "MAX_BEDS",
    "MAX_DEVICES_PER_BED",
    "WARD_DDL",
    "WARD_ID",
    "WardRegistry",
    "natural_key",
    "valid_timezone",
]

WARD_DDL = """
CREATE TABLE IF NOT EXISTS wards (
    ward_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS beds (
    ward_id TEXT NOT NULL,
    bed_id TEXT NOT NULL,
    label TEXT,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (ward_id, bed_id)
);
CREATE TABLE IF NOT EXISTS bed_devices (
    device_id TEXT PRIMARY KEY,
    ward_id TEXT NOT NULL,
    bed_id TEXT NOT NULL,
    assigned_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS bed_devices_bed ON bed_devices(ward_id, bed_id);
CREATE TABLE IF NOT EXISTS ward_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
)
"""
WARD_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # the shape of a device id
BED_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"
DEVICE_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # as edgemed/schemas/result-1.json has it
MAX_BEDS = 200  # per ward
MAX_DEVICES_PER_BED = 16
DEFAULT_TIMEZONE = "UTC"
# What the ward page reads of a result (store/schema.py cannot be imported here: it imports us).
_RESULT = (
    "device_id, seq, epoch, model_id, model_version, kind, created_at, received_at, payload, "
    "clock_suspect"
)
_TZ = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$")


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def valid_timezone(name: str) -> bool:
    """An IANA time zone name this machine knows (``Europe/London``, ``UTC``)."""
    return bool(_TZ.fullmatch(name)) and (name == "UTC" or name in _zones())


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key putting bed 2 before bed 10."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", text) if p)


def _check(value: str, pattern: str, what: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise InputError(f"{what} {str(value)[:70]!r} must match {pattern}")
    return value


class WardRegistry:
    """Wards, beds and bed assignments in ``store`` (its connection, lock and transactions)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.store._run(sql, params)

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return self.store._rows(sql, params)

    # -- wards ---------------------------------------------------------------------------
    def put_ward(self, ward_id: str, *, name: str | None = None) -> dict[str, Any]:
        """Create a ward or rename it (``name`` defaults to the id)."""
        _check(ward_id, WARD_ID, "ward id")
        shown = (name or ward_id).strip()[:100] or ward_id
        with self.store._lock, self.store._transaction():
            self._write(
                "INSERT INTO wards(ward_id, name, updated_at) VALUES (?,?,?) "
                "ON CONFLICT(ward_id) DO UPDATE SET name=excluded.name, "
                "updated_at=excluded.updated_at",
                (ward_id, shown, time.time()),
            )
        found = self.ward(ward_id)
        assert found is not None
        return found

    def wards(self) -> list[dict[str, Any]]:
        """Every ward with its number of beds and of assigned devices, in natural order."""
        rows = self._rows(
            "SELECT w.ward_id, w.name, w.updated_at, "
            "(SELECT COUNT(*) FROM beds b WHERE b.ward_id=w.ward_id) AS beds, "
            "(SELECT COUNT(*) FROM bed_devices d WHERE d.ward_id=w.ward_id) AS devices "
            "FROM wards w"
        )
        return sorted(rows, key=lambda r: natural_key(r["ward_id"]))

    def ward(self, ward_id: str) -> dict[str, Any] | None:
        """A ward with its beds (natural order), each with its devices; None if unknown."""
        found = self._rows(
            "SELECT ward_id, name, updated_at FROM wards WHERE ward_id=?", (ward_id,)
        )
        if not found:
            return None
        beds = self._rows("SELECT bed_id, label, updated_at FROM beds WHERE ward_id=?", (ward_id,))
        devices = self._rows(
            "SELECT device_id, bed_id, assigned_at FROM bed_devices WHERE ward_id=? "
            "ORDER BY device_id",
            (ward_id,),
        )
        for bed in beds:
            bed["devices"] = [d["device_id"] for d in devices if d["bed_id"] == bed["bed_id"]]
        return {**found[0], "beds": sorted(beds, key=lambda b: natural_key(b["bed_id"]))}

    def delete_ward(self, ward_id: str) -> bool:
        """Delete an empty ward (InputError while it has beds: delete them first)."""
        with self.store._lock, self.store._transaction():
            (beds,) = self._write(
                "SELECT COUNT(*) FROM beds WHERE ward_id=?", (ward_id,)
            ).fetchone()
            if beds:
                raise InputError(f"ward {ward_id} has {beds} bed(s): delete them first")
            return bool(self._write("DELETE FROM wards WHERE ward_id=?", (ward_id,)).rowcount)

    # -- beds ----------------------------------------------------------------------------
    def put_bed(
        self, ward_id: str, bed_id: str, *, label: str | None = None,
        devices: list[str] | None = None,
    ) -> dict[str, Any] | None:  # fmt: skip
        """Create or relabel a bed of an existing ward (None: no such ward). ``devices``, when
        given, becomes the bed's whole device list: devices serving another bed move here,
        devices of this bed not listed are unassigned."""
        _check(bed_id, BED_ID, "bed id")
        listed = list(dict.fromkeys(_check(d, DEVICE_ID, "device id") for d in devices or []))
        if len(listed) > MAX_DEVICES_PER_BED:
            raise InputError(f"a bed has at most {MAX_DEVICES_PER_BED} devices")
        now = time.time()
        with self.store._lock, self.store._transaction():
            if self._write("SELECT 1 FROM wards WHERE ward_id=?", (ward_id,)).fetchone() is None:
                return None
            known = self._write(
                "SELECT 1 FROM beds WHERE ward_id=? AND bed_id=?", (ward_id, bed_id)
            ).fetchone()
            if known is None:
                (count,) = self._write(
                    "SELECT COUNT(*) FROM beds WHERE ward_id=?", (ward_id,)
                ).fetchone()
                if count >= MAX_BEDS:
                    raise InputError(f"a ward has at most {MAX_BEDS} beds")
            self._write(
                "INSERT INTO beds(ward_id, bed_id, label, updated_at) VALUES (?,?,?,?) "
                "ON CONFLICT(ward_id, bed_id) DO UPDATE SET label=excluded.label, "
                "updated_at=excluded.updated_at",
                (ward_id, bed_id, (label or "").strip()[:64] or None, now),
            )
            if devices is not None:
                self._write(
                    "DELETE FROM bed_devices WHERE ward_id=? AND bed_id=?", (ward_id, bed_id)
                )
                for device_id in listed:
                    self._assign(device_id, ward_id, bed_id, now)
        return self.bed(ward_id, bed_id)

    def bed(self, ward_id: str, bed_id: str) -> dict[str, Any] | None:
        ward = self.ward(ward_id)
        beds = [b for b in (ward or {}).get("beds", []) if b["bed_id"] == bed_id]
        return {"ward_id": ward_id, **beds[0]} if beds else None

    def delete_bed(self, ward_id: str, bed_id: str) -> bool:
        """Delete a bed; its devices are unassigned (their results stay)."""
        with self.store._lock, self.store._transaction():
            self._write("DELETE FROM bed_devices WHERE ward_id=? AND bed_id=?", (ward_id, bed_id))
            cur = self._write("DELETE FROM beds WHERE ward_id=? AND bed_id=?", (ward_id, bed_id))
            return bool(cur.rowcount)

    # -- devices -------------------------------------------------------------------------
    def _assign(self, device_id: str, ward_id: str, bed_id: str, now: float) -> None:
        self._write(
            "INSERT INTO bed_devices(device_id, ward_id, bed_id, assigned_at) VALUES (?,?,?,?) "
            "ON CONFLICT(device_id) DO UPDATE SET ward_id=excluded.ward_id, "
            "bed_id=excluded.bed_id, assigned_at=excluded.assigned_at",
            (device_id, ward_id, bed_id, now),
        )

    def assign(self, device_id: str, ward_id: str, bed_id: str) -> dict[str, Any] | None:
        """The device serves this bed from now on (moved from any other); None: no such bed."""
        _check(device_id, DEVICE_ID, "device id")
        with self.store._lock, self.store._transaction():
            bed = self._write(
                "SELECT 1 FROM beds WHERE ward_id=? AND bed_id=?", (ward_id, bed_id)
            ).fetchone()
            if bed is None:
                return None
            (count,) = self._write(
                "SELECT COUNT(*) FROM bed_devices WHERE ward_id=? AND bed_id=? AND device_id<>?",
                (ward_id, bed_id, device_id),
            ).fetchone()
            if count >= MAX_DEVICES_PER_BED:
                raise InputError(f"a bed has at most {MAX_DEVICES_PER_BED} devices")
            self._assign(device_id, ward_id, bed_id, time.time())
        return self.bed(ward_id, bed_id)

    def unassign(self, device_id: str) -> bool:
        with self.store._lock, self.store._transaction():
            cur = self._write("DELETE FROM bed_devices WHERE device_id=?", (device_id,))
            return bool(cur.rowcount)

    def placement(self, device_id: str) -> dict[str, Any] | None:
        """The ward and bed a device serves, or None."""
        rows = self._rows(
            "SELECT device_id, ward_id, bed_id, assigned_at FROM bed_devices WHERE device_id=?",
            (device_id,),
        )
        return rows[0] if rows else None

    # -- settings ------------------------------------------------------------------------
    def timezone(self) -> str:
        """The hospital's time zone (``ward_settings``), else ``DEFAULT_TIMEZONE``."""
        rows = self._rows("SELECT value FROM ward_settings WHERE name='timezone'")
        return str(rows[0]["value"]) if rows else DEFAULT_TIMEZONE

    def set_timezone(self, name: str) -> str:
        if not valid_timezone(name):
            raise InputError(f"{name[:70]!r} is not an IANA time zone name (e.g. Europe/London)")
        with self.store._lock, self.store._transaction():
            self._write(
                "INSERT INTO ward_settings(name, value, updated_at) VALUES ('timezone', ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value=excluded.value, "
                "updated_at=excluded.updated_at",
                (name, time.time()),
            )
        return name

    # -- what the ward page reads ---------------------------------------------------------
    def window_results(
        self, device_id: str, since: float, *, skip_kind: str, limit: int
    ) -> list[dict[str, Any]]:
        """A device's results received since ``since`` but those of ``skip_kind`` (a
        streamed kind, read as ``peak_trend``), newest first, payloads parsed."""
        rows = self._rows(
            f"SELECT {_RESULT} FROM results WHERE device_id=? AND received_at>=? "
            "AND kind<>? ORDER BY received_at DESC, seq DESC LIMIT ?",
            (device_id, since, skip_kind, limit),
        )
        for row in rows:
            row["payload"] = json.loads(row["payload"])
        return rows

    def peak_trend(
        self, device_id: str, kind: str, since: float, bucket_s: float
    ) -> list[tuple[float, float]]:
        """The highest ``result.probability`` of a device's ``kind`` per ``bucket_s`` since
        ``since`` (result time; receive time for a suspect clock), oldest first: a streamed
        kind's trend without parsing each payload in Python (SQLite ``json_extract``,
        PostgreSQL ``#>>``). One device per query, so that its index serves it."""
        at = "CASE WHEN clock_suspect=1 THEN received_at ELSE created_at END"
        value = (
            "CAST((payload::json) #>> '{result,probability}' AS DOUBLE PRECISION)"
            if self.store.placeholder != "?"
            else "json_extract(payload, '$.result.probability')"
        )
        rows = self._rows(
            f"SELECT MAX({at}) AS at, MAX({value}) AS peak FROM results "
            f"WHERE device_id=? AND received_at>=? AND kind=? "
            f"GROUP BY CAST(({at}) / ? AS BIGINT) ORDER BY 1",
            (device_id, since, kind, bucket_s),
        )
        return [(float(r["at"]), float(r["peak"])) for r in rows if r["peak"] is not None]

    # -- alerts of a ward's devices ------------------------------------------------------
    def open_alerts(self, device_ids: list[str], limit: int = 500) -> list[dict[str, Any]]:
        """Unacknowledged alerts of these devices: most severe first, then the longest waiting."""
        if not device_ids:
            return []
        marks = ",".join("?" * len(device_ids))
        return self._rows(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE acked_at IS NULL "
            f"AND device_id IN ({marks}) ORDER BY {OPEN_ORDER} LIMIT ?",
            (*device_ids, limit),
        )

    def acknowledged_since(
        self, device_ids: list[str], since: float, limit: int = 200
    ) -> list[dict[str, Any]]:
        """Alerts of these devices acknowledged at or after ``since``, latest first."""
        if not device_ids:
            return []
        marks = ",".join("?" * len(device_ids))
        return self._rows(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE acked_at>=? AND device_id IN ({marks}) "
            "ORDER BY acked_at DESC LIMIT ?",
            (since, *device_ids, limit),
        )
