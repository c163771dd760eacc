"""``GET /api/alerts`` pages with stable keyset cursors (``X-Next-Cursor``), in both orders:
newest first, and the open list (most severe first, then the longest waiting). Paging while
new alerts arrive neither repeats nor skips a row that existed when paging began."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from payloads import news2_body, result_payload
from stores import test_store

from edgemed.fleet import SqlStore
from edgemed.fleet.alerts import AlertRules
from edgemed.fleet.app import create_app
from edgemed.fleet.validation import PayloadValidator

TOKEN = "alert-pages-token-0123456789"


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    yield from test_store(request.param, tmp_path)


def _raise_alerts(store: SqlStore, devices: range) -> None:
    """One alert per device: urgent (NEWS2 5-6) or emergency (>= 7) by turns."""
    validator, rules = PayloadValidator(), AlertRules()
    for n in devices:
        scores = {"pulse": 3, "spo2": 3, "temperature": 1} if n % 2 else {"pulse": 2, "spo2": 3}
        msg = validator.result(result_payload(f"bed-{n}", 1, news2_body(**scores)),
                               topic_device_id=f"bed-{n}")  # fmt: skip
        store.insert_results([msg], lambda m: rules.evaluate(m, time.time()))


def _pages(client: TestClient, query: str, during: Any = None) -> list[dict[str, Any]]:
    rows, cursor = [], None
    while True:
        response = client.get(f"/api/alerts?{query}" + (f"&cursor={cursor}" if cursor else ""))
        assert response.status_code == 200, response.text
        rows += response.json()
        cursor = response.headers.get("X-Next-Cursor")
        if during:
            during()
            during = None
        if cursor is None:
            return rows


def test_pages_cover_each_alert_once_in_order_while_alerts_arrive(store: SqlStore) -> None:
    _raise_alerts(store, range(1, 24))
    client = TestClient(
        create_app(store, token=TOKEN), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    for query, open_only in (("limit=5", False), ("open=true&limit=4", True)):
        whole = store.alerts(open_only=open_only, limit=1000)
        assert len(whole) == 23
        paged = _pages(client, query)
        assert [a["id"] for a in paged] == [a["id"] for a in whole], query
    before = {a["id"] for a in store.alerts(open_only=True, limit=1000)}
    paged = _pages(client, "open=true&limit=4", during=lambda: _raise_alerts(store, range(30, 40)))
    ids = [a["id"] for a in paged]
    assert len(ids) == len(set(ids)) and before <= set(ids)  # none repeated, none skipped
    assert client.get("/api/alerts?cursor=WzEsMiwzXQ==").status_code == 400  # [1,2,3]: not newest
    assert client.get("/api/alerts?open=true&cursor=WzFd").status_code == 400  # [1]: not open


def test_time_range_filters_bound_raised_at(store: SqlStore) -> None:
    _raise_alerts(store, range(1, 4))
    client = TestClient(
        create_app(store, token=TOKEN), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    now = time.time()
    assert len(client.get(f"/api/alerts?since={now - 60}").json()) == 3
    assert client.get(f"/api/alerts?since={now + 60}").json() == []
    assert client.get(f"/api/alerts?until={now - 60}").json() == []
