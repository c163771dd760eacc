"""Stage 9: the fleet's REST API (FastAPI, OpenAPI at ``/api/openapi.json``) and its dashboard.

Every route but ``/api/health``, login and logout passes the guard (fleet/auth/guard.py):
authenticated (a named user's session cookie, an API token or the service token as
``Authorization: Bearer …``), authorised per route by role or scope, and audited before it
runs. URLs carry only opaque device ids and numbers, and the
access log prints method, route and status, never a query string: no PHI in URLs or logs.
The dashboard (``/``) is static files from this package: no CDN, works offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from .._version import __version__
from ..errors import AccountError, SyncError
from .auth.accounts import Principal
from .auth.guard import Guard, SessionPolicy, principal
from .auth.headers import HttpsFiles, add_security_headers
from .auth.routes import account_error, account_routes, login_routes
from .cursors import (
    encode_cursor,
    read_alert_cursor,
    read_id_cursor,
    read_result_cursor,
    result_cursor,
)
from .events import EventBus
from .exports.routes import export_routes
from .limits import DEVICE_ID, MAX_BODY_BYTES, MAX_ID, BodyLimit, validation_error
from .metrics import CONTENT_TYPE, FleetMetrics
from .rollouts.routes import RolloutService, download_routes, rollout_routes, rollout_service
from .store import MAX_PAGE, SqlStore
from .store.queries import alert_cursor
from .wards.routes import ward_routes

__all__ = ["FleetApi", "create_app"]

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")
HEARTBEAT_S = 15.0


class Acknowledge(BaseModel):
    # Who acknowledged is the logged-in user (or token); ``by`` is kept for callers of the
    # shared service token, whose acknowledgements are recorded as "service-token:<by>".
    by: str | None = Field(default=None, min_length=1, max_length=100)
    comment: str | None = Field(default=None, max_length=500)


# Bounds of every path and query parameter: a device id as the wire schema has it, store ids
# within SQL's 64-bit integers, times finite and within this millennium (Unix seconds).
DeviceIdPath = Annotated[str, PathParam(pattern=DEVICE_ID)]
DeviceIdQuery = Annotated[str | None, Query(pattern=DEVICE_ID)]
_TIME: dict[str, Any] = {"ge": 0.0, "le": 32_503_680_000.0, "allow_inf_nan": False}


def create_app(
    store: SqlStore,
    *,
    token: str,
    events: EventBus | None = None,
    stats: Callable[[], dict[str, Any]] | None = None,
    health: Callable[[], tuple[bool, dict[str, Any]]] | None = None,
    metrics: FleetMetrics | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    rollouts: RolloutService | None = None,
    sessions: SessionPolicy | None = None,
) -> FastAPI:
    """The API and dashboard over ``store``; ``stats`` adds ingest figures to /api/health and
    ``health`` (FleetServer.health) says whether the broker link and the database work.
    ``metrics`` (FleetServer's, shared with its ingest; default: the API's and the store's
    alone) are served at ``/metrics``; a request body over ``max_body_bytes`` gets 413.
    ``token`` is the service token (administrator; fleet/auth/); people log in by name."""
    if len(token) < 16:
        raise SyncError("the fleet API token must be at least 16 characters")
    app = FastAPI(
        title="edgemed fleet",
        version=__version__,
        description="Devices, results and alerts of an edgemed fleet. Not a medical device.",
        openapi_url="/api/openapi.json",
        docs_url=None,  # the stock docs pages load scripts from a CDN
        redoc_url=None,
    )

    metrics = metrics or FleetMetrics(store)
    _guard_and_log(app, metrics, max_body_bytes)
    add_security_headers(app)
    guard = Guard(store, token, sessions or SessionPolicy())
    # Every router but health, login and downloads: authenticated, authorised per route
    # (fleet/auth/policy.py) and audited before the route runs.
    auth = [Depends(guard)]
    app.include_router(_health_routes(store, stats, health))
    app.include_router(login_routes(guard))
    app.include_router(account_routes(guard), dependencies=auth)
    app.include_router(_device_routes(store), dependencies=auth)
    app.include_router(_result_routes(store), dependencies=auth)
    app.include_router(_alert_routes(store, events), dependencies=auth)
    app.include_router(_live_routes(events), dependencies=auth)
    # Encounter mapping and the FHIR read endpoint (fleet/exports/routes.py), same token.
    app.include_router(export_routes(store), dependencies=auth)
    app.include_router(ward_routes(store), dependencies=auth)
    app.include_router(_metrics_routes(metrics), dependencies=auth)
    # Bundles and rollouts (fleet/rollouts/); devices download with a rollout's own token.
    rollouts = rollouts or rollout_service(store, store.store_id)
    app.include_router(rollout_routes(rollouts), dependencies=auth)
    app.include_router(download_routes(rollouts))

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _guard_and_log(app: FastAPI, metrics: FleetMetrics, max_body_bytes: int) -> None:
    """Input limits, the access log and the request metrics, on every route."""
    # Bad input is a 4xx that names the broken rule, never an echo of the input itself (a 20 MB
    # login body came back in full): fleet/limits.py. The body limit sits inside the access
    # log (added first), so its 413s are logged and counted, and outside all body parsing.
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(AccountError, account_error)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.middleware("http")
    async def access_log(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        log.info("%s %s %d", request.method, request.url.path, response.status_code)
        response.headers["Cache-Control"] = "no-store"
        metrics.request(
            request.method, _route(request), response.status_code, time.perf_counter() - started
        )
        return response


def _route(request: Request) -> str:
    """The route template a request matched (a label of bounded cardinality: never the URL,
    which carries device ids)."""
    route = getattr(request.scope.get("route"), "path", None)
    if isinstance(route, str):
        return route
    return "/static" if request.url.path.startswith("/static/") else "unmatched"


def _metrics_routes(metrics: FleetMetrics) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/metrics",
        tags=["fleet"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text"}},
    )
    def prometheus() -> Response:
        """Prometheus metrics of this process and the store (docs/fleet.md). Needs the API
        token like every route but health: Prometheus sends it from a ``credentials_file``."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    return router


def _health_routes(
    store: SqlStore,
    stats: Callable[[], dict[str, Any]] | None,
    health: Callable[[], tuple[bool, dict[str, Any]]] | None,
) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/api/health",
        tags=["fleet"],
        responses={503: {"description": "broker link, database or ingest down (see problems)"}},
    )
    def health_check(response: Response) -> dict[str, Any]:
        """No token needed; says nothing about devices or results. 200 when the fleet can
        ingest (a broker link, a database that answers, no dead ingest thread), else 503 with
        the problems named."""
        if health is not None:
            healthy, body = health()
        else:  # an API without ingest (tests, read-only replicas): the database alone
            try:
                store.ping()
                healthy, body = True, {"status": "ok", "problems": []}
            except Exception as exc:
                healthy = False
                body = {"status": "unavailable", "problems": [f"database: {str(exc)[:300]}"]}
        body = {**body, "version": __version__}
        if healthy:
            with contextlib.suppress(Exception):
                body["schema_version"] = store.schema_version()
        if stats:
            body["ingest"] = {**body.get("ingest", {}), **stats()}
        if not healthy:
            response.status_code = 503
        return body

    return router


def _device_routes(store: SqlStore) -> APIRouter:
    router = APIRouter()

    @router.get("/api/devices", tags=["devices"])
    def devices() -> list[dict[str, Any]]:
        return store.devices()

    @router.get("/api/devices/{device_id}", tags=["devices"])
    def device(
        device_id: DeviceIdPath, recent: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50
    ) -> dict[str, Any]:
        """One device, its most recent results (newest first), its alerts and the events of
        its outbox (seq restarts, a corrupted outbox moved aside)."""
        found = store.device(device_id)
        if found is None:
            raise HTTPException(404, "no such device")
        found["recent_results"] = store.results(device_id=device_id, limit=recent)
        found["alerts"] = store.alerts(device_id=device_id, limit=50)
        found["events"] = store.device_events(device_id, limit=50)
        return found

    @router.get("/api/devices/{device_id}/events", tags=["devices"])
    def device_events(
        device_id: DeviceIdPath, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100
    ) -> list[dict[str, Any]]:
        """Newest first: ``seq-restart`` (the device's outbox was deleted, corrupted or
        restored, and its seqs began again in a new epoch; both epochs are kept) and
        ``outbox-moved-aside`` (the device moved a corrupted outbox aside)."""
        if store.device(device_id) is None:
            raise HTTPException(404, "no such device")
        return store.device_events(device_id, limit=limit)

    @router.get("/api/models", tags=["models"])
    def models() -> list[dict[str, Any]]:
        """Model versions across the fleet, from each device's latest birth message."""
        return store.model_inventory()

    return router


def _result_routes(store: SqlStore) -> APIRouter:
    router = APIRouter()

    @router.get("/api/results", tags=["results"])
    def results(
        device_id: DeviceIdQuery = None,
        model_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
        kind: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        since: Annotated[
            float | None, Query(description="received at or after, Unix s", **_TIME)
        ] = None,
        until: Annotated[
            float | None, Query(description="received before, Unix s", **_TIME)
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        cursor: Annotated[
            str | None, Query(description="next_cursor of the last page", max_length=512)
        ] = None,
    ) -> dict[str, Any]:
        """Newest first, keyset-paginated: pass ``next_cursor`` back for the next page."""
        rows = store.results(
            device_id=device_id,
            model_id=model_id,
            kind=kind,
            since=since,
            until=until,
            before=read_result_cursor(cursor) if cursor else None,
            limit=limit,
        )
        more = len(rows) == limit
        return {"items": rows, "next_cursor": result_cursor(rows[-1]) if more else None}

    @router.get("/api/dead-letters", tags=["fleet"])
    def dead_letters(
        device_id: Annotated[str | None, Query(max_length=200)] = None,
        reason: Annotated[
            str | None, Query(max_length=200, description="a reason_class (or refused reason)")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        cursor: Annotated[
            str | None, Query(max_length=64, description="next_cursor of the last page")
        ] = None,
    ) -> dict[str, Any]:
        """Newest first, keyset-paginated. Each item: topic, device, reason (and its class),
        size and sha256 of the payload, and a preview of its first 256 bytes (the store keeps
        1 KiB, never the whole payload). ``refused``: what the dead-letter quota turned away,
        counted per reason class."""
        before = read_id_cursor(cursor) if cursor else None
        rows = store.dead_letters(device_id=device_id, reason=reason, before=before, limit=limit)
        more = len(rows) == limit
        return {
            "items": rows,
            "next_cursor": encode_cursor([rows[-1]["id"]]) if more else None,
            "refused": store.dead_letters_refused(),
        }

    return router


def _alert_routes(store: SqlStore, events: EventBus | None) -> APIRouter:
    router = APIRouter()

    @router.get("/api/alerts", tags=["alerts"])
    def alerts(
        response: Response,
        open: bool = False,
        device_id: DeviceIdQuery = None,
        rule: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        since: Annotated[
            float | None, Query(description="raised at or after, Unix s", **_TIME)
        ] = None,
        until: Annotated[float | None, Query(description="raised before, Unix s", **_TIME)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 200,
        cursor: Annotated[
            str | None, Query(max_length=256, description="X-Next-Cursor of the last page")
        ] = None,
    ) -> list[dict[str, Any]]:
        """Newest first; ``open=true``: only those not yet acknowledged, most severe first,
        then the longest waiting. Clinical alerts are episodes: ``episode_count`` alerts from
        ``first_at`` to ``last_at``, ``peak`` value, ``closed_at`` once it ended. A full page
        carries ``X-Next-Cursor``: pass it as ``cursor`` for the next (keyset: stable)."""
        after = read_alert_cursor(cursor, open_only=open) if cursor else None
        rows = store.alerts(open_only=open, device_id=device_id, rule=rule, since=since,
                            until=until, after=after, limit=limit)  # fmt: skip
        if len(rows) == limit:
            response.headers["X-Next-Cursor"] = encode_cursor(
                list(alert_cursor(rows[-1], open_only=open))
            )
        return rows

    @router.post("/api/alerts/{alert_id}/ack", tags=["alerts"])
    def acknowledge(
        alert_id: Annotated[int, PathParam(ge=1, le=MAX_ID)],
        caller: Annotated[Principal, Depends(principal)],
        body: Acknowledge | None = None,
    ) -> dict[str, Any]:
        """Acknowledge an alert or alert episode as the logged-in user, with an optional
        comment (idempotent: a second call keeps the first acknowledgement; an episode that
        escalates afterwards needs a new one). The reply lists every acknowledgement."""
        ack = body or Acknowledge()
        by = caller.name
        if caller.kind == "service" and ack.by:
            by = f"{caller.name}:{ack.by}"  # a shared credential: the name is only claimed
        alert = store.acknowledge_alert(alert_id, by=by, comment=ack.comment)
        if alert is None:
            raise HTTPException(404, "no such alert")
        if events:
            events.publish({"type": "alert-ack", "id": alert_id})
        return alert

    return router


def _live_routes(events: EventBus | None) -> APIRouter:
    router = APIRouter()

    @router.get("/api/events", tags=["fleet"])
    async def live(request: Request) -> StreamingResponse:
        """Server-sent events: ``result``, ``alert``, ``alert-ack``, ``device``, ``gap``."""
        if events is None:
            raise HTTPException(404, "live events are not enabled on this server")
        return StreamingResponse(
            _stream(events, request),
            media_type="text/event-stream",
            headers={"X-Accel-Buffering": "no"},
        )

    return router


async def _stream(events: EventBus, request: Request) -> AsyncIterator[str]:
    sub = events.subscribe(asyncio.get_running_loop())
    try:
        yield f"event: hello\ndata: {json.dumps({'at': time.time()})}\n\n"
        while not await request.is_disconnected():
            try:
                event = await asyncio.wait_for(sub.queue.get(), HEARTBEAT_S)
            except asyncio.TimeoutError:
                yield ": heartbeat\n\n"  # keeps proxies from closing an idle stream
                continue
            yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
    finally:
        events.unsubscribe(sub)


class FleetApi:
    """Serve the API and dashboard on ``host:port`` (0: any free port) in a background thread."""

    def __init__(
        self,
        store: SqlStore,
        *,
        token: str,
        host: str = "127.0.0.1",
        port: int = 8080,
        events: EventBus | None = None,
        stats: Callable[[], dict[str, Any]] | None = None,
        health: Callable[[], tuple[bool, dict[str, Any]]] | None = None,
        metrics: FleetMetrics | None = None,
        rollouts: RolloutService | None = None,
        https: HttpsFiles | None = None,
        sessions: SessionPolicy | None = None,
    ) -> None:
        app = create_app(
            store, token=token, events=events, stats=stats, health=health, metrics=metrics,
            rollouts=rollouts, sessions=sessions,
        )  # fmt: skip
        if https is not None:
            https.check()
        self.scheme = "https" if https else "http"
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
            ssl_certfile=https.cert if https else None, ssl_keyfile=https.key if https else None,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name="edgemed-fleet-api", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    def start(self, timeout: float = 10.0) -> FleetApi:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise SyncError("the fleet API did not start (is the port in use?)")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10.0)
