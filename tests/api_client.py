"""A minimal HTTP client for the fleet's REST API in tests (urllib: what any script has)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from typing import Any

__all__ = ["Session", "call"]


def call(
    base: str, path: str, *, token: str | None = None, method: str | None = None,
    body: object = None, headers: dict[str, str] | None = None,
    opener: urllib.request.OpenerDirector | None = None,
) -> tuple[int, Any]:  # fmt: skip
    """(status, decoded JSON body or None) of one request; HTTP errors are returned, not
    raised, with their JSON body where they have one."""
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with (opener or urllib.request.build_opener()).open(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return exc.code, None


class Session:
    """A browser-like login: the session cookie kept in a jar, the CSRF token sent back in
    ``X-CSRF-Token`` on state-changing requests (unless ``csrf=False``)."""

    def __init__(self, base: str, context: ssl.SSLContext | None = None) -> None:
        self.base, self.jar, self.csrf = base, CookieJar(), ""
        handlers: list[Any] = [urllib.request.HTTPCookieProcessor(self.jar)]
        if context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self.opener = urllib.request.build_opener(*handlers)

    def login(self, username: str, password: str) -> tuple[int, Any]:
        status, body = self.call("/api/login", body={"username": username, "password": password})
        if status == 200:
            self.csrf = body["csrf_token"]
        return status, body

    def call(
        self, path: str, *, method: str | None = None, body: object = None, csrf: bool = True
    ) -> tuple[int, Any]:
        unsafe = (method or ("POST" if body is not None else "GET")) != "GET"
        headers = {"X-CSRF-Token": self.csrf} if unsafe and csrf and self.csrf else {}
        return call(self.base, path, method=method, body=body, headers=headers,
                    opener=self.opener)  # fmt: skip
