"""A minimal HTTP client for the fleet's REST API in tests (urllib: what any script has)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

__all__ = ["call"]


def call(
    base: str, path: str, *, token: str | None = None, method: str | None = None,
    body: object = None,
) -> tuple[int, Any]:  # fmt: skip
    """(status, decoded JSON body or None) of one request; HTTP errors are returned, not
    raised, with their JSON body where they have one."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return exc.code, None
