"""The one gate of every protected API route: authenticate, check CSRF, authorise, audit.

``Guard`` is a FastAPI dependency put on every router but the public ones (``create_app``).
For each request it

1. finds who is calling: ``Authorization: Bearer`` with the fleet's service token or an API
   token (``emt_…``), else the dashboard's session cookie;
2. for a cookie session and a state-changing method, requires the ``X-CSRF-Token`` header that
   login returned (SameSite=Strict already stops cross-site posts in current browsers; this
   covers the rest);
3. looks up the permission of the matched route (``policy.ROUTE_PERMISSIONS``; a route in no
   table is for administrators only: fail closed);
4. appends an audit row (allowed, denied or unauthenticated) and only then lets the route run.
   A request whose audit row cannot be written is refused with 503. The one exception: allowed
   metrics scrapes (``policy.UNAUDITED_READS``), which carry no patient data.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .accounts import SERVICE, TOKEN_PREFIX, Principal, sha256
from .policy import UNAUDITED_READS, permission_of

if TYPE_CHECKING:
    from ..store import SqlStore

__all__ = ["CSRF_COOKIE", "CSRF_HEADER", "SESSION_COOKIE", "Guard", "SessionPolicy", "principal"]

log = logging.getLogger(__name__)
SESSION_COOKIE = "edgemed_session"
CSRF_COOKIE = "edgemed_csrf"  # readable by the page, which echoes it in CSRF_HEADER
CSRF_HEADER = "X-CSRF-Token"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Module level: with postponed annotations FastAPI resolves Depends() targets from globals.
_bearer = HTTPBearer(auto_error=False)


@dataclass(frozen=True)
class SessionPolicy:
    """How long a dashboard session lives: ``ttl_s`` at most, ``idle_s`` without a request."""

    ttl_s: float = 12 * 3600.0
    idle_s: float = 30 * 60.0


def principal(request: Request) -> Principal:
    """The caller the guard admitted (for handlers: who acknowledges, who creates a user)."""
    found = getattr(request.state, "principal", None)
    if not isinstance(found, Principal):  # a route the guard does not cover: a wiring bug
        raise HTTPException(500, "route is not guarded")
    return found


def remote_of(request: Request) -> str | None:
    return request.client.host if request.client else None


class Guard:
    """The dependency: ``Depends(guard)`` on every protected router."""

    def __init__(self, store: SqlStore, service_token: str, sessions: SessionPolicy) -> None:
        self.store = store
        self._service = service_token.encode()
        self.sessions = sessions

    def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        route = getattr(request.scope.get("route"), "path", request.url.path)
        action = f"{request.method} {route}"
        target = json.dumps(request.path_params, sort_keys=True) if request.path_params else None
        try:
            who = self.identify(request, credentials)
        except Exception as exc:  # the store cannot check a token or session now
            log.error("credentials check failed (%s)", type(exc).__name__)
            raise HTTPException(
                503, "credentials cannot be checked now: store unavailable"
            ) from exc
        if who is None:
            self._audit(request, "anonymous", "anonymous", action, "unauthenticated", target)
            raise HTTPException(401, "missing, bad or expired credentials",
                                {"WWW-Authenticate": "Bearer"})  # fmt: skip
        if who.session_id is not None and request.method in _UNSAFE:
            offered = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sha256(offered), who.csrf_sha256 or ""):
                self._audit(request, who.name, who.kind, action, "denied", target, "csrf")
                raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header")
        needed = permission_of(request.method, route)
        allowed = who.may(needed) if needed else who.role == "administrator"
        if not allowed:
            self._audit(request, who.name, who.kind, action, "denied", target, needed)
            raise HTTPException(403, f"{who.role} may not {action} ({needed or 'admin only'})")
        if (request.method, route) not in UNAUDITED_READS:
            self._audit(request, who.name, who.kind, action, "allowed", target)
        request.state.principal = who
        return who

    def is_service_token(self, offered: str) -> bool:
        return hmac.compare_digest(offered.encode(), self._service)

    def identify(
        self, request: Request, credentials: HTTPAuthorizationCredentials | None
    ) -> Principal | None:
        if credentials is not None:
            offered = credentials.credentials
            if self.is_service_token(offered):
                return SERVICE
            if offered.startswith(TOKEN_PREFIX):
                return self.store.token_principal(offered)
            return None
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie or len(cookie) > 128:
            return None
        return self.store.session_principal(cookie, idle_s=self.sessions.idle_s)

    def _audit(
        self,
        request: Request,
        actor: str,
        kind: str,
        action: str,
        outcome: str,
        target: str | None,
        reason: str | None = None,
    ) -> None:
        detail: dict[str, Any] = {}
        if request.query_params:  # opaque ids and numbers only (no PHI in URLs)
            detail["query"] = {k[:64]: v[:200] for k, v in list(request.query_params.items())[:20]}
        if reason:
            detail["reason"] = reason
        try:
            self.store.audit(
                actor=actor, actor_kind=kind, action=action, outcome=outcome, target=target,
                remote=remote_of(request), detail=detail or None,
            )  # fmt: skip
        except Exception as exc:  # no audit row, no action
            log.error("audit trail write failed (%s): request refused", type(exc).__name__)
            raise HTTPException(503, "audit trail unavailable: request refused") from exc
