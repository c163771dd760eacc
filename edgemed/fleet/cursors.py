"""Opaque keyset cursors of the API's lists: base64url of a small JSON array naming where the
next page starts. A page is a WHERE on an index, never an OFFSET, so it stays as fast deep into
a million rows, and rows added meanwhile never shift a page. A cursor that does not decode to
the expected shape is a 400, never a 500 (SQL cannot bind integers beyond 64 bits)."""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

from fastapi import HTTPException

from .limits import MAX_ID

__all__ = [
    "encode_cursor",
    "read_alert_cursor",
    "read_id_cursor",
    "read_result_cursor",
    "result_cursor",
]


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()


def _decode(cursor: str) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor))
    except (ValueError, TypeError, binascii.Error, RecursionError) as exc:
        raise HTTPException(400, "bad cursor") from exc
    if not isinstance(values, list):
        raise HTTPException(400, "bad cursor")
    return values


def _id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise HTTPException(400, "bad cursor")
    return value


def _time(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise HTTPException(400, "bad cursor")
    return float(value)


def result_cursor(row: dict[str, Any]) -> str:
    return encode_cursor([row["received_at"], row["device_id"], row["seq"]])


def read_result_cursor(cursor: str) -> tuple[float, str, int]:
    values = _decode(cursor)
    if len(values) != 3 or not isinstance(values[1], str):
        raise HTTPException(400, "bad cursor")
    seq = values[2]
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_ID:
        raise HTTPException(400, "bad cursor")
    return _time(values[0]), values[1], seq


def read_id_cursor(cursor: str) -> int:
    values = _decode(cursor)
    if len(values) != 1:
        raise HTTPException(400, "bad cursor")
    return _id(values[0])


def read_alert_cursor(cursor: str, *, open_only: bool) -> tuple[Any, ...]:
    """(severity rank, raised_at, id) for the open list, (id,) for the newest-first list."""
    values = _decode(cursor)
    if not open_only:
        if len(values) != 1:
            raise HTTPException(400, "bad cursor")
        return (_id(values[0]),)
    if len(values) != 3 or not isinstance(values[0], int) or not -1 <= values[0] <= 9:
        raise HTTPException(400, "bad cursor")
    return values[0], _time(values[1]), _id(values[2])
