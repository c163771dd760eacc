"""When the publisher sends and deletes (sync/pacing.py), on a real outbox, without a broker."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edgemed.config import OutboxConfig, SyncConfig
from edgemed.sync import Outbox
from edgemed.sync.pacing import Pacing


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(OutboxConfig(path=tmp_path / "o.db", device_id="bed-1"))


def _store(outbox: Outbox, count: int) -> list[int]:
    return outbox.put_many([lambda seq, boot, low: b'{"seq":%d}' % seq] * count, stamps_epoch=True)


def test_a_partial_message_waits_for_the_one_in_flight_and_a_full_one_never_waits(
    outbox: Outbox,
) -> None:
    sync = SyncConfig(max_batch_results=4, partial_hold_s=0.02)
    pacing = Pacing(outbox, sync)
    _store(outbox, 2)
    first = pacing.unheld(outbox.pending(100), now=10.0, in_flight=set())
    assert [r.seq for r in first] == [1, 2]  # nothing in flight: sent at once
    in_flight = {1, 2}
    _store(outbox, 3)  # 3, 4, 5: a partial message of 3
    assert pacing.unheld(outbox.pending(100, after=2), now=10.005, in_flight=in_flight) == []
    assert not pacing.wake_needed(5)  # held rows that still make no full message
    assert pacing.wake_needed(6)  # with seq 6 they fill a message of 4
    _store(outbox, 3)  # 3..8: one full message of 4 goes, the partial 7, 8 still waits
    sent = pacing.unheld(outbox.pending(100, after=2), now=10.006, in_flight=in_flight)
    assert [r.seq for r in sent] == [3, 4, 5, 6]
    assert pacing.wake_at() == pytest.approx(10.02)  # the sender looks again by then
    # The fleet's ack of 1..2 (in flight no more): the held rows leave now.
    sent = pacing.unheld(outbox.pending(100, after=6), now=10.007, in_flight={3, 4, 5, 6})
    assert [r.seq for r in sent] == [7, 8]
    # No ack, but the hold ran out: they leave anyway (a lost message must not hold them).
    _store(outbox, 1)
    assert pacing.unheld(outbox.pending(100, after=8), now=10.010, in_flight={7, 8}) == []
    sent = pacing.unheld(outbox.pending(100, after=8), now=10.0271, in_flight={7, 8})
    assert [r.seq for r in sent] == [9]
    pacing.reset()  # a reconnect: nothing is in flight
    _store(outbox, 1)
    assert [r.seq for r in pacing.unheld(outbox.pending(100, after=9), 10.03, {9})] == [10]


def test_a_hold_of_zero_sends_every_partial_message_at_once(outbox: Outbox) -> None:
    pacing = Pacing(outbox, SyncConfig(partial_hold_s=0.0))
    _store(outbox, 1)
    assert len(pacing.unheld(outbox.pending(100), now=1.0, in_flight=set())) == 1
    _store(outbox, 1)
    assert len(pacing.unheld(outbox.pending(100, after=1), now=1.0, in_flight={1})) == 1


def test_acknowledged_rows_are_deleted_in_batches_never_lost_and_before_a_replay(
    outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    monkeypatch.setattr("edgemed.sync.pacing.time.monotonic", lambda: now[0])
    pacing = Pacing(outbox, SyncConfig(ack_delete_rows=10, ack_delete_s=0.05))
    _store(outbox, 30)
    assert not pacing.acked(4, outbox.epoch, rows=4)  # 4 < 10 rows: later
    assert not pacing.delete_due() and outbox.depth == 30
    assert pacing.wake_at() == pytest.approx(100.05)
    now[0] += 0.06
    assert pacing.delete_due() and outbox.depth == 26  # the time ran out
    assert pacing.acked(20, outbox.epoch, rows=16)  # 16 >= 10: due at once
    assert pacing.delete_due() and outbox.depth == 10
    assert not pacing.acked(25, outbox.epoch, rows=5)
    assert pacing.delete_due(force=True) and outbox.depth == 5  # a replay or stop: now
    assert not pacing.delete_due(force=True)  # nothing left to delete


def test_an_ack_the_outbox_refuses_leaves_its_rows_and_says_why(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    pacing = Pacing(outbox, SyncConfig())
    _store(outbox, 3)
    pacing.acked(99, None, rows=3)  # a seq this outbox never assigned
    with caplog.at_level(logging.ERROR):
        assert pacing.delete_due(force=True)
    assert outbox.depth == 3 and "never assigned" in caplog.text


def test_a_hold_that_ended_leaves_no_mark_that_would_skip_a_wake_up(outbox: Outbox) -> None:
    pacing = Pacing(outbox, SyncConfig(max_batch_results=4))
    _store(outbox, 1)
    pacing.unheld(outbox.pending(100), now=1.0, in_flight=set())
    _store(outbox, 1)
    assert pacing.unheld(outbox.pending(100, after=1), now=1.001, in_flight={1}) == []
    assert not pacing.wake_needed(2)
    _store(outbox, 3)  # 2..5: a full message goes, nothing is held any more
    assert len(pacing.unheld(outbox.pending(100, after=1), now=1.002, in_flight={1})) == 4
    assert pacing.wake_needed(6)  # a new row wakes the sender at once
    replays = pacing.replays
    pacing.reset()
    assert pacing.replays == replays + 1
