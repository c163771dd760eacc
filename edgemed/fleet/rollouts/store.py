"""What rollouts keep in the fleet store (schema version 11), mixed into ``SqlStore``.

- ``bundles``: every accepted bundle archive by its sha256 (the file itself lies in the
  fleet's bundle folder, named by that hash), with the model id, version and signing key.
- ``rollouts``: one row per rollout: its bundle, waves, success criteria, state (``running``,
  ``paused``, ``completed``, ``halted``: too many devices failed, ``aborted``) and its
  download token (devices download with it, never with the API token).
- ``rollout_devices``: each target device's wave, position and state: ``pending`` (not yet
  commanded), ``commanded``, then what the device reports (``downloading`` … ``switched``,
  ``failed``, ``rolled-back``, ``aborted``), or ``timed-out`` / ``skipped`` set by the fleet.
- ``device_groups``: named sets of device ids a rollout may target.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ...delivery import RolloutReport
from ..store_hooks import StoreHooks

__all__ = ["ROLLOUT_DDL", "RolloutStore"]

ROLLOUT_DDL = """
CREATE TABLE IF NOT EXISTS bundles (
    sha256 TEXT PRIMARY KEY,
    model_id TEXT NOT NULL,
    version TEXT NOT NULL,
    size BIGINT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    key_id TEXT,
    uploaded_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS rollouts (
    id {serial},
    bundle_sha256 TEXT NOT NULL,
    model_id TEXT NOT NULL,
    version TEXT NOT NULL,
    state TEXT NOT NULL,
    canary INTEGER NOT NULL,
    waves INTEGER NOT NULL,
    criteria TEXT NOT NULL,
    max_failures INTEGER NOT NULL,
    wave_timeout_s DOUBLE PRECISION NOT NULL,
    token TEXT NOT NULL,
    reason TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS rollouts_state ON rollouts(state, id);
CREATE TABLE IF NOT EXISTS rollout_devices (
    rollout_id BIGINT NOT NULL,
    device_id TEXT NOT NULL,
    wave INTEGER NOT NULL,
    position INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    report TEXT,
    report_seq BIGINT,
    commanded_at DOUBLE PRECISION,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (rollout_id, device_id)
);
CREATE INDEX IF NOT EXISTS rollout_devices_device ON rollout_devices(device_id, rollout_id);
CREATE TABLE IF NOT EXISTS device_groups (
    name TEXT NOT NULL,
    device_id TEXT NOT NULL,
    PRIMARY KEY (name, device_id)
)
"""
ACTIVE = ("running", "paused")
# A device in one of these is done with its rollout (for better or worse).
DEVICE_DONE = ("switched", "failed", "rolled-back", "aborted", "timed-out", "skipped")
_ROLLOUT_COLUMNS = (
    "id, bundle_sha256, model_id, version, state, canary, waves, criteria, max_failures, "
    "wave_timeout_s, reason, created_at, updated_at"
)
_DEVICE_COLUMNS = (
    "device_id, wave, position, state, reason, report, report_seq, commanded_at, updated_at"
)


class RolloutStore(StoreHooks):
    """The rollout half of the store (the hooks come from ``SqlStore``)."""

    store_id: str

    # -- bundles ----------------------------------------------------------------------------
    def add_bundle(self, row: dict[str, Any], now: float) -> bool:
        """Record an accepted archive; False if that hash was already there."""
        with self._lock, self._transaction():
            cur = self._run(
                "INSERT INTO bundles(sha256, model_id, version, size, manifest_sha256, key_id, "
                "uploaded_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                (row["sha256"], row["model_id"], row["version"], row["size"],
                 row["manifest_sha256"], row["key_id"], now),
            )  # fmt: skip
            return bool(cur.rowcount == 1)

    def bundle(self, sha256: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM bundles WHERE sha256=?", (sha256,))
        return rows[0] if rows else None

    def bundles(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM bundles ORDER BY uploaded_at DESC LIMIT ?", (limit,))

    # -- groups -----------------------------------------------------------------------------
    def set_group(self, name: str, devices: list[str]) -> None:
        with self._lock, self._transaction():
            self._run("DELETE FROM device_groups WHERE name=?", (name,))
            for device_id in sorted(set(devices)):
                self._run(
                    "INSERT INTO device_groups(name, device_id) VALUES (?,?)", (name, device_id)
                )

    def groups(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for row in self._rows("SELECT name, device_id FROM device_groups ORDER BY name, device_id"):
            found.setdefault(row["name"], []).append(row["device_id"])
        return found

    # -- rollouts ---------------------------------------------------------------------------
    def create_rollout(self, rollout: dict[str, Any], waves: list[list[str]], now: float) -> int:
        """Insert a rollout and its devices, wave by wave (wave 0: the canary)."""
        with self._lock, self._transaction():
            (rollout_id,) = self._run(
                "INSERT INTO rollouts(bundle_sha256, model_id, version, state, canary, waves, "
                "criteria, max_failures, wave_timeout_s, token, created_at, updated_at) "
                "VALUES (?,?,?,'running',?,?,?,?,?,?,?,?) RETURNING id",
                (rollout["bundle_sha256"], rollout["model_id"], rollout["version"],
                 rollout["canary"], rollout["waves"], json.dumps(rollout["criteria"]),
                 rollout["max_failures"], rollout["wave_timeout_s"], rollout["token"], now, now),
            ).fetchone()  # fmt: skip
            position = 0
            for wave, devices in enumerate(waves):
                for device_id in devices:
                    self._run(
                        "INSERT INTO rollout_devices(rollout_id, device_id, wave, position, state, "
                        "updated_at) VALUES (?,?,?,?,'pending',?)",
                        (rollout_id, device_id, wave, position, now),
                    )
                    position += 1
            return int(rollout_id)

    def busy_devices(self, devices: list[str]) -> list[str]:
        """Which of ``devices`` are in a running or paused rollout and not done with it."""
        busy = self._rows(
            "SELECT DISTINCT d.device_id FROM rollout_devices d JOIN rollouts r "
            "ON r.id = d.rollout_id WHERE r.state IN ('running', 'paused') AND d.state NOT IN "
            f"({','.join('?' * len(DEVICE_DONE))})",
            DEVICE_DONE,
        )
        wanted = set(devices)
        return sorted(r["device_id"] for r in busy if r["device_id"] in wanted)

    def rollout(self, rollout_id: int, *, secret: bool = False) -> dict[str, Any] | None:
        columns = _ROLLOUT_COLUMNS + (", token" if secret else "")
        rows = self._rows(f"SELECT {columns} FROM rollouts WHERE id=?", (rollout_id,))
        if not rows:
            return None
        row = rows[0]
        row["criteria"] = json.loads(row["criteria"])
        return row

    def rollouts(self, *, states: tuple[str, ...] = (), limit: int = 100) -> list[dict[str, Any]]:
        where = f"WHERE state IN ({','.join('?' * len(states))}) " if states else ""
        rows = self._rows(
            f"SELECT {_ROLLOUT_COLUMNS} FROM rollouts {where}ORDER BY id DESC LIMIT ?",
            (*states, limit),
        )
        for row in rows:
            row["criteria"] = json.loads(row["criteria"])
        return rows

    def rollout_devices(self, rollout_id: int) -> list[dict[str, Any]]:
        rows = self._rows(
            f"SELECT {_DEVICE_COLUMNS} FROM rollout_devices WHERE rollout_id=? ORDER BY position",
            (rollout_id,),
        )
        for row in rows:
            row["report"] = json.loads(row["report"]) if row["report"] else None
        return rows

    def download_tokens(self, sha256: str) -> list[str]:
        """The download tokens of the running or paused rollouts of this archive."""
        rows = self._rows(
            "SELECT token FROM rollouts WHERE bundle_sha256=? AND state IN ('running', 'paused')",
            (sha256,),
        )
        return [str(r["token"]) for r in rows]

    def set_rollout_state(
        self, rollout_id: int, state: str, *, allowed_from: tuple[str, ...], reason: str | None
    ) -> bool:
        """Move a rollout to ``state`` if it is in one of ``allowed_from`` (False if not)."""
        with self._lock, self._transaction():
            return self._move_rollout(rollout_id, state, allowed_from, reason, _now())

    def _move_rollout(
        self, rollout_id: int, state: str, allowed_from: tuple[str, ...], reason: str | None,
        now: float,
    ) -> bool:  # fmt: skip
        """The state change itself, inside the caller's transaction."""
        cur = self._run(
            f"UPDATE rollouts SET state=?, reason=COALESCE(?, reason), updated_at=? "
            f"WHERE id=? AND state IN ({','.join('?' * len(allowed_from))})",
            (state, reason, now, rollout_id, *allowed_from),
        )
        return bool(cur.rowcount == 1)

    def halt_rollout(
        self, rollout_id: int, state: str, *, allowed_from: tuple[str, ...], reason: str
    ) -> bool:
        """Move a rollout to ``state`` (``halted``, ``aborted``) if it is in one of
        ``allowed_from``, and its never-commanded devices to ``skipped``, in one transaction:
        no reader sees the rollout stopped with devices still ``pending``. False if not."""
        now = _now()
        with self._lock, self._transaction():
            if not self._move_rollout(rollout_id, state, allowed_from, reason, now):
                return False
            self._run(
                "UPDATE rollout_devices SET state='skipped', reason=?, updated_at=? "
                "WHERE rollout_id=? AND state='pending'",
                (f"rollout {state}", now, rollout_id),
            )
            return True

    def set_device_states(
        self, rollout_id: int, devices: list[str], state: str, *, reason: str | None = None,
        only_from: tuple[str, ...] = ("pending",), commanded: bool = False,
    ) -> int:  # fmt: skip
        """Move these devices to ``state`` where they are in ``only_from``; how many moved."""
        now = _now()
        moved = 0
        with self._lock, self._transaction():
            for device_id in devices:
                moved += self._run(
                    "UPDATE rollout_devices SET state=?, reason=COALESCE(?, reason), updated_at=?, "
                    "commanded_at=CASE WHEN ? THEN ? ELSE commanded_at END "
                    f"WHERE rollout_id=? AND device_id=? AND state IN "
                    f"({','.join('?' * len(only_from))})",
                    (state, reason, now, commanded, now, rollout_id, device_id, *only_from),
                ).rowcount
        return moved

    def record_rollout_report(self, device_id: str, rollout_id: int, report: RolloutReport) -> bool:
        """Apply a device's report (from its status) unless an equal or newer one was."""
        with self._lock, self._transaction():
            cur = self._run(
                "UPDATE rollout_devices SET state=?, reason=?, report=?, report_seq=?, "
                "updated_at=? WHERE rollout_id=? AND device_id=? AND state <> 'skipped' "
                "AND (report_seq IS NULL OR report_seq < ?)",
                (report.state, report.reason, json.dumps(report.body()), report.seq, _now(),
                 rollout_id, device_id, report.seq),
            )  # fmt: skip
            return bool(cur.rowcount == 1)


def _now() -> float:
    return time.time()
