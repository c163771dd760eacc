"""Security headers on every reply of the fleet's API and dashboard.

The dashboard is static files from this package with no inline script or style and no CDN, so
the Content-Security-Policy can allow its own origin only; ``frame-ancestors 'none'`` (and the
older ``X-Frame-Options``) keep it out of other sites' frames (clickjacking of an acknowledge
button). Over HTTPS, ``Strict-Transport-Security`` tells browsers never to use plain HTTP.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request, Response

from ...errors import SyncError

__all__ = ["CSP", "HttpsFiles", "add_security_headers"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # patient-related replies never sit in a shared cache
}
HSTS = "max-age=31536000; includeSubDomains"


def add_security_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.scheme == "https":
            response.headers["Strict-Transport-Security"] = HSTS
        return response


@dataclass(frozen=True)
class HttpsFiles:
    """The API's certificate chain and private key (PEM): the fleet then serves HTTPS only."""

    cert: Path
    key: Path

    def check(self) -> None:
        """Refuse to start with files that TLS cannot use (named), before binding a port."""
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise SyncError(
                f"cannot serve HTTPS with certificate {self.cert} and key {self.key}: {exc}"
            ) from exc
