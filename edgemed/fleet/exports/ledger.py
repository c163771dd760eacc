"""What the exports need from the store: the encounter mapping, each result's encounter, and
which results every export target has acknowledged (never sent again after that).

Tables (schema version 7):

- ``encounters``: the opaque ``encounter`` reference a device puts on a result -> the
  hospital's patient (and encounter) identifiers. Fed through ``PUT /api/encounters/{ref}``;
  only the fleet ever holds it: MQTT topics, payloads and device logs carry the opaque reference
  alone, FHIR and HL7 v2 exports carry the hospital's identifiers.
- ``result_encounters``: the encounter of each result stored since version 7 (for FHIR search
  by subject), written in the result's own transaction.
- ``export_log``: per (target, result) ``acked`` (the target confirmed it), ``rejected`` (the
  target refused it for good) or ``skipped`` (nothing to export, with the reason).
"""

from __future__ import annotations

import time
from typing import Any

from ..store_hooks import StoreHooks

__all__ = ["EXPORT_DDL", "Encounter", "ExportStore"]

EXPORT_DDL = """
CREATE TABLE IF NOT EXISTS encounters (
    encounter TEXT PRIMARY KEY,
    patient_system TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    encounter_system TEXT,
    encounter_id TEXT,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS encounters_patient ON encounters(patient_id);
CREATE TABLE IF NOT EXISTS result_encounters (
    device_id TEXT NOT NULL,
    epoch TEXT NOT NULL,
    seq BIGINT NOT NULL,
    encounter TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (device_id, epoch, seq)
);
CREATE INDEX IF NOT EXISTS result_encounters_by ON result_encounters(encounter, created_at);
CREATE TABLE IF NOT EXISTS export_log (
    target TEXT NOT NULL,
    device_id TEXT NOT NULL,
    epoch TEXT NOT NULL,
    seq BIGINT NOT NULL,
    status TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    detail TEXT,
    PRIMARY KEY (target, device_id, epoch, seq)
);
CREATE INDEX IF NOT EXISTS results_created ON results(created_at)
"""
RESULT_FIELDS = (
    "device_id, seq, epoch, result_id, model_id, model_version, kind, created_at, received_at, "
    "payload, clock_suspect"
)
Encounter = dict[str, Any]  # encounter, patient_system, patient_id, encounter_system, encounter_id


class ExportStore(StoreHooks):
    """The export half of the store (mixed into ``SqlStore``, which supplies the hooks)."""

    def _record_encounter(self, key: tuple[str, str, int], encounter: Any, at: float) -> None:
        """Inside the result's insert transaction: remember its encounter reference."""
        if isinstance(encounter, str) and 0 < len(encounter) <= 128:
            self._run(
                "INSERT INTO result_encounters(device_id, epoch, seq, encounter, created_at) "
                "VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
                (*key, encounter, at),
            )

    # -- the encounter mapping ---------------------------------------------------------------
    def put_encounter(
        self, encounter: str, *, patient_system: str, patient_id: str,
        encounter_system: str | None = None, encounter_id: str | None = None,
    ) -> Encounter:  # fmt: skip
        with self._lock, self._transaction():
            self._run(
                "INSERT INTO encounters(encounter, patient_system, patient_id, encounter_system, "
                "encounter_id, updated_at) VALUES (?,?,?,?,?,?) ON CONFLICT(encounter) DO UPDATE "
                "SET patient_system=excluded.patient_system, patient_id=excluded.patient_id, "
                "encounter_system=excluded.encounter_system, "
                "encounter_id=excluded.encounter_id, updated_at=excluded.updated_at",
                (encounter, patient_system, patient_id, encounter_system, encounter_id,
                 time.time()),
            )  # fmt: skip
        found = self.encounter(encounter)
        assert found is not None
        return found

    def encounter(self, encounter: str) -> Encounter | None:
        rows = self._rows("SELECT * FROM encounters WHERE encounter=?", (encounter,))
        return rows[0] if rows else None

    def delete_encounter(self, encounter: str) -> bool:
        with self._lock, self._transaction():
            cur = self._run("DELETE FROM encounters WHERE encounter=?", (encounter,))
            return bool(cur.rowcount == 1)

    def encounter_map(self, refs: set[str]) -> dict[str, Encounter]:
        """The mapping of each of ``refs`` that has one."""
        if not refs:
            return {}
        marks = ",".join("?" * len(refs))
        rows = self._rows(f"SELECT * FROM encounters WHERE encounter IN ({marks})", tuple(refs))
        return {row["encounter"]: row for row in rows}

    # -- results for export and FHIR search --------------------------------------------------
    def results_for_export(
        self, *, since: float | None = None, until: float | None = None,
        patient_id: str | None = None, limit: int = 100,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Newest first by result time (created_at), with their encounter reference."""
        clauses: list[str] = []
        params: list[Any] = []
        join = "LEFT JOIN result_encounters e ON e.device_id=r.device_id AND e.epoch=r.epoch AND e.seq=r.seq"
        if patient_id is not None:
            clauses.append("e.encounter IN (SELECT encounter FROM encounters WHERE patient_id=?)")
            params.append(patient_id)
        if since is not None:
            clauses.append("r.created_at>=?")
            params.append(since)
        if until is not None:
            clauses.append("r.created_at<?")
            params.append(until)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        fields = ", ".join(f"r.{f.strip()}" for f in RESULT_FIELDS.split(","))
        return self._rows(
            f"SELECT {fields} FROM results r {join} {where} "
            "ORDER BY r.created_at DESC, r.device_id, r.epoch, r.seq LIMIT ?",
            (*params, limit),
        )

    def pending_exports(self, target: str, *, after: float, limit: int) -> list[dict[str, Any]]:
        """Results received at or after ``after`` that ``target`` has not settled (acked,
        rejected or skipped), oldest first."""
        fields = ", ".join(f"r.{f.strip()}" for f in RESULT_FIELDS.split(","))
        return self._rows(
            f"SELECT {fields} FROM results r WHERE r.received_at>=? AND NOT EXISTS "
            "(SELECT 1 FROM export_log x WHERE x.target=? AND x.device_id=r.device_id "
            "AND x.epoch=r.epoch AND x.seq=r.seq) "
            "ORDER BY r.received_at, r.device_id, r.epoch, r.seq LIMIT ?",
            (after, target, limit),
        )

    def settle_exports(
        self, target: str, keys: list[tuple[str, str, int]], status: str, detail: str | None = None
    ) -> None:
        """Record that ``target`` acknowledged (or rejected, or needs nothing of) ``keys``."""
        now = time.time()
        with self._lock, self._transaction():
            for device_id, epoch, seq in keys:
                self._run(
                    "INSERT INTO export_log(target, device_id, epoch, seq, status, at, detail) "
                    "VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                    (target, device_id, epoch, seq, status, now,
                     None if detail is None else detail[:500]),
                )  # fmt: skip

    def export_counts(self, target: str) -> dict[str, int]:
        rows = self._rows(
            "SELECT status, COUNT(*) AS n FROM export_log WHERE target=? GROUP BY status",
            (target,),
        )
        return {str(r["status"]): int(r["n"]) for r in rows}
