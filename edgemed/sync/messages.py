"""What the publisher puts on the wire from its outbox: the builder that stamps an encoded
result with its seq inside the outbox commit, and the results-topic messages that join
consecutive rows (wire.join_results)."""

from __future__ import annotations

from collections.abc import Callable

from ..wire import BATCH_TARGET_BYTES, stamp_result
from .outbox import OutboxRow

__all__ = ["batch_rows", "is_partial", "stamper"]


def batch_rows(rows: list[OutboxRow], max_results: int) -> list[list[OutboxRow]]:
    """Consecutive rows grouped into results-topic messages (joined by wire.join_results), each
    at most ``max_results`` results and, unless one row alone is larger, BATCH_TARGET_BYTES."""
    groups: list[list[OutboxRow]] = []
    size = 0
    for row in rows:
        if (
            not groups
            or len(groups[-1]) >= max_results
            or size + len(row.payload) > BATCH_TARGET_BYTES
        ):
            groups.append([])
            size = 0
        groups[-1].append(row)
        size += len(row.payload) + 1
    return groups


def is_partial(group: list[OutboxRow], max_results: int) -> bool:
    """A message that another row would still join (fewer results than a full one)."""
    return len(group) < max_results and sum(len(r.payload) + 1 for r in group) < BATCH_TARGET_BYTES


def stamper(unstamped: bytes, epoch: str) -> Callable[[int, str, int], bytes]:
    """The outbox's builder for one encoded result: adds the seq fields inside the commit."""
    return lambda seq, boot_id, low: stamp_result(
        unstamped, seq=seq, boot_id=boot_id, lowest_unacked_seq=low, epoch=epoch
    )
