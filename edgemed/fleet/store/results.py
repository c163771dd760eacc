"""Results in: the half of ``SqlStore`` that ingest writes through (mixed into ``SqlStore``,
which supplies the hooks).

Idempotence: results are keyed on (device_id, epoch, seq). A repeat with the same payload hash
is a duplicate (absorbed); with a different hash it is a conflict (an integrity alert plus a dead
letter, never an overwrite). Acks are per (device, epoch) (``device_epochs.acked_seq``): the
highest seq such that every seq up to it is committed; the device's ``lowest_unacked_seq`` lets
the fleet skip seqs that an earlier store already acknowledged. ``devices.acked_seq`` mirrors
the device's current epoch.

Epochs (sync/outbox.py): a device starts one each time it opens its outbox; payloads without one
(older devices) are filed under "". A new epoch whose seqs overlap those another epoch of the
device holds means the device's counter went back (outbox deleted, corrupted or restored from an
old copy): both are kept, and a ``seq-restart`` event in ``device_events`` records the gap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ...wire import ResultMessage
from ..alerts import Alert, EpisodeClear
from .schema import RESULT_COLUMNS, RESULT_VALUES, UPSERT_DEVICE, result_row

__all__ = ["Committed", "Evaluate", "InsertOutcome", "ResultWrites"]

InsertOutcome = Literal["stored", "duplicate", "conflict"]


@dataclass(frozen=True)
class Committed:
    """What one ``insert_results`` transaction committed."""

    outcomes: list[InsertOutcome]  # one per message, in the order given
    # per (device, epoch): the highest contiguous seq now held (the ack to send)
    acked: dict[tuple[str, str], int]
    alerts: list[Alert]  # raised in the same transaction


Evaluate = Callable[[ResultMessage], "list[Alert] | list[Alert | EpisodeClear]"]


class ResultWrites:
    """Idempotent result inserts, per-epoch acks, epochs and device events."""

    _lock: threading.Lock
    _lock_row: str

    if TYPE_CHECKING:  # supplied by SqlStore and the other halves of the store

        def _run(self, sql: str, params: tuple[Any, ...] = ()) -> Any: ...

        def _transaction(self) -> AbstractContextManager[None]: ...

        def _raise(self, alert: Alert, now: float) -> bool: ...

        def _clear_episode(self, clear: EpisodeClear, now: float) -> None: ...

        def _insert_dead_letter(
            self, topic: str, reason: str, payload: bytes, now: float
        ) -> bool: ...

        def _record_encounter(
            self, key: tuple[str, str, int], encounter: Any, at: float
        ) -> None: ...

    def insert_result(self, msg: ResultMessage) -> tuple[InsertOutcome, int]:
        """Commit one result idempotently; returns the outcome and its epoch's new ack seq."""
        done = self.insert_results([msg])
        return done.outcomes[0], done.acked[(msg.device_id, msg.epoch)]

    def insert_results(
        self, msgs: list[ResultMessage], evaluate: Evaluate | None = None
    ) -> Committed:
        """Commit many results in one transaction (one fsync), with the alerts they raise.

        ``evaluate`` gives the alerts of each newly stored result (not of duplicates); they
        commit atomically with it, so a crash can neither lose nor repeat an alert.
        """
        now = time.time()
        floors: dict[tuple[str, str], int] = {}
        for msg in msgs:
            key = (msg.device_id, msg.epoch)
            floors[key] = max(floors.get(key, 0), msg.lowest_unacked_seq)
        # Rows are locked in key order, devices in id order: concurrent workers on PostgreSQL
        # then always take locks in the same order and cannot deadlock.
        order = sorted(range(len(msgs)), key=lambda i: _key(msgs[i]))
        outcomes: list[InsertOutcome] = ["stored"] * len(msgs)
        raised: list[Alert] = []
        with self._lock, self._transaction():
            stored = self._insert_rows([msgs[i] for i in order], now)
            for i in order:
                msg = msgs[i]
                if _key(msg) in stored:
                    stored.discard(_key(msg))  # a repeat in this batch: duplicate
                    self._record_encounter(_key(msg), msg.body.get("encounter"), msg.created_at)
                    for item in evaluate(msg) if evaluate else ():
                        if isinstance(item, EpisodeClear):
                            self._clear_episode(item, now)
                        elif self._raise(item, now):
                            raised.append(item)
                else:
                    outcomes[i] = self._repeat(msg, now)
            acked = self._advance_all(floors, now)
        return Committed(outcomes, acked, raised)

    def _insert_rows(self, msgs: list[ResultMessage], now: float) -> set[tuple[str, str, int]]:
        """Insert, skipping existing keys; returns the keys this call stored."""
        stored: set[tuple[str, str, int]] = set()
        for msg in msgs:
            cur = self._run(
                f"INSERT INTO results({RESULT_COLUMNS}) VALUES {RESULT_VALUES} "
                "ON CONFLICT DO NOTHING",
                result_row(msg, now),
            )
            if cur.rowcount == 1:
                stored.add(_key(msg))
        return stored

    def _repeat(self, msg: ResultMessage, now: float) -> InsertOutcome:
        (stored_hash,) = self._run(
            "SELECT payload_sha256 FROM results WHERE device_id=? AND epoch=? AND seq=?",
            _key(msg),
        ).fetchone()
        if stored_hash == msg.payload_sha256:
            return "duplicate"
        self._raise(
            Alert(
                device_id=msg.device_id, seq=msg.seq, rule="seq-conflict", severity="integrity",
                detail=f"seq {msg.seq} (epoch {msg.epoch or '-'}) repeated with a different "
                f"payload (result_id {msg.result_id}); the first payload is kept",
            ),
            now,
        )  # fmt: skip
        # Keep the rejected payload (its size, sha256 and a prefix; beyond the quota, a count
        # of its reason): nothing a device sent is ever discarded unseen.
        self._insert_dead_letter(
            f"edgemed/v1/{msg.device_id}/results", f"seq-conflict at seq {msg.seq}",
            msg.raw.encode(), now,
        )  # fmt: skip
        return "conflict"

    def _advance_all(
        self, floors: dict[tuple[str, str], int], now: float
    ) -> dict[tuple[str, str], int]:
        """Per (device, epoch): touch the device, and move the epoch's ack to the top of its
        contiguous run of seqs. A device's epochs go in seq order (_new_epoch relies on it)."""
        return {
            key: self._advance(key[0], key[1], floors[key], now)
            for key in sorted(floors, key=lambda k: (k[0], floors[k]))
        }

    def _advance(self, device_id: str, epoch: str, lowest_unacked: int, now: float) -> int:
        self._run(UPSERT_DEVICE, (device_id, now))
        # FOR UPDATE where supported: concurrent ingest workers serialise per device here.
        (current,) = self._run(
            "SELECT epoch FROM devices WHERE device_id=?" + self._lock_row, (device_id,)
        ).fetchone()
        row = self._run(
            "SELECT acked_seq FROM device_epochs WHERE device_id=? AND epoch=?", (device_id, epoch)
        ).fetchone()
        if row is None:
            current = self._new_epoch(device_id, epoch, lowest_unacked, current, now)
        stored_acked = 0 if row is None else int(row[0])
        acked = max(stored_acked, lowest_unacked - 1)  # the device holds nothing below
        while True:  # walk the contiguous run above acked, a page of seqs per query
            seqs = self._run(
                "SELECT seq FROM results WHERE device_id=? AND epoch=? AND seq>? "
                "ORDER BY seq LIMIT 512",
                (device_id, epoch, acked),
            ).fetchall()
            for (seq,) in seqs:
                if seq != acked + 1:
                    break
                acked += 1
            else:
                if len(seqs) == 512:
                    continue
            break
        if acked != stored_acked:
            self._run(
                "UPDATE device_epochs SET acked_seq=? WHERE device_id=? AND epoch=?",
                (acked, device_id, epoch),
            )
        if epoch == current:
            self._run("UPDATE devices SET acked_seq=? WHERE device_id=?", (acked, device_id))
        return acked

    def _new_epoch(
        self, device_id: str, epoch: str, first_seq: int, current: str | None, now: float
    ) -> str | None:
        """Record an epoch seen for the first time; returns the device's current epoch.

        ``first_seq`` is the batch's lowest_unacked_seq: until the fleet acknowledges anything
        of a new epoch, the device stamps every result of it with the epoch's first seq. If
        another epoch of this device holds a seq in [first_seq, highest seq of this epoch],
        the device's counter went back: its outbox was deleted, corrupted or restored from an
        old copy. Both epochs are kept and a ``seq-restart`` event records it. An epoch that
        lies wholly below the others is an older one arriving late: neither an event nor the
        device's current epoch. Otherwise (a reboot) it simply becomes the current epoch.
        """
        self._run(
            "INSERT INTO device_epochs(device_id, epoch, acked_seq, first_seq, first_seen) "
            "VALUES (?,?,0,?,?) ON CONFLICT DO NOTHING",
            (device_id, epoch, first_seq, now),
        )
        (top,) = self._run(
            "SELECT MAX(seq) FROM results WHERE device_id=? AND epoch=?", (device_id, epoch)
        ).fetchone()
        overlapping = self._run(
            "SELECT e.epoch, e.acked_seq FROM device_epochs e WHERE e.device_id=? "
            "AND e.epoch<>? AND e.first_seq<=? AND EXISTS (SELECT 1 FROM results r WHERE "
            "r.device_id=e.device_id AND r.epoch=e.epoch AND r.seq>=?) "
            "ORDER BY e.first_seen DESC, e.epoch LIMIT 1",
            (device_id, epoch, max(first_seq, top or 0), first_seq),
        ).fetchone()
        if overlapping is not None:
            previous, previous_acked = overlapping[0], int(overlapping[1])
            self._record_event(
                device_id, "seq-restart", now, epoch=epoch, previous_epoch=previous,
                previous_acked_seq=previous_acked, start_seq=first_seq,
                detail=f"outbox replaced or rewound (deleted, corrupted or restored): new epoch "
                f"{_short(epoch)} starts at seq {first_seq}; previous epoch {_short(previous)} "
                f"ended at acked seq {previous_acked}. Both are kept.",
                dedupe_key=f"seq-restart:{device_id}:{epoch}",
            )  # fmt: skip
        elif current is not None:
            (current_first,) = self._run(
                "SELECT first_seq FROM device_epochs WHERE device_id=? AND epoch=?",
                (device_id, current),
            ).fetchone() or (None,)
            if current_first is not None and first_seq < int(current_first):
                return current  # an older epoch, late
        self._run("UPDATE devices SET epoch=? WHERE device_id=?", (epoch, device_id))
        return epoch

    def _record_event(
        self, device_id: str, kind: str, now: float, *, detail: str, dedupe_key: str,
        epoch: str | None = None, previous_epoch: str | None = None,
        previous_acked_seq: int | None = None, start_seq: int | None = None,
    ) -> bool:  # fmt: skip
        """Insert a device event unless one with the same dedupe key exists."""
        cur = self._run(
            "INSERT INTO device_events(device_id, at, kind, epoch, previous_epoch, "
            "previous_acked_seq, start_seq, detail, dedupe_key) VALUES (?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT DO NOTHING",
            (device_id, now, kind, epoch, previous_epoch, previous_acked_seq, start_seq,
             detail[:500], dedupe_key),
        )  # fmt: skip
        return bool(cur.rowcount == 1)


def _key(msg: ResultMessage) -> tuple[str, str, int]:
    return msg.device_id, msg.epoch, msg.seq


def _short(epoch: str) -> str:
    """An epoch as events show it: long enough to tell apart, short enough to read."""
    return repr(epoch[:12]) if epoch else "'' (before epochs)"
