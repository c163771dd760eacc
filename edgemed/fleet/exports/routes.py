"""REST routes of the exports (token-protected like the rest of /api, mounted by fleet/app.py).

- ``PUT/GET/DELETE /api/encounters/{ref}``: the encounter mapping. ``ref`` is the opaque
  reference devices put on results; the body carries the hospital's identifiers, which never
  appear in a URL, a topic or a log line.
- ``GET /fhir/Observation``: a documented subset of FHIR search over the fleet's results,
  answered as a ``searchset`` Bundle (docs/fleet.md):
  ``subject=Patient/<patient id>`` (the mapping's patient id), ``date`` (repeatable, prefixes
  ``eq`` (default), ``ge``, ``gt``, ``le``, ``lt``; a date, a month, a year or a dateTime),
  ``code=[system|]code`` (comma: any of), ``_count`` (default 50, at most 500). Newest first,
  one page: narrow with ``date`` for more. Unsupported parameters are refused (400), never
  ignored silently.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ..store import SqlStore
from .fhir import export_result

__all__ = ["export_routes"]

_REF = r"^[A-Za-z0-9._:-]{1,128}$"
_DATE = re.compile(
    r"^(eq|ge|gt|le|lt)?(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?(T[0-9:.]+(?:Z|[+-]\d{2}:\d{2}))?$"
)
_SEARCH = {"subject", "date", "code", "_count"}
_SCAN = 5000  # results read at most per search


class EncounterMapping(BaseModel):
    patient_system: str = Field(min_length=1, max_length=200, description="e.g. the MRN's URI")
    patient_id: str = Field(min_length=1, max_length=100)
    encounter_system: str | None = Field(default=None, max_length=200)
    encounter_id: str | None = Field(default=None, max_length=100)


def _interval(value: str) -> tuple[str, float, float]:
    """A FHIR date search value -> (prefix, start, end) in Unix seconds."""
    match = _DATE.match(value)
    if match is None:
        raise HTTPException(
            400,
            f"date {value[:40]!r}: expected [eq|ge|gt|le|lt]YYYY[-MM[-DD]][Thh:mm:ss(Z|±hh:mm)]",
        )
    prefix, year, month, day, clock = match.groups()
    try:
        if clock:
            start = datetime.fromisoformat(f"{year}-{month}-{day}{clock.replace('Z', '+00:00')}")
            end = start + timedelta(seconds=1)
        elif day:
            start = datetime(int(year), int(month), int(day), tzinfo=timezone.utc)
            end = start + timedelta(days=1)
        elif month:
            start = datetime(int(year), int(month), 1, tzinfo=timezone.utc)
            end = datetime(
                int(year) + int(month) // 12, int(month) % 12 + 1, 1, tzinfo=timezone.utc
            )
        else:
            start = datetime(int(year), 1, 1, tzinfo=timezone.utc)
            end = datetime(int(year) + 1, 1, 1, tzinfo=timezone.utc)
    except (ValueError, TypeError) as exc:
        raise HTTPException(400, f"date {value[:40]!r}: {exc}") from exc
    return prefix or "eq", start.timestamp(), end.timestamp()


def _bounds(dates: list[str]) -> tuple[float | None, float | None]:
    since: float | None = None
    until: float | None = None
    for value in dates:
        prefix, start, end = _interval(value)
        low = {"eq": start, "ge": start, "gt": end}.get(prefix)
        high = {"eq": end, "le": end, "lt": start}.get(prefix)
        if low is not None:
            since = low if since is None else max(since, low)
        if high is not None:
            until = high if until is None else min(until, high)
    return since, until


def _codes(code: str | None) -> list[tuple[str | None, str]]:
    if not code:
        return []
    out: list[tuple[str | None, str]] = []
    for token in code.split(","):
        system, bar, value = token.partition("|")
        out.append((system or None, value) if bar else (None, token))
    return out


def _matches(resource: dict[str, Any], codes: list[tuple[str | None, str]]) -> bool:
    if not codes:
        return True
    codings = resource.get("code", {}).get("coding", [])
    return any(
        c.get("code") == code and (system is None or c.get("system") == system)
        for c in codings
        for system, code in codes
    )


def export_routes(store: SqlStore) -> APIRouter:
    router = APIRouter()

    @router.put("/api/encounters/{ref}", tags=["exports"])
    def put_encounter(
        ref: Annotated[str, Path(pattern=_REF)], body: EncounterMapping
    ) -> dict[str, Any]:
        """Map an opaque encounter reference to the hospital's patient (and encounter);
        exports of results carrying ``ref`` then name that patient."""
        return store.put_encounter(ref, **body.model_dump())

    @router.get("/api/encounters/{ref}", tags=["exports"])
    def get_encounter(ref: str) -> dict[str, Any]:
        found = store.encounter(ref)
        if found is None:
            raise HTTPException(404, "no such encounter reference")
        return found

    @router.delete("/api/encounters/{ref}", status_code=204, tags=["exports"])
    def delete_encounter(ref: str) -> Response:
        if not store.delete_encounter(ref):
            raise HTTPException(404, "no such encounter reference")
        return Response(status_code=204)

    @router.get("/fhir/Observation", tags=["fhir"], response_class=JSONResponse)
    def search_observations(
        request: Request,
        subject: str | None = None,
        date: Annotated[list[str] | None, Query()] = None,
        code: str | None = None,
        count: Annotated[int, Query(alias="_count", ge=1, le=500)] = 50,
    ) -> JSONResponse:
        """FHIR search (subset) over the fleet's results; a searchset Bundle."""
        unknown = set(request.query_params) - _SEARCH
        if unknown:
            raise HTTPException(
                400, f"unsupported search parameters: {', '.join(sorted(unknown))[:200]}"
            )
        patient = subject.removeprefix("Patient/") if subject else None
        since, until = _bounds(date or [])
        rows = store.results_for_export(since=since, until=until, patient_id=patient, limit=_SCAN)
        entries = _search_entries(store, rows, _codes(code), count)
        bundle = {"resourceType": "Bundle", "type": "searchset", "entry": entries[:count]}
        if not entries:
            del bundle["entry"]
        return JSONResponse(bundle, media_type="application/fhir+json")

    return router


def _search_entries(
    store: SqlStore, rows: list[dict[str, Any]], codes: list[tuple[str | None, str]], count: int
) -> list[dict[str, Any]]:
    """The searchset entries of the Observations that ``rows`` export to and ``codes``
    match, stopping after the result that brings them to ``count``."""
    for row in rows:
        payload = row["payload"]
        row["payload"] = json.loads(payload) if isinstance(payload, str) else payload
    mapping = store.encounter_map({_ref(r) for r in rows} - {""})
    entries: list[dict[str, Any]] = []
    for row in rows:
        export = export_result(row, mapping.get(_ref(row)))
        for resource in export.resources:
            if resource["resourceType"] == "Observation" and _matches(resource, codes):
                entries.append(
                    {
                        "fullUrl": f"Observation/{resource['id']}",
                        "resource": resource,
                        "search": {"mode": "match"},
                    }
                )
        if len(entries) >= count:
            break
    return entries


def _ref(row: dict[str, Any]) -> str:
    """The encounter reference of a stored result (its parsed payload), or ""."""
    value = row["payload"].get("encounter")
    return value if isinstance(value, str) else ""
