"""What the publisher puts on the wire from its outbox: the builder that stamps an encoded
result with its seq inside the outbox commit, and the results-topic messages that join
consecutive rows (wire.join_results)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..wire import BATCH_TARGET_BYTES, join_results, stamp_result
from .outbox import OutboxRow

__all__ = ["batch_messages", "stamper"]


def batch_messages(rows: list[OutboxRow], max_results: int) -> Iterator[bytes]:
    """Consecutive rows joined into results-topic messages (wire.join_results), each at most
    ``max_results`` results and, unless one row alone is larger, BATCH_TARGET_BYTES."""
    batch: list[bytes] = []
    size = 0
    for row in rows:
        if batch and (len(batch) >= max_results or size + len(row.payload) > BATCH_TARGET_BYTES):
            yield join_results(batch)
            batch, size = [], 0
        batch.append(row.payload)
        size += len(row.payload) + 1
    if batch:
        yield join_results(batch)


def stamper(unstamped: bytes, epoch: str) -> Callable[[int, str, int], bytes]:
    """The outbox's builder for one encoded result: adds the seq fields inside the commit."""
    return lambda seq, boot_id, low: stamp_result(
        unstamped, seq=seq, boot_id=boot_id, lowest_unacked_seq=low, epoch=epoch
    )
