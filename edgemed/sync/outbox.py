"""Stage 6: the durable on-device outbox (SQLite, WAL, synchronous=FULL).

A result is accepted only when it is committed together with its per-device ``seq`` (never
reused within an outbox file, also across restarts and after deletion of acknowledged rows), the
current ``boot_id`` and the current ``epoch``. Rows are deleted only when the fleet acknowledges
them. When the byte or age bound is reached, new results are refused with
:class:`OutboxFullError`: never dropped silently.

Epochs: the fleet keys results on (device_id, epoch, seq). Every *open* of the outbox starts a new
epoch (a random id), whose seqs continue the file's counter. A seq therefore never collides at
the fleet, whatever happened to the file: deleted (a new file restarts at seq 1 in a new epoch),
corrupted and moved aside (likewise), or restored from an old copy (its counter is rewound, but
the epoch is new). A per-file epoch would need the fleet to notice a rewound copy and tell the
device, and results stored before that message arrived would still collide; a per-open epoch
needs neither. Rows keep the epoch they were stamped with, so rows of earlier epochs are resent
and acknowledged under their own epoch, and an acknowledgement for one epoch never deletes rows
of another. Epochs occupy consecutive seq ranges of the file (table ``epochs``). An outbox
written before epochs existed keeps its rows under the epoch ``""``, which is what the fleet
assumes for payloads without one.

Integrity: opening runs ``PRAGMA quick_check`` and checks the meta table. A corrupted file is
never truncated or repaired in place: it is renamed (with its -wal/-shm) to
``<name>.corrupt-<UTC time>`` for a human to recover rows from, logged at ERROR, and a fresh
outbox (a new epoch) takes its place; ``Outbox.recovered_from`` and the stats name the file.

This module is the queue (put with group commit, pending, acks); the file itself (schema,
integrity, moving aside, stats) is :mod:`edgemed.sync.outbox_file`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .. import failpoints
from ..config import OutboxConfig
from ..errors import OutboxFullError, SyncError
from ..wire import check_device_id
from .outbox_file import (
    Corrupt,
    OutboxStats,
    Transaction,
    move_aside,
    open_checked,
    read_stats,
    read_status,
)
from .put_request import PayloadBuilder, PutRequest

__all__ = ["Outbox", "OutboxRow", "OutboxStats", "PayloadBuilder", "read_status"]

log = logging.getLogger(__name__)
# Payloads of the newest committed rows kept in memory, so the sender publishes them without
# reading SQLite back (and without waiting on the connection behind the next fsync).
FRESH_ROWS = 4096
# Rows per INSERT statement: 6 parameters each stay under SQLite's oldest limit of 999.
INSERT_ROWS = 150


class _Group(NamedTuple):
    """What a stored group adds to the figures the commit path keeps in memory."""

    next_seq: int
    oldest: float | None
    lows: dict[str, int]
    added_bytes: int
    rows: int


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    payload: bytes


class Outbox:
    """Thread-safe; one per device. Payloads are built inside the storing transaction."""

    def __init__(self, config: OutboxConfig) -> None:
        self.config = config
        self.device_id = check_device_id(config.device_id)
        self.boot_id = str(uuid.uuid4())
        self.epoch = uuid.uuid4().hex  # this open's seq key space at the fleet (module doc)
        self.recovered_from: Path | None = None  # a corrupted file moved aside by this open
        self.refused = 0  # refused by this process; meta "refused_total" counts across restarts
        self.commits = 0  # group commits by this process (results stored / commits: group size)
        self._lock = threading.Lock()  # guards the connection
        self._queue_lock = threading.Lock()  # guards the group-commit queue and its leader flag
        self._queue: list[PutRequest] = []
        self._committing = False
        self._fresh: OrderedDict[int, bytes] = OrderedDict()  # seq -> payload, ascending
        self._fresh_lock = threading.Lock()
        config.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = open_checked(config.path)
        except (sqlite3.DatabaseError, Corrupt) as exc:
            try:
                self.recovered_from = move_aside(config.path)
            except OSError as move_error:  # never delete or overwrite it instead
                raise SyncError(
                    f"outbox {config.path} is corrupted ({exc}) and cannot be moved aside: "
                    f"{move_error}"
                ) from exc
            log.error(
                "outbox %s is corrupted (%s): moved aside to %s for recovery; "
                "starting a new outbox (new epoch)",
                config.path,
                exc,
                self.recovered_from,
            )
            try:
                self._db = open_checked(config.path)
            except (sqlite3.DatabaseError, Corrupt) as again:
                raise SyncError(f"cannot create outbox {config.path}: {again}") from again
        try:
            self._init_meta()
            self._reload()
            # epoch -> first seq; epochs occupy consecutive seq ranges, the newest last
            self._epochs = dict(
                self._db.execute("SELECT epoch, start_seq FROM epochs ORDER BY start_seq")
            )
        except BaseException as exc:
            self._db.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise SyncError(f"cannot open outbox {config.path}: {exc}") from exc
            raise
        self.epoch_start = self._epochs[self.epoch]
        # A corrupted predecessor of this file, moved aside (by this open or an earlier one):
        # the birth message reports it so that the fleet records it.
        self.moved_aside = self._meta("recovered_from")

    def _init_meta(self) -> None:
        with self._tx():
            stored = self._meta("device_id")
            if stored is None:
                self._set_meta("device_id", self.device_id)
                self._set_meta("next_seq", "1")
                self._set_meta("last_ack_seq", "0")
                if self.recovered_from is not None:
                    self._set_meta("recovered_from", self.recovered_from.name)
            elif stored != self.device_id:
                raise SyncError(
                    f"outbox {self.config.path} belongs to device {stored!r}, not {self.device_id!r}"
                )
            self._set_meta("boot_id", self.boot_id)
            next_seq = int(self._meta("next_seq") or 1)
            # Epochs whose rows are all acknowledged are of no further use. Rows of epoch ""
            # (written before epochs, or by a builder that does not stamp one) need no entry.
            self._db.execute(
                "DELETE FROM epochs WHERE epoch NOT IN (SELECT DISTINCT epoch FROM outbox)"
            )
            self._db.execute(
                "INSERT INTO epochs(epoch, start_seq, opened_at) VALUES (?, ?, ?)",
                (self.epoch, next_seq, time.time()),
            )
            self._set_meta("epoch", self.epoch)

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def _tx(self) -> Transaction:
        return Transaction(self._db)

    def put(self, build_payload: PayloadBuilder, *, stamps_epoch: bool = False) -> int:
        """Store one result durably and return its seq.

        ``build_payload(seq, boot_id, lowest_unacked_seq)`` makes the bytes to publish; it runs
        inside the storing transaction, so the seq in the payload and in the row always agree.
        Concurrent callers are group-committed: one transaction (one fsync) for everyone who
        arrived while the previous commit was running; each still gets its own seq or error.

        ``stamps_epoch``: the payload carries ``Outbox.epoch`` (wire.stamp_result(epoch=…), as
        the Publisher does); the row then belongs to that epoch. Otherwise the fleet files it
        under epoch "", as for devices older than epochs (no protection against a lost outbox).
        ``lowest_unacked_seq`` counts the rows of the same epoch only, as the fleet does.
        """
        request = PutRequest(build_payload, self.epoch if stamps_epoch else "")
        self._put_requests([request])
        return request.outcome()

    def put_many(
        self, build_payloads: list[PayloadBuilder], *, stamps_epoch: bool = False
    ) -> list[int]:
        """Store several results in one transaction (one fsync), in order; return their seqs.

        As ``put`` for each, except that a refused result (outbox full, a builder's error)
        refuses the ones after it too, so what is stored is always a prefix: the error raised
        carries the stored prefix's seqs in ``stored_seqs``."""
        epoch = self.epoch if stamps_epoch else ""
        requests: list[PutRequest] = []
        for build in build_payloads:
            requests.append(PutRequest(build, epoch, after=requests[-1] if requests else None))
        if requests:
            self._put_requests(requests)
        stored = [r.seq for r in requests if r.seq is not None]
        failed = next((r.error for r in requests if r.error is not None), None)
        if failed is not None:
            if isinstance(failed, SyncError):
                failed.stored_seqs = tuple(stored)
            raise failed
        return stored

    def _put_requests(self, requests: list[PutRequest]) -> None:
        """Queue ``requests`` (one caller's, kept together) and return once they are committed
        or refused: by committing them as the leader, or after another leader did."""
        with self._queue_lock:
            self._queue.extend(requests)
            leads = not self._committing
            self._committing = True
        first = requests[0]
        if not leads:
            # Released by the leader of the commit that took these requests (done), or handed
            # the lead for the requests that queued meanwhile (not done). Waking exactly those
            # threads, not every waiter, matters with many producers: each wake costs the GIL.
            first.wake.acquire()
            if first.done:
                return
        with self._queue_lock:
            batch, self._queue = self._queue, []
        try:
            with self._lock:
                self._commit_group(batch)
        finally:
            for req in batch:
                if req.seq is None and req.error is None:  # the commit itself raised
                    req.error = SyncError("outbox write failed; result not stored")
                req.done = True
                if req is not first:
                    req.wake.release()
            with self._queue_lock:
                if self._queue:
                    self._queue[0].wake.release()  # next leader: still not done
                else:
                    self._committing = False

    def _commit_group(self, batch: list[PutRequest]) -> None:
        try:
            with self._tx():
                group = self._store_group(batch)
        except sqlite3.DatabaseError as exc:  # rolled back: nobody in the group was stored
            self._forget_group(batch)
            for req in batch:
                req.error = SyncError(f"outbox write failed: {exc}")
                req.error.__cause__ = exc
            return
        except BaseException:  # e.g. KeyboardInterrupt in a builder: rolled back as well
            self._forget_group(batch)
            raise
        self._apply_group(group)
        self.commits += 1
        failpoints.hit("outbox.committed")
        with self._fresh_lock:  # committed: seqs ascend, so the cache stays contiguous
            for req in batch:
                if req.seq is not None and req.payload is not None:
                    self._fresh[req.seq] = req.payload
            while len(self._fresh) > FRESH_ROWS:
                self._fresh.popitem(last=False)

    def _forget_group(self, batch: list[PutRequest]) -> None:
        """After a rollback: no request keeps a seq that was never stored (it would be reused).
        Seqs first: recounting reads the database, which may be what just failed."""
        for req in batch:
            req.seq, req.payload = None, None
        self._reload()

    def _reload(self) -> None:
        """The figures the commit path keeps in memory, read from the file (at open and after
        a rollback). Commits then read no table: each statement releases the GIL, and every
        release lets a producer's encoding in before the commit may go on."""
        count, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM outbox"
        ).fetchone()
        self._depth, self._bytes = int(count), int(size)
        self._next_seq = int(self._meta("next_seq") or 1)
        self._last_ack_seq = int(self._meta("last_ack_seq") or 0)
        self._forget_oldest()

    def _forget_oldest(self) -> None:
        """Rows were deleted (or a commit rolled back): the oldest row and each epoch's lowest
        unacknowledged seq are read again by the next commit that needs them."""
        self._oldest: float | None = None
        self._oldest_known = False
        self._lows: dict[str, int] = {}  # epoch -> its lowest stored seq (epochs with rows)

    def _oldest_created_at(self) -> float | None:
        if not self._oldest_known:
            row = self._db.execute("SELECT created_at FROM outbox ORDER BY seq LIMIT 1").fetchone()
            self._oldest, self._oldest_known = (None if row is None else float(row[0])), True
        return self._oldest

    def _lowest_stored(self, epoch: str) -> int | None:
        """The lowest seq of ``epoch`` still stored; its rows are all >= epoch_start, those of
        epoch "" anywhere."""
        row = self._db.execute(
            "SELECT seq FROM outbox WHERE seq >= ? AND epoch = ? ORDER BY seq LIMIT 1",
            (self.epoch_start if epoch else 1, epoch),
        ).fetchone()
        return None if row is None else int(row[0])

    def _store_group(self, batch: list[PutRequest]) -> _Group:
        """Store the batch's rows in the open transaction; what it adds to the figures kept in
        memory is returned, for ``_apply_group`` once the transaction has committed."""
        next_seq, oldest, now = self._next_seq, self._oldest_created_at(), time.time()
        lows = dict(self._lows)  # the lowest unacked seq the fleet counts in each epoch
        added = 0
        rows: list[tuple[int, str, float, int, bytes, str]] = []
        refused = 0
        for req in batch:
            if req.after is not None and req.after.seq is None:  # put_many: a prefix only
                req.error = req.after.error or SyncError("an earlier result was refused")
                continue
            if oldest is not None and now - oldest > self.config.max_age_s:
                req.error = OutboxFullError(
                    f"outbox holds a result unacknowledged for {(now - oldest) / 3600:.1f} h "
                    f"(limit {self.config.max_age_s / 3600:.1f} h): is the fleet reachable?"
                )
                refused += 1
                continue
            low = lows.get(req.epoch)
            if low is None:
                low = self._lowest_stored(req.epoch)
            try:
                payload = req.build(next_seq, self.boot_id, next_seq if low is None else low)
            except Exception as exc:  # the caller's own error, handed back to that caller only
                req.error = exc
                continue
            if self._bytes + added + len(payload) > self.config.max_bytes:
                req.error = OutboxFullError(
                    f"outbox is full ({self._bytes + added:,} of {self.config.max_bytes:,} "
                    "bytes); result refused"
                )
                refused += 1
                continue
            rows.append((next_seq, self.boot_id, now, len(payload), payload, req.epoch))
            req.seq, req.payload = next_seq, payload
            lows[req.epoch] = next_seq if low is None else low
            next_seq += 1
            added += len(payload)
            oldest = now if oldest is None else oldest
        for start in range(0, len(rows), INSERT_ROWS):  # one statement for many rows
            chunk = rows[start : start + INSERT_ROWS]
            self._db.execute(
                "INSERT INTO outbox(seq, boot_id, created_at, bytes, payload, epoch) VALUES "
                + ",".join(["(?,?,?,?,?,?)"] * len(chunk)),
                [value for row in chunk for value in row],
            )
        if rows:
            self._set_meta("next_seq", str(next_seq))
        if refused:
            self.refused += refused
            total = int(self._meta("refused_total") or 0) + refused
            self._set_meta("refused_total", str(total))
            log.warning(
                "outbox refused %d result(s) (%d in total): full or too old", refused, total
            )
        return _Group(next_seq, oldest, lows, added, len(rows))

    def _apply_group(self, group: _Group) -> None:
        """The group's rows are committed: advance what the commit path keeps in memory."""
        self._next_seq, self._oldest, self._lows, added, count = group
        self._oldest_known = True
        self._bytes += added
        self._depth += count

    @property
    def depth(self) -> int:
        """Unacknowledged results (kept in memory: cheap enough to poll)."""
        return self._depth

    def pending(self, limit: int, *, after: int = 0) -> list[OutboxRow]:
        """Up to ``limit`` unacknowledged rows with seq > ``after``, lowest seq first."""
        with self._fresh_lock:
            # The cache holds the newest rows contiguously up to the last one stored, so if it
            # has after + 1 it has every later row too; else (replay, restart) read SQLite.
            if after + 1 in self._fresh:
                fresh: list[OutboxRow] = []
                seq = after + 1
                while len(fresh) < limit and seq in self._fresh:
                    fresh.append(OutboxRow(seq, self._fresh[seq]))
                    seq += 1
                return fresh
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            ).fetchall()
        return [OutboxRow(int(seq), bytes(payload)) for seq, payload in rows]

    def rows(self, seqs: list[int]) -> list[OutboxRow]:
        """The rows with these seqs that are still unacknowledged, lowest seq first."""
        if not seqs:
            return []
        marks = ",".join("?" * len(seqs))
        with self._lock:
            rows = self._db.execute(
                f"SELECT seq, payload FROM outbox WHERE seq IN ({marks}) ORDER BY seq", seqs
            ).fetchall()
        return [OutboxRow(int(seq), bytes(payload)) for seq, payload in rows]

    def ack_range(self, ack_seq: int, epoch: str | None = None) -> range:
        """The seqs of this file that an ack of ``ack_seq`` in ``epoch`` covers.

        ``epoch`` None is an ack from a fleet older than epochs: every seq up to ``ack_seq``;
        so is epoch "" (its rows may lie anywhere). An epoch this outbox does not hold (a stale
        ack, e.g. for a deleted file) covers none.
        """
        if not epoch:
            return range(1, ack_seq + 1)
        start = self._epochs.get(epoch)
        if start is None:
            return range(0)
        # Epochs take consecutive seq ranges: this one ends where the next one starts.
        end = min((s for s in self._epochs.values() if s > start), default=ack_seq + 1)
        return range(start, min(ack_seq + 1, end))

    def check_ack(self, ack_seq: int, epoch: str | None) -> None:
        """SyncError for an ack of this open's epoch (or of none) beyond every seq assigned."""
        if (not epoch or epoch == self.epoch) and ack_seq >= self._next_seq:
            raise SyncError(f"ack for seq {ack_seq} that this outbox never assigned")

    def ack_through(self, ack_seq: int, epoch: str | None = None) -> int:
        """The fleet committed every seq <= ack_seq of ``epoch``: delete those rows.

        Returns rows deleted. Only rows stamped with that epoch are touched, so a stale ack for
        an earlier epoch (or another file) can never delete newer rows. ``epoch`` None: an ack
        from a fleet older than epochs, which counts seqs across the whole device.
        """
        current = not epoch or epoch == self.epoch  # "": counted like seqs before epochs
        self.check_ack(ack_seq, epoch)
        covered = self.ack_range(ack_seq, epoch)
        with self._lock:
            # No fsync for deletions: one lost on power failure only means a resend, which the
            # fleet absorbs; WAL is sequential, so the next FULL commit makes it durable anyway.
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                with self._tx():
                    where = "seq >= ? AND seq < ?" + ("" if epoch is None else " AND epoch = ?")
                    params = (covered.start, covered.stop) + (() if epoch is None else (epoch,))
                    (freed,) = self._db.execute(
                        f"SELECT COALESCE(SUM(bytes), 0) FROM outbox WHERE {where}", params
                    ).fetchone()
                    deleted = self._db.execute(f"DELETE FROM outbox WHERE {where}", params).rowcount
                    last = max(self._last_ack_seq, ack_seq)
                    if current:  # both keys in one statement: see _reload
                        self._db.execute(
                            "INSERT OR REPLACE INTO meta(key, value) "
                            "VALUES ('last_ack_at', ?), ('last_ack_seq', ?)",
                            (repr(time.time()), str(last)),
                        )
            finally:
                self._db.execute("PRAGMA synchronous=FULL")
            failpoints.hit("outbox.acked")
            self._bytes -= int(freed)  # only once committed
            self._depth -= deleted
            if current:
                self._last_ack_seq = last
            if deleted:
                self._forget_oldest()
            if current:  # the cache holds only rows this process stored: none of older epochs
                with self._fresh_lock:
                    while self._fresh and next(iter(self._fresh)) <= ack_seq:
                        self._fresh.popitem(last=False)
            return int(deleted)

    def stats(self) -> OutboxStats:
        with self._lock:
            return read_stats(self._db, refused=self.refused)

    def set_link_state(self, state: str) -> None:
        """Record the broker link state so ``edgemed sync status`` can show it from outside."""
        with self._lock, self._tx():
            self._set_meta("link_state", state)
            self._set_meta("link_changed_at", repr(time.time()))

    def close(self) -> None:
        with self._lock:
            self._db.close()
