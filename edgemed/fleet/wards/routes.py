"""REST routes of wards and beds (mounted by ``fleet/app.py`` behind the API's authentication).

- ``GET /api/wards``; ``PUT/GET/DELETE /api/wards/{ward_id}`` (a ward with beds is not deleted:
  409);
- ``PUT/DELETE /api/wards/{ward_id}/beds/{bed_id}`` (``devices`` in the body, when given, is the
  bed's whole device list); ``PUT/DELETE /api/wards/{ward_id}/beds/{bed_id}/devices/{device_id}``
  assigns one device (moving it from any other bed) or unassigns it;
- ``GET /api/devices/{device_id}/bed``: where a device serves;
- ``GET/PUT /api/ward-settings``: the hospital's time zone (IANA name);
- ``GET /api/wards/{ward_id}/view?hours=H``: the ward page's data (``wards/view.py``).

Ids are opaque, in URLs only as the patterns below allow; no route takes or returns a patient
identifier.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field, StringConstraints

from ...errors import InputError
from ..store import SqlStore
from .registry import BED_ID, DEVICE_ID, MAX_DEVICES_PER_BED, WARD_ID, WardRegistry
from .view import MAX_HOURS, ward_view

__all__ = ["ward_routes"]

WardPath = Annotated[str, PathParam(pattern=WARD_ID)]
BedPath = Annotated[str, PathParam(pattern=BED_ID)]
DevicePath = Annotated[str, PathParam(pattern=DEVICE_ID)]
DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID)]


class WardBody(BaseModel):
    name: str | None = Field(default=None, max_length=100, description="display name")


class BedBody(BaseModel):
    label: str | None = Field(default=None, max_length=64, description="display label")
    devices: list[DeviceId] | None = Field(
        default=None,
        max_length=MAX_DEVICES_PER_BED,
        description="the bed's whole device list (omitted: unchanged)",
    )


class WardSettings(BaseModel):
    timezone: str = Field(
        min_length=1, max_length=64, description="IANA time zone name, e.g. Europe/London"
    )


def _bad(exc: InputError, status: int = 400) -> HTTPException:
    return HTTPException(status, str(exc)[:300])


def ward_routes(store: SqlStore, *, clock: Callable[[], float] = time.time) -> APIRouter:
    """The ward and bed routes over ``store``; ``clock`` gives "now" for the ward view."""
    registry = WardRegistry(store)
    router = APIRouter(tags=["wards"])
    _ward_crud(router, registry)
    _bed_crud(router, registry)

    @router.get("/api/ward-settings")
    def settings() -> dict[str, Any]:
        """The ward page's settings: ``timezone``, the hospital's (times are shown in it)."""
        return {"timezone": registry.timezone()}

    @router.put("/api/ward-settings")
    def put_settings(body: WardSettings) -> dict[str, Any]:
        try:
            return {"timezone": registry.set_timezone(body.timezone)}
        except InputError as exc:
            raise _bad(exc) from exc

    @router.get("/api/wards/{ward_id}/view")
    def view(
        ward_id: WardPath,
        hours: Annotated[float, Query(gt=0, le=MAX_HOURS, allow_inf_nan=False)] = 6.0,
    ) -> dict[str, Any]:
        """Per bed: devices, latest vitals (units, alarm limits), NEWS2 and its colour band,
        the trend of the last ``hours``, the latest result of each other kind, the open alerts
        (most severe first, then the longest waiting) and the recent acknowledgements; and the
        hospital's ``timezone``."""
        found = ward_view(store, registry, ward_id, hours=hours, now=clock())
        if found is None:
            raise HTTPException(404, "no such ward")
        return found

    return router


def _ward_crud(router: APIRouter, registry: WardRegistry) -> None:
    @router.get("/api/wards")
    def wards() -> list[dict[str, Any]]:
        """Every ward with its number of beds and devices."""
        return registry.wards()

    @router.put("/api/wards/{ward_id}")
    def put_ward(ward_id: WardPath, body: WardBody | None = None) -> dict[str, Any]:
        """Create a ward or rename it."""
        try:
            return registry.put_ward(ward_id, name=(body or WardBody()).name)
        except InputError as exc:
            raise _bad(exc) from exc

    @router.get("/api/wards/{ward_id}")
    def ward(ward_id: WardPath) -> dict[str, Any]:
        """A ward, its beds (natural order) and each bed's devices."""
        found = registry.ward(ward_id)
        if found is None:
            raise HTTPException(404, "no such ward")
        return found

    @router.delete("/api/wards/{ward_id}", status_code=204, responses={409: {}})
    def delete_ward(ward_id: WardPath) -> Response:
        """Delete a ward without beds (409 while it has some)."""
        try:
            deleted = registry.delete_ward(ward_id)
        except InputError as exc:
            raise _bad(exc, 409) from exc
        if not deleted:
            raise HTTPException(404, "no such ward")
        return Response(status_code=204)


def _bed_crud(router: APIRouter, registry: WardRegistry) -> None:
    @router.put("/api/wards/{ward_id}/beds/{bed_id}")
    def put_bed(ward_id: WardPath, bed_id: BedPath, body: BedBody | None = None) -> dict[str, Any]:
        """Create or relabel a bed; ``devices``, when given, replaces its device list
        (devices of other beds move here)."""
        given = body or BedBody()
        try:
            bed = registry.put_bed(ward_id, bed_id, label=given.label, devices=given.devices)
        except InputError as exc:
            raise _bad(exc) from exc
        if bed is None:
            raise HTTPException(404, "no such ward")
        return bed

    @router.delete("/api/wards/{ward_id}/beds/{bed_id}", status_code=204)
    def delete_bed(ward_id: WardPath, bed_id: BedPath) -> Response:
        """Delete a bed; its devices are unassigned, their results stay."""
        if not registry.delete_bed(ward_id, bed_id):
            raise HTTPException(404, "no such bed")
        return Response(status_code=204)

    @router.put("/api/wards/{ward_id}/beds/{bed_id}/devices/{device_id}")
    def assign(ward_id: WardPath, bed_id: BedPath, device_id: DevicePath) -> dict[str, Any]:
        """The device serves this bed from now on (moved from any other bed)."""
        try:
            bed = registry.assign(device_id, ward_id, bed_id)
        except InputError as exc:
            raise _bad(exc, 409) from exc
        if bed is None:
            raise HTTPException(404, "no such bed")
        return bed

    @router.delete("/api/wards/{ward_id}/beds/{bed_id}/devices/{device_id}", status_code=204)
    def unassign(ward_id: WardPath, bed_id: BedPath, device_id: DevicePath) -> Response:
        place = registry.placement(device_id)
        if place is None or (place["ward_id"], place["bed_id"]) != (ward_id, bed_id):
            raise HTTPException(404, "the device does not serve this bed")
        registry.unassign(device_id)
        return Response(status_code=204)

    @router.get("/api/devices/{device_id}/bed")
    def placement(device_id: DevicePath) -> dict[str, Any]:
        """The ward and bed a device serves (404: none)."""
        found = registry.placement(device_id)
        if found is None:
            raise HTTPException(404, "the device serves no bed")
        return found
