"""Stage 9: a minimal read-only REST API over the store (stdlib HTTP server, bearer token).

Routes: ``GET /api/health`` (no token), ``/api/devices``, ``/api/results?device_id=&limit=``,
``/api/alarms``, ``/api/dead-letters``. The dashboard and the full API come with the fleet issue.
Access logs print method, path and status only: never query strings (no PHI in logs).
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .store import SqlStore

__all__ = ["FleetApi"]

log = logging.getLogger(__name__)


class FleetApi:
    """Serve ``store`` on ``host:port`` in a background thread."""

    def __init__(self, store: SqlStore, *, token: str, host: str = "127.0.0.1", port: int = 8080):
        self.store = store
        self.token = token
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> FleetApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _route(self, path: str, query: dict[str, list[str]]) -> Any:
        if path == "/api/devices":
            return self.store.devices()
        if path == "/api/results":
            limit = int(query.get("limit", ["100"])[0])
            device = query.get("device_id", [None])[0]
            return self.store.results(device_id=device, limit=max(1, min(limit, 1000)))
        if path == "/api/alarms":
            return self.store.alarms()
        if path == "/api/dead-letters":
            return self.store.dead_letters()
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/api/health":
                    return self._send(HTTPStatus.OK, {"status": "ok"})
                auth = self.headers.get("Authorization", "")
                if not hmac.compare_digest(auth.encode(), f"Bearer {api.token}".encode()):
                    return self._send(HTTPStatus.UNAUTHORIZED, {"error": "missing or bad token"})
                try:
                    body = api._route(url.path, parse_qs(url.query))
                except ValueError:
                    return self._send(HTTPStatus.BAD_REQUEST, {"error": "bad query parameter"})
                if body is None:
                    return self._send(HTTPStatus.NOT_FOUND, {"error": "no such route"})
                self._send(HTTPStatus.OK, body)

            def _send(self, status: HTTPStatus, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                log.info("%s %s", self.command, urlsplit(self.path).path)

        return Handler
