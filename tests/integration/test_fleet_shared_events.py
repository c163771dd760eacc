"""Live events across fleet processes on one PostgreSQL store (fleet/shared_events.py), against
the real PostgreSQL: every dashboard sees every process's events exactly once, a second fleet
on the same server sees none of them, and a broken listening connection comes back with a
``gap`` event (dashboards reload)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from stores import PG_DSN

from edgemed.fleet.events import EventBus
from edgemed.fleet.server import _event_bus
from edgemed.fleet.shared_events import SharedEventBus
from edgemed.fleet.store import PostgresStore

pytestmark = pytest.mark.postgres


class Dashboard:
    """One dashboard connection: a subscription on its own asyncio loop, as the SSE route has."""

    def __init__(self, bus: EventBus) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sub = bus.subscribe(self.loop)
        self.seen: list[dict[str, Any]] = []

    def drain(self) -> list[dict[str, Any]]:
        async def take() -> None:
            while not self.sub.queue.empty():
                self.seen.append(self.sub.queue.get_nowait())

        asyncio.run_coroutine_threadsafe(take(), self.loop).result(5)
        return self.seen

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _until(check: Any, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())


@pytest.fixture
def buses() -> Iterator[list[SharedEventBus]]:
    store_id = uuid.uuid4().hex[:10]
    made = [SharedEventBus(PG_DSN, store_id) for _ in range(2)]
    made.append(SharedEventBus(PG_DSN, uuid.uuid4().hex[:10]))  # another fleet, same server
    for bus in made:
        bus.start()
    yield made
    for bus in made:
        bus.close()


def test_every_process_sees_every_event_once_and_another_fleet_none(
    buses: list[SharedEventBus],
) -> None:
    a, b, _other = buses
    boards = [Dashboard(bus) for bus in buses]
    try:
        for i in range(300):
            a.publish({"type": "result", "device_id": "bed-1", "seq": i + 1})
            b.publish({"type": "result", "device_id": "bed-2", "seq": i + 1})
        expected = {("bed-1", i + 1) for i in range(300)} | {("bed-2", i + 1) for i in range(300)}
        for board in boards[:2]:
            assert _until(lambda board=board: len(board.drain()) >= 600)
        time.sleep(0.5)  # anything extra (a duplicate) would have arrived by now
        for board in boards[:2]:
            got = [(e["device_id"], e["seq"]) for e in board.drain()]
            assert len(got) == 600 and set(got) == expected
            # each process's own events in the order it published them
            assert [s for d, s in got if d == "bed-1"] == list(range(1, 301))
        assert boards[2].drain() == []
    finally:
        for board in boards:
            board.close()


def test_a_broken_listening_connection_comes_back_with_a_gap(
    buses: list[SharedEventBus],
) -> None:
    a, b, _ = buses
    board = Dashboard(b)
    try:
        with psycopg.connect(PG_DSN, autocommit=True) as db:
            killed = db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'edgemed-fleet-events' AND query LIKE 'LISTEN%%'"
                " AND query LIKE %s",
                (f"%{b.channel}%",),
            ).fetchall()
        assert killed, "the listening connection was not found"
        assert _until(lambda: any(e["type"] == "gap" for e in board.drain()))
        a.publish({"type": "result", "device_id": "bed-3", "seq": 1})
        assert _until(lambda: any(e.get("device_id") == "bed-3" for e in board.drain()))
    finally:
        board.close()


def test_a_postgres_fleet_shares_its_events_and_sqlite_keeps_its_own(tmp_path: Any) -> None:
    from edgemed.fleet import SQLiteStore

    schema = f"edgemed_test_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(PG_DSN, schema=schema)
    try:
        bus = _event_bus(store)
        assert isinstance(bus, SharedEventBus) and store.store_id in bus.channel
    finally:
        store.close()
        with psycopg.connect(PG_DSN, autocommit=True) as db:
            db.execute(f"DROP SCHEMA {schema} CASCADE")
    lite = SQLiteStore(tmp_path / "f.db")
    assert type(_event_bus(lite)) is EventBus
    lite.close()
