"""Publisher resend timing, without a broker: the fleet's ack rate and the resend deadlines."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

import edgemed.sync.mqtt as sync_mqtt
from edgemed.config import BrokerConfig, OutboxConfig, SyncConfig
from edgemed.sync import Outbox, Publisher


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(sync_mqtt, "time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


def _publisher(tmp_path: Path, sync: SyncConfig | None = None) -> Publisher:
    outbox = Outbox(OutboxConfig(path=tmp_path / "o.db", device_id="bed-1"))
    return Publisher(outbox, BrokerConfig(port=1), sync)  # never started: no network


def test_ack_rate_is_not_fooled_by_bursts(tmp_path: Path, clock: list[float]) -> None:
    """A fleet committing 30 results/s whose acks arrive in bursts (a filled gap acknowledges
    many at once): a moving average of per-ack rates read hundreds per second here, and resend
    timers then duplicated most of the traffic (the broker-kill soak)."""
    pub = _publisher(tmp_path)
    seq = 0
    for _ in range(8):
        clock[0] += 3.99
        seq += 100
        pub._ack_rate.update(seq, clock[0])
        clock[0] += 0.01  # the rest of the burst
        seq += 20
        pub._ack_rate.update(seq, clock[0])
    assert pub._ack_rate.rate is not None and 25 <= pub._ack_rate.rate <= 35
    pub._ack_rate.update(seq, clock[0])  # a repeated ack is no progress
    assert 25 <= pub._ack_rate.rate <= 35


def test_resend_wait_follows_the_queue_ahead_but_never_exceeds_the_cap(
    tmp_path: Path, clock: list[float]
) -> None:
    sync = SyncConfig(resend_initial_s=1.0, resend_max_s=20.0)
    pub = _publisher(tmp_path, sync)
    pub._ack_rate.rate = 100.0
    for seq in range(1, 201):  # 200 in flight ahead of a fleet acking 100/s: wait ~2 x 2 s
        pub._schedule_resend(seq, clock[0])
    last = pub._inflight[200].deadline - clock[0]
    assert 0.8 * 2 * 199 / 100 <= last <= 1.2 * 2 * 199 / 100
    pub._ack_rate.rate = 0.01  # acks stalled behind a lost result: the wait must stay bounded
    pub._schedule_resend(1, clock[0])
    assert pub._inflight[1].deadline - clock[0] <= 1.2 * sync.resend_max_s
    # A lower bound, never later than a real deadline (a later one would miss a resend). It may
    # be earlier: moving seq 1's deadline later leaves its old one as the hint, which costs one
    # extra scan of the window, never a late resend.
    assert pub._next_deadline <= min(e.deadline for e in pub._inflight.values())
