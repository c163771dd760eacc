"""What the fleet's API accepts as input: body sizes, parameter bounds, and the 4xx replies to
anything beyond them (never a 500, never the input echoed back).

- ``BodyLimit``: ASGI middleware refusing a request body over ``max_bytes`` with 413, from its
  ``Content-Length`` before anything is read, or as the body streams in (chunked uploads).
- ``validation_error``: FastAPI's 422 for bad input, without the ``input`` (and ``ctx``) that
  FastAPI puts in each error: a 20 MB login body was echoed back in full, and a near-miss
  token would be too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

__all__ = ["DEVICE_ID", "MAX_BODY_BYTES", "MAX_ID", "BodyLimit", "validation_error"]

# The largest body any route takes is an encounter mapping or an acknowledgement (< 2 kB).
MAX_BODY_BYTES = 64 * 1024
# Routes that stream a larger body to disk and bound it themselves: a bundle upload
# (fleet/rollouts/routes.py; the bundle shelf's limit, 2 GiB by default).
OWN_LIMIT = frozenset({("POST", "/api/bundles")})
MAX_ID = 2**63 - 1  # store ids and seqs are SQL BIGINTs
DEVICE_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # as edgemed/schemas/result-1.json has it

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class _TooLarge(HTTPException):
    """Raised while the body streams in: an HTTPException, so that FastAPI's body parsing
    passes it on (as 413) instead of turning it into "error parsing the body" (400)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, _too_large(max_bytes))


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 on every route."""

    def __init__(self, app: App, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope.get("method"), scope.get("path")) in OWN_LIMIT:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await _reply(send, 400, "bad Content-Length")
                return
            if size > self.max_bytes:
                await _reply(send, 413, _too_large(self.max_bytes))
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except _TooLarge:
            if started:
                raise
            await _reply(send, 413, _too_large(self.max_bytes))


def _too_large(max_bytes: int) -> str:
    return f"request body over {max_bytes} bytes"


async def _reply(send: Send, status: int, detail: str) -> None:
    body = JSONResponse({"detail": detail}).body
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers.append((b"connection", b"close"))  # the rest of the body is never read
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """422 naming where and which rule, without the offending input."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {
            "loc": [str(part)[:64] for part in error.get("loc", ())][:8],
            "msg": str(error.get("msg", ""))[:200],
            "type": str(error.get("type", ""))[:64],
        }
        for error in errors[:20]
    ]
    return JSONResponse({"detail": detail}, status_code=422)
