"""Live events across fleet processes on one PostgreSQL store (LISTEN/NOTIFY).

Several ``fleet serve`` processes split the ingest; each process's :class:`EventBus` sees only
what its own workers committed, so a dashboard connected to one process would miss the results
the others stored. Here every event a process publishes also goes to PostgreSQL as a
notification on a channel named after the store (two fleets on one server never mix), and each
process listens and passes on what the *other* processes sent (its own it delivered already).

Notifications are sent in batches by one thread (ingest never waits on them) after the commit
that made the event, in the database's commit order. A process whose listening connection
breaks reconnects and gives its dashboards a ``gap`` event: they reload their lists from the
REST API, as after a slow browser's overflow. Events carry no patient data (events.py).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import uuid
from typing import Any

from .events import EventBus

__all__ = ["SharedEventBus", "channel_for"]

log = logging.getLogger(__name__)
MAX_NOTIFY_BYTES = 7900  # PostgreSQL refuses payloads of 8000 bytes and more
BATCH = 500  # notifications per transaction
RETRY_S = 1.0


def channel_for(store_id: str) -> str:
    return f"edgemed-events-{store_id}"


class SharedEventBus(EventBus):
    """An :class:`EventBus` whose events reach the dashboards of every fleet process on the
    same PostgreSQL store. ``start()`` before serving, ``close()`` at shutdown."""

    def __init__(self, dsn: str, store_id: str) -> None:
        super().__init__()
        self._dsn = dsn  # never logged: it may hold a password
        self.channel = channel_for(store_id)
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._outgoing: queue.Queue[str | None] = queue.Queue(maxsize=100_000)
        self._stop = threading.Event()
        self._listening = threading.Event()  # set while LISTEN is active
        self._threads = [
            threading.Thread(target=self._send_loop, name="edgemed-events-send", daemon=True),
            threading.Thread(target=self._listen_loop, name="edgemed-events-listen", daemon=True),
        ]

    def start(self, timeout: float = 5.0) -> None:
        for t in self._threads:
            t.start()
        self._listening.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        self._outgoing.put(None)
        for t in self._threads:
            t.join(timeout=5)

    def publish(self, event: dict[str, Any]) -> None:
        """Deliver to this process's dashboards now; queue for the other processes."""
        super().publish(event)
        payload = json.dumps({"o": self.origin, "e": event}, separators=(",", ":"))
        if len(payload.encode()) > MAX_NOTIFY_BYTES:
            log.warning(
                "live event of %d bytes not shared with other fleet processes", len(payload)
            )
            return
        try:
            self._outgoing.put_nowait(payload)
        except queue.Full:  # the database is away for long: other dashboards reload later
            log.warning("live event queue full: event not shared with other fleet processes")

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(
            self._dsn, autocommit=True, connect_timeout=3, application_name="edgemed-fleet-events"
        )

    def _send_loop(self) -> None:
        db = None
        while not self._stop.is_set():
            first = self._outgoing.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < BATCH:
                try:
                    item = self._outgoing.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._stop.set()
                    break
                batch.append(item)
            try:
                db = db or self._connect()
                with db.transaction(), db.cursor() as cur:
                    cur.executemany("SELECT pg_notify(%s, %s)", [(self.channel, p) for p in batch])
            except Exception as exc:  # the database is down: these events are not shared
                log.warning("live events not shared with other fleet processes: %s", exc)
                _closed(db)
                db = None
                self._stop.wait(RETRY_S)
        _closed(db)

    def _listen_loop(self) -> None:
        first = True
        while not self._stop.is_set():
            db = None
            try:
                db = self._connect()
                db.execute(f'LISTEN "{self.channel}"')
                self._listening.set()
                if not first:  # events may have passed while not listening
                    super().publish({"type": "gap"})
                first = False
                while not self._stop.is_set():
                    for note in db.notifies(timeout=0.5):
                        self._deliver(note.payload)
            except Exception as exc:
                log.warning("not listening for other fleet processes' live events: %s", exc)
                self._listening.clear()
                self._stop.wait(RETRY_S)
            finally:
                _closed(db)

    def _deliver(self, payload: str) -> None:
        try:
            message = json.loads(payload)
            if message["o"] != self.origin:
                super().publish(message["e"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed live event on %s", self.channel)


def _closed(db: Any) -> None:
    if db is not None:
        try:
            db.close()
        except Exception:  # closing a broken connection: nothing left to do
            log.debug("closing the events connection failed", exc_info=True)
