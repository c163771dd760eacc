"""One result waiting in the outbox's group commit (:mod:`edgemed.sync.outbox`): its builder,
and the seq or error the commit hands back to the thread that waits for it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["PayloadBuilder", "PutRequest"]

# (seq, boot_id, lowest_unacked_seq) -> payload. The epoch is fixed for an open outbox: a
# builder that stamps it reads ``Outbox.epoch``.
PayloadBuilder = Callable[[int, str, int], bytes]


def _held_lock() -> threading.Lock:
    """A lock its waiter blocks on until another thread releases it."""
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass(eq=False)
class PutRequest:
    build: PayloadBuilder
    epoch: str  # the row's epoch: Outbox.epoch if the payload carries it, else ""
    seq: int | None = None
    payload: bytes | None = None
    error: BaseException | None = field(default=None)
    done: bool = False
    wake: threading.Lock = field(default_factory=_held_lock)
    after: PutRequest | None = None  # put_many: stored only if this one was

    def outcome(self) -> int:
        if self.error is not None:
            raise self.error
        assert self.seq is not None
        return self.seq
