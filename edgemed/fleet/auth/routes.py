"""Login, logout, the caller's own account, user and API-token management, and the audit export.

``POST /api/login`` takes a username and password (or, for first setup and automation, the
fleet's service token) and opens a server-side session: an HttpOnly, SameSite=Strict cookie
(``Secure`` over HTTPS) and a CSRF secret the page sends back in ``X-CSRF-Token``. Refused
logins are counted per username and per address in the audit trail: 5 for one name or 20 from
one address within 15 minutes and further attempts get 429 until the window has passed.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from .accounts import SERVICE, SERVICE_USER, USERNAME, Principal
from .guard import CSRF_COOKIE, SESSION_COOKIE, Guard, principal, remote_of

if TYPE_CHECKING:
    from ..store import SqlStore

__all__ = ["account_error", "account_routes", "login_routes"]

LOGIN_WINDOW_S = 15 * 60.0
MAX_FAILED_PER_USER = 5
MAX_FAILED_PER_ADDRESS = 20


class Login(BaseModel):
    username: str | None = Field(default=None, max_length=64)
    password: str | None = Field(default=None, max_length=256)
    token: str | None = Field(default=None, max_length=512, description="the service token")


class NewUser(BaseModel):
    username: str = Field(pattern=USERNAME)
    role: str = Field(max_length=40)
    password: str = Field(min_length=12, max_length=256)


class UserChange(BaseModel):
    role: str | None = Field(default=None, max_length=40)
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=12, max_length=256)


class PasswordChange(BaseModel):
    current: str = Field(max_length=256)
    new: str = Field(min_length=12, max_length=256)


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._ -]+$")
    role: str = Field(default="integration-client", max_length=40)
    scopes: list[str] = Field(min_length=1, max_length=20)
    expires_days: float = Field(default=90.0, gt=0, le=731)


def login_routes(guard: Guard) -> APIRouter:
    router = APIRouter(tags=["auth"])
    store = guard.store

    @router.post("/api/login")
    def login(body: Login, request: Request, response: Response) -> dict[str, Any]:
        """Open a dashboard session; the reply's ``csrf_token`` goes in ``X-CSRF-Token``."""
        remote = remote_of(request)
        name = body.username if body.token is None else SERVICE_USER
        if name is None or (body.token is None and body.password is None):
            raise HTTPException(422, "give username and password (or the service token)")
        _rate_limit(guard, name, remote)
        if body.token is not None:
            ok = guard.is_service_token(body.token)
            role: str | None = SERVICE.role if ok else None
        else:
            role = store.verify_password(name, body.password or "")
        if role is None:
            store.audit(actor=name, actor_kind="user", action="login", outcome="denied",
                        target=name, remote=remote)  # fmt: skip
            raise HTTPException(401, "wrong username or password")
        secret, csrf = store.open_session(name, ttl_s=guard.sessions.ttl_s, remote=remote)
        store.audit(actor=name, actor_kind="user" if body.token is None else "service",
                    action="login", outcome="ok", target=name, remote=remote)  # fmt: skip
        secure = request.url.scheme == "https"
        ttl = max(1, int(guard.sessions.ttl_s))
        response.set_cookie(SESSION_COOKIE, secret, max_age=ttl, httponly=True,
                            samesite="strict", secure=secure)  # fmt: skip
        response.set_cookie(CSRF_COOKIE, csrf, max_age=ttl, samesite="strict", secure=secure)
        return {"username": name, "role": role, "csrf_token": csrf,
                "expires_at": time.time() + guard.sessions.ttl_s}  # fmt: skip

    @router.post("/api/logout", status_code=204)
    def logout(request: Request, response: Response) -> None:
        """End the session server-side (its cookie is refused from now on, wherever kept)."""
        who = guard.identify(request, None)
        if who is not None and who.session_id is not None:
            store.revoke_session(who.session_id)
            store.audit(actor=who.name, actor_kind=who.kind, action="logout", outcome="ok",
                        target=who.name, remote=remote_of(request))  # fmt: skip
        response.delete_cookie(SESSION_COOKIE)
        response.delete_cookie(CSRF_COOKIE)

    return router


def _rate_limit(guard: Guard, name: str, remote: str | None) -> None:
    since = time.time() - LOGIN_WINDOW_S
    store = guard.store
    limited = store.failed_logins(username=name, remote=None, since=since) >= MAX_FAILED_PER_USER
    if not limited and remote is not None:
        by_address = store.failed_logins(username=None, remote=remote, since=since)
        limited = by_address >= MAX_FAILED_PER_ADDRESS
    if limited:
        store.audit(actor=name, actor_kind="user", action="login", outcome="rate-limited",
                    target=name, remote=remote)  # fmt: skip
        raise HTTPException(429, "too many failed logins: try again later",
                            {"Retry-After": str(int(LOGIN_WINDOW_S))})  # fmt: skip


Caller = Annotated[Principal, Depends(principal)]
Username = Annotated[str, Path(pattern=USERNAME)]


def account_routes(guard: Guard) -> APIRouter:
    """Routes behind the guard: ``/api/me``, users, tokens, audit (policy.ROUTE_PERMISSIONS)."""
    router = APIRouter(tags=["auth"])
    store = guard.store

    @router.get("/api/me")
    def me(caller: Caller) -> dict[str, Any]:
        return {"name": caller.name, "kind": caller.kind, "role": caller.role,
                "permissions": sorted(caller.permissions)}  # fmt: skip

    @router.post("/api/me/password", status_code=204)
    def change_password(body: PasswordChange, caller: Caller) -> None:
        if caller.kind != "user" or store.verify_password(caller.name, body.current) is None:
            raise HTTPException(403, "the current password is wrong (or this is not a user)")
        store.update_user(caller.name, password=body.new)

    @router.get("/api/audit")
    def audit(
        after: Annotated[int, Query(ge=0, le=2**63 - 1, description="last id you have")] = 0,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
        actor: Annotated[str | None, Query(max_length=128)] = None,
        action: Annotated[str | None, Query(max_length=200)] = None,
        since: Annotated[float | None, Query(ge=0, le=32_503_680_000.0)] = None,
    ) -> dict[str, Any]:
        """Oldest first after id ``after``: a SIEM pulls with ``next_after`` until it is null."""
        rows = store.audit_rows(after=after, limit=limit, actor=actor, action=action, since=since)
        more = len(rows) == limit
        return {"items": rows, "next_after": rows[-1]["id"] if more else None}

    _user_routes(router, store)
    _token_routes(router, store)
    return router


def _admin_audit(
    store: SqlStore, request: Request, action: str, target: str, detail: dict[str, Any] | None
) -> None:
    """The second row of an administrator's change: what changed (the guard wrote the first)."""
    who = principal(request)
    store.audit(actor=who.name, actor_kind=who.kind, action=action, outcome="ok",
                target=target, remote=remote_of(request), detail=detail)  # fmt: skip


def _user_routes(router: APIRouter, store: SqlStore) -> None:
    @router.get("/api/users")
    def users() -> list[dict[str, Any]]:
        return store.users()

    @router.post("/api/users", status_code=201)
    def add_user(body: NewUser, request: Request) -> dict[str, Any]:
        store.add_user(body.username, body.role, body.password)
        _admin_audit(store, request, "user.create", body.username, {"role": body.role})
        return {"username": body.username, "role": body.role}

    @router.patch("/api/users/{username}")
    def change_user(username: Username, body: UserChange, request: Request) -> dict[str, Any]:
        """Role, disabled, or a new password; any change ends the user's sessions."""
        found = store.update_user(
            username, role=body.role, disabled=body.disabled, password=body.password
        )
        if not found:
            raise HTTPException(404, "no such user")
        change = {
            "role": body.role,
            "disabled": body.disabled,
            "password": body.password is not None,
        }
        _admin_audit(store, request, "user.change", username, change)
        return {"username": username, **{k: v for k, v in change.items() if v is not None}}

    @router.delete("/api/users/{username}/sessions")
    def revoke_sessions(username: Username, request: Request) -> dict[str, int]:
        revoked = store.revoke_sessions(username)
        _admin_audit(store, request, "user.sessions.revoke", username, {"revoked": revoked})
        return {"revoked": revoked}


def _token_routes(router: APIRouter, store: SqlStore) -> None:
    @router.get("/api/tokens")
    def tokens() -> list[dict[str, Any]]:
        return store.tokens()

    @router.post("/api/tokens", status_code=201)
    def create_token(body: NewToken, request: Request, caller: Caller) -> dict[str, Any]:
        """The token is in this reply only: the fleet keeps its hash."""
        token_id, token = store.create_token(
            body.name, role=body.role, scopes=body.scopes, ttl_s=body.expires_days * 86400.0,
            created_by=caller.name,
        )  # fmt: skip
        detail = {"name": body.name, "scopes": body.scopes}
        _admin_audit(store, request, "token.create", token_id, detail)
        return {"id": token_id, "token": token, "name": body.name, "scopes": sorted(body.scopes)}

    @router.delete("/api/tokens/{token_id}", status_code=204)
    def revoke_token(
        token_id: Annotated[str, Path(pattern=r"^[a-f0-9]{16}$")], request: Request
    ) -> None:
        if not store.revoke_token(token_id):
            raise HTTPException(404, "no such live token")
        _admin_audit(store, request, "token.revoke", token_id, None)


async def account_error(_request: Request, exc: Exception) -> JSONResponse:
    """A refused account request (unknown role or scope, weak password, user exists): 400 with
    the reason, from any route (registered by ``create_app``)."""
    return JSONResponse({"detail": str(exc)}, status_code=400)
