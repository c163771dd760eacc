"""The rollout API: bundle uploads, device groups, rollouts and their controls (behind the
fleet's API authentication), and the bundle downloads devices make with a rollout's own
download token (``/ota/bundles/{sha256}``, HTTP Range: resumable)."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import ClientDisconnect

from ...errors import ModelError
from ..limits import DEVICE_ID, MAX_ID
from ..wards.registry import WardRegistry
from .bundles import BundleShelf
from .engine import Publish, RolloutEngine, rollout_key
from .store import DEVICE_DONE, RolloutStore

if TYPE_CHECKING:
    from ..store import SqlStore

__all__ = ["RolloutService", "download_routes", "rollout_routes", "rollout_service"]

SHA256 = r"^[0-9a-f]{64}$"
GROUP = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_bearer = HTTPBearer(auto_error=False)
DeviceId = Annotated[str, Field(pattern=DEVICE_ID)]
GroupName = Annotated[str, Field(pattern=GROUP)]
RolloutIdPath = Annotated[int, PathParam(ge=1, le=MAX_ID)]
ShaPath = Annotated[str, PathParam(pattern=SHA256)]


@dataclass
class RolloutService:
    """What the routes work with: the store, the controller and the bundle shelf (None: this
    fleet accepts no uploads and serves no downloads)."""

    store: RolloutStore
    engine: RolloutEngine
    shelf: BundleShelf | None


def rollout_service(
    store: RolloutStore, store_id: str, *, shelf: BundleShelf | None = None,
    publish: Publish | None = None,
) -> RolloutService:  # fmt: skip
    """The routes' service; without ``publish`` (an API without a broker link) no command goes
    out and devices stay ``pending``."""
    engine = RolloutEngine(store, store_id, publish or (lambda _topic, _payload: False))
    return RolloutService(store=store, engine=engine, shelf=shelf)


class CriteriaBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shadow_results: int = Field(default=20, ge=1, le=100_000)
    min_agreement: float = Field(default=0.95, ge=0.0, le=1.0, allow_inf_nan=False)
    abs_tolerance: float = Field(default=1e-3, ge=0.0, le=1e9, allow_inf_nan=False)
    rel_tolerance: float = Field(default=1e-3, ge=0.0, le=1e3, allow_inf_nan=False)


class RolloutSpec(BaseModel):
    """A rollout: which bundle, to which devices (ids and/or groups, in wave order), how."""

    model_config = ConfigDict(extra="forbid")
    bundle_sha256: str = Field(pattern=SHA256)
    devices: list[DeviceId] = Field(default_factory=list, max_length=2000)
    groups: list[GroupName] = Field(default_factory=list, max_length=100)
    wards: list[GroupName] = Field(default_factory=list, max_length=100)  # fleet/wards/
    canary: int = Field(1, ge=0, le=10_000)
    waves: int = Field(2, ge=1, le=100)
    criteria: CriteriaBody = Field(default_factory=lambda: CriteriaBody())
    max_failures: int = Field(0, ge=0, le=10_000)
    wave_timeout_s: float = Field(3600.0, gt=0.0, le=30 * 86400.0, allow_inf_nan=False)


class GroupBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    devices: list[DeviceId] = Field(max_length=2000)


def _summary(service: RolloutService, rollout: dict[str, Any]) -> dict[str, Any]:
    devices = service.store.rollout_devices(int(rollout["id"]))
    counts: dict[str, int] = {}
    waves: dict[int, dict[str, int]] = {}
    for d in devices:
        counts[d["state"]] = counts.get(d["state"], 0) + 1
        wave = waves.setdefault(int(d["wave"]), {})
        wave[d["state"]] = wave.get(d["state"], 0) + 1
    return {
        **rollout,
        "rollout_key": rollout_key(service.engine.store_id, int(rollout["id"])),
        "devices_total": len(devices),
        "done": sum(1 for d in devices if d["state"] in DEVICE_DONE),
        "counts": counts,
        "waves_progress": [{"wave": w, "counts": c} for w, c in sorted(waves.items())],
    }


def _detail(service: RolloutService, rollout_id: int) -> dict[str, Any]:
    rollout = service.store.rollout(rollout_id)
    if rollout is None:
        raise HTTPException(404, "no such rollout")
    return {**_summary(service, rollout), "devices": service.store.rollout_devices(rollout_id)}


def rollout_routes(service: RolloutService) -> APIRouter:
    """Bundles, device groups and rollouts (behind the fleet's API authentication)."""
    router = APIRouter(tags=["rollouts"])
    _bundle_routes(router, service)
    _control_routes(router, service)
    return router


def _bundle_routes(router: APIRouter, service: RolloutService) -> None:
    store = service.store

    @router.post(
        "/api/bundles",
        status_code=201,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {  # any type is taken; x-tar is what the CLI sends
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            }
        },
    )
    async def upload_bundle(request: Request) -> JSONResponse:
        """A signed bundle as a tar archive of its folder (``edgemed fleet bundles upload``
        makes one). 201 with the stored bundle, 200 if it was there already; 422 naming why
        the fleet's trust policy refuses it; 409 if this fleet has no trust policy."""
        shelf = service.shelf
        if shelf is None or shelf.policy is None:
            raise HTTPException(409, "this fleet accepts no bundles: start it with --trust FILE")
        upload = await _receive(request, shelf)
        try:
            row = await run_in_threadpool(shelf.accept, upload)
        except ModelError as exc:  # the trust checks' typed errors: the reason, no input
            raise HTTPException(422, f"bundle refused: {exc}"[:600]) from None
        created = store.add_bundle(row, time.time())
        body = {**(store.bundle(row["sha256"]) or row), "created": created}
        return JSONResponse(body, status_code=201 if created else 200)

    @router.get("/api/bundles")
    def bundles() -> list[dict[str, Any]]:
        return store.bundles()

    @router.get("/api/bundles/{sha256}")
    def bundle(sha256: ShaPath) -> dict[str, Any]:
        found = store.bundle(sha256)
        if found is None:
            raise HTTPException(404, "no such bundle")
        return found

    @router.get("/api/device-groups")
    def groups() -> dict[str, list[str]]:
        return store.groups()

    @router.put("/api/device-groups/{name}")
    def set_group(name: Annotated[str, PathParam(pattern=GROUP)], body: GroupBody) -> list[str]:
        store.set_group(name, body.devices)
        return store.groups().get(name, [])


def _control_routes(router: APIRouter, service: RolloutService) -> None:
    store = service.store

    @router.post("/api/rollouts", status_code=201)
    def create(spec: RolloutSpec) -> dict[str, Any]:
        """Start a rollout; its first wave (the canary) is commanded at once."""
        found = store.bundle(spec.bundle_sha256)
        if found is None:
            raise HTTPException(404, "no such bundle: upload it first")
        if service.shelf is None:
            raise HTTPException(409, "this fleet serves no bundles: start it with --trust FILE")
        try:  # under the policy as it is now: a key revoked since the upload is refused
            service.shelf.recheck(spec.bundle_sha256)
        except ModelError as exc:
            raise HTTPException(422, f"bundle refused: {exc}"[:600]) from None
        devices = _targets(store, spec)
        if not devices:
            raise HTTPException(422, "no target devices (give devices, groups and/or wards)")
        busy = store.busy_devices(devices)
        if busy:
            raise HTTPException(409, f"{len(busy)} device(s) are in another rollout: {busy[:5]}")
        plan = {
            **spec.model_dump(exclude={"devices", "groups", "wards"}),
            "model_id": found["model_id"],
            "version": found["version"],
            "canary": min(spec.canary, len(devices)),
        }
        return _detail(service, service.engine.create(plan, devices))

    @router.get("/api/rollouts")
    def rollouts(
        state: Annotated[
            Literal["running", "paused", "completed", "halted", "aborted"] | None, Query()
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[dict[str, Any]]:
        rows = store.rollouts(states=(state,) if state else (), limit=limit)
        return [_summary(service, r) for r in rows]

    @router.get("/api/rollouts/{rollout_id}")
    def rollout(rollout_id: RolloutIdPath) -> dict[str, Any]:
        return _detail(service, rollout_id)

    @router.post("/api/rollouts/{rollout_id}/{action}")
    def control(
        rollout_id: RolloutIdPath, action: Literal["pause", "resume", "abort"]
    ) -> dict[str, Any]:
        """Pause (no new wave starts), resume, or abort (devices in progress discard the new
        version; devices that already switched keep it)."""
        _detail(service, rollout_id)  # 404 first
        if action == "abort":
            done = service.engine.halt(rollout_id, "aborted", "aborted by an operator")
        else:
            source, target = ("running", "paused") if action == "pause" else ("paused", "running")
            done = store.set_rollout_state(rollout_id, target, allowed_from=(source,), reason=None)
            if done and target == "running":
                service.engine.step(rollout_id)
        if not done:
            raise HTTPException(409, f"cannot {action} a rollout in its present state")
        return _detail(service, rollout_id)


def _targets(store: RolloutStore, spec: RolloutSpec) -> list[str]:
    """The devices in wave order: those named, then each group's, then each ward's (bed by
    bed, as the ward view orders them), each once."""
    groups = store.groups()
    unknown = [g for g in spec.groups if g not in groups]
    if unknown:
        raise HTTPException(404, f"no such device group(s): {unknown[:5]}")
    ordered = [*spec.devices, *(d for g in spec.groups for d in groups[g])]
    registry = WardRegistry(cast("SqlStore", store))
    for ward_id in spec.wards:
        ward = registry.ward(ward_id)
        if ward is None:
            raise HTTPException(404, f"no such ward: {ward_id}")
        ordered += [d for bed in ward["beds"] for d in bed["devices"]]
    return list(dict.fromkeys(ordered))


async def _receive(request: Request, shelf: BundleShelf) -> Path:
    """The request body streamed into a temporary file of the shelf (413 past its limit)."""
    upload = shelf.temporary()
    size = 0
    try:
        with upload.open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > shelf.max_bytes:
                    raise HTTPException(413, f"bundle archive over {shelf.max_bytes} bytes")
                out.write(chunk)
        if size == 0:
            raise HTTPException(400, "empty body: send the bundle as a tar archive")
    except (HTTPException, ClientDisconnect, OSError):
        upload.unlink(missing_ok=True)
        raise
    return upload


def download_routes(service: RolloutService) -> APIRouter:
    """``GET /ota/bundles/{sha256}``: the archive, to a device holding the download token of a
    running or paused rollout of it (``Authorization: Bearer``). Range requests (206) let a
    device resume an interrupted download."""
    router = APIRouter(tags=["rollouts"])

    @router.get("/ota/bundles/{sha256}", response_class=FileResponse)
    def download(
        sha256: ShaPath,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> FileResponse:
        offered = credentials.credentials.encode() if credentials else b""
        tokens = service.store.download_tokens(sha256)
        if not any(hmac.compare_digest(offered, t.encode()) for t in tokens):
            raise HTTPException(
                401, "missing or bad download token", {"WWW-Authenticate": "Bearer"}
            )
        if service.shelf is None or not service.shelf.path(sha256).is_file():
            raise HTTPException(404, "no such bundle archive")
        return FileResponse(service.shelf.path(sha256), media_type="application/x-tar")

    return router
