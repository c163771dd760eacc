"""When the publisher sends rows and when it deletes acknowledged ones.

Both rules trade a few milliseconds for far fewer per-message and per-transaction costs under
load, and cost nothing to a quiet device:

- **Nagle's rule for results** (``SyncConfig.partial_hold_s``). Full messages always go. Rows
  that would make a message of fewer than ``max_batch_results`` results wait while an earlier
  such message is in flight, unacknowledged by the fleet, for at most ``partial_hold_s``. The
  fleet's ack (which wakes the sender) usually comes first, and the rows that gathered
  meanwhile leave together: a message per fleet round trip instead of a message per commit,
  and the fleet stores, commits and acks in larger batches. A device with nothing in flight
  sends at once.
- **Deletions in batches** (``SyncConfig.ack_delete_s``). An ack takes the rows it covers out
  of flight at once; their deletion from the outbox (a SQLite transaction holding the outbox
  lock the next commit waits for) runs once ``ack_delete_rows`` rows are acknowledged or
  ``ack_delete_s`` after the first, and before every replay. Durability is unchanged: a row
  whose deletion is lost (crash, power) is resent, and the fleet absorbs the duplicate, as it
  already must for deletions that are not fsynced.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Container

from ..config import SyncConfig
from ..errors import EdgemedError
from .messages import batch_rows, is_partial
from .outbox import Outbox, OutboxRow

__all__ = ["AckRate", "Pacing"]

log = logging.getLogger(__name__)
# The fleet's ack rate is measured over this many seconds of ack progress. Acks arrive in bursts
# (a filled gap acknowledges hundreds at once): a moving average of per-ack rates read ~1,000/s
# while the fleet committed ~30/s, and the resend timers then duplicated two thirds of traffic.
ACK_RATE_WINDOW_S = 10.0


class AckRate:
    """The fleet's ack throughput (results/s) over the last ACK_RATE_WINDOW_S of progress:
    resend timers wait for the queue ahead of a result instead of resending into it."""

    def __init__(self) -> None:
        self.rate: float | None = None
        self._acks: deque[tuple[float, int]] = deque()  # (monotonic time, ack seq), ascending

    def update(self, ack_seq: int, now: float) -> None:
        if self._acks and ack_seq <= self._acks[-1][1]:
            return  # a repeated ack: no progress
        self._acks.append((now, ack_seq))
        while now - self._acks[0][0] > ACK_RATE_WINDOW_S and len(self._acks) > 2:
            self._acks.popleft()
        since, first = self._acks[0]
        if now - since >= 1.0:  # enough history for a rate that bursts do not dominate
            self.rate = (ack_seq - first) / (now - since)


class Pacing:
    """The two rules' state for one publisher. ``unheld`` runs on the sender thread with the
    publisher's condition held; ``acked`` on the network thread; ``delete_due`` on either."""

    def __init__(self, outbox: Outbox, sync: SyncConfig) -> None:
        self.outbox = outbox
        self.sync = sync
        # The one partial message awaiting the fleet's ack: (its last seq, when it was sent).
        self._partial: tuple[int, float] | None = None
        self._hold_until: float | None = None  # the sender sends held rows by then
        self._held_from: int | None = None  # the first row held, while rows are held
        self._lock = threading.Lock()  # guards the acknowledged rows not yet deleted
        self._acked: dict[str | None, int] = {}  # epoch -> highest seq acknowledged
        self._acked_rows = 0  # rows those acks cover, roughly: they decide when to delete
        self._delete_at: float | None = None
        self.replays = 0  # reconnects and replays so far: a send begun before one is dropped

    def reset(self) -> None:
        """A reconnect or replay: nothing is in flight any more (caller holds the publisher's
        condition, as ``_publish_due`` does when it compares ``replays``)."""
        self.replays += 1
        self._partial = None
        self._hold_until = self._held_from = None

    def unheld(
        self, fresh: list[OutboxRow], now: float, in_flight: Container[int]
    ) -> list[OutboxRow]:
        """Of rows never sent, those to send now (Nagle's rule, module doc)."""
        self._held_from = None  # set again below if rows are held
        if not fresh:
            return fresh
        groups = batch_rows(fresh, self.sync.max_batch_results)
        if not is_partial(groups[-1], self.sync.max_batch_results):
            return fresh
        if self._partial is not None:
            last_seq, sent_at = self._partial
            until = sent_at + self.sync.partial_hold_s
            if last_seq in in_flight and now < until:
                self._hold_until, self._held_from = until, groups[-1][0].seq
                return [row for group in groups[:-1] for row in group]
        self._partial = (groups[-1][-1].seq, now)
        return fresh

    def wake_needed(self, last_seq: int) -> bool:
        """Whether rows stored through ``last_seq`` need the sender now: not while it holds
        rows that, with these, still make no full message (the ack or the hold's end wakes it)."""
        held = self._held_from
        return held is None or last_seq - held + 1 >= self.sync.max_batch_results

    def acked(self, ack_seq: int, epoch: str | None, rows: int) -> bool:
        """Record an ack covering about ``rows`` rows; True when the deletion is due now."""
        with self._lock:
            if ack_seq > self._acked.get(epoch, 0):
                self._acked[epoch] = ack_seq
            self._acked_rows += rows
            if self._delete_at is None:
                self._delete_at = time.monotonic() + self.sync.ack_delete_s
            return self._acked_rows >= self.sync.ack_delete_rows

    def delete_due(self, *, force: bool = False) -> bool:
        """Delete the acknowledged rows if it is time (or ``force``: before a replay, at stop);
        True if it did."""
        with self._lock:
            if not self._acked:
                return False
            due = force or self._acked_rows >= self.sync.ack_delete_rows
            if not (due or (self._delete_at is not None and time.monotonic() >= self._delete_at)):
                return False
            acked, self._acked = self._acked, {}
            self._acked_rows, self._delete_at = 0, None
        for epoch, ack_seq in acked.items():
            try:
                self.outbox.ack_through(ack_seq, epoch)
            except (EdgemedError, sqlite3.Error) as exc:  # rows stay: resent, absorbed
                log.error("cannot delete acknowledged rows through seq %d: %s", ack_seq, exc)
        return True

    def wake_at(self) -> float | None:
        """The monotonic time by which the sender must look again (held rows, deletions)."""
        times = [t for t in (self._hold_until, self._delete_at) if t is not None]
        self._hold_until = None
        return min(times, default=None)
