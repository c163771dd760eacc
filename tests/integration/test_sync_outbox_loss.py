"""A device whose outbox is deleted or corrupted mid-stream, through a real mosquitto: after the
restart nothing is dead-lettered, nothing after the loss is lost, and the fleet records it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import until

import edgemed
from edgemed.config import BrokerConfig, OutboxConfig, SyncConfig
from edgemed.fleet import Ingest, SQLiteStore
from edgemed.sync import Outbox, Publisher

pytestmark = pytest.mark.broker
FAST = SyncConfig(resend_initial_s=0.3, resend_max_s=1.0, reconnect_min_s=0.1, reconnect_max_s=0.5)


def _publish(outbox: Outbox, broker: BrokerConfig, results: list[edgemed.Result]) -> list[int]:
    with Publisher(outbox, broker, FAST) as pub:
        seqs = [pub.submit(r) for r in results]
        assert pub.wait_drained(30), outbox.stats()
    outbox.close()
    return seqs


@pytest.mark.parametrize("loss", ["deleted", "corrupted"])
def test_outbox_lost_mid_stream_loses_nothing_after_it(
    tmp_path: Path, mosquitto: object, store: SQLiteStore, encoder: edgemed.Pipeline, loss: str
) -> None:
    broker = BrokerConfig(port=mosquitto.port)  # type: ignore[attr-defined]
    cfg = OutboxConfig(path=tmp_path / "bed-1.db", device_id="bed-1")
    first = [encoder(f"before the loss {i}") for i in range(12)]
    after = [encoder(f"after the loss {i}") for i in range(8)]
    with Ingest(store, broker, sync=FAST) as ingest:
        assert ingest.ready.wait(10)
        outbox = Outbox(cfg)
        old_epoch = outbox.epoch
        assert _publish(outbox, broker, first) == list(range(1, 13))
        if loss == "deleted":
            for suffix in ("", "-wal", "-shm"):
                cfg.path.with_name(cfg.path.name + suffix).unlink(missing_ok=True)
        else:
            cfg.path.write_bytes(b"\x00garbage" * 512)
        outbox = Outbox(cfg)  # the device restarts: seqs begin again at 1, in a new epoch
        assert (outbox.recovered_from is None) == (loss == "deleted")
        assert _publish(outbox, broker, after) == list(range(1, 9))
        expected = 1 if loss == "deleted" else 2  # + the birth's report of the moved file
        assert until(lambda: len(store.device_events("bed-1")) == expected, 5)
    assert ingest.counts["conflict"] == 0 and ingest.counts["dead_letter"] == 0
    assert store.dead_letters() == [] and store.alerts(rule="seq-conflict") == []
    held = {(r["epoch"], r["seq"]) for r in store.results(limit=100)}
    assert held == {(old_epoch, s) for s in range(1, 13)} | {(outbox.epoch, s) for s in range(1, 9)}
    kinds = {e["kind"] for e in store.device_events("bed-1")}
    assert kinds == (
        {"seq-restart"} if loss == "deleted" else {"seq-restart", "outbox-moved-aside"}
    )
    restart = next(e for e in store.device_events("bed-1") if e["kind"] == "seq-restart")
    assert (restart["previous_epoch"], restart["previous_acked_seq"]) == (old_epoch, 12)
    assert (restart["epoch"], restart["start_seq"]) == (outbox.epoch, 1)
    device = store.device("bed-1")
    assert device is not None and (device["epoch"], device["acked_seq"]) == (outbox.epoch, 8)
