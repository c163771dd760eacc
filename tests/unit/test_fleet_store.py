"""Fleet store: idempotent inserts, conflict alarms, contiguous ack high-water mark."""

from __future__ import annotations

from pathlib import Path

from edgemed.fleet import SQLiteStore
from edgemed.wire import ResultMessage


def _msg(seq: int, *, low: int = 1, sha: str = "a", device: str = "bed-1") -> ResultMessage:
    return ResultMessage(
        device_id=device,
        seq=seq,
        boot_id="b",
        result_id=f"r{seq}{sha}",
        lowest_unacked_seq=low,
        created_at=1.0,
        model_id="m",
        model_version="1",
        kind="text-embedding",
        payload_sha256=sha * 64,
        body={"seq": seq},
        raw=f'{{"seq": {seq}}}',
    )


def test_duplicates_absorbed_and_conflicts_alarmed(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "f.db")
    assert store.insert_result(_msg(1)) == ("stored", 1)
    assert store.insert_result(_msg(1)) == ("duplicate", 1)
    assert store.insert_result(_msg(1, sha="b")) == ("conflict", 1)
    assert store.count_results() == 1
    assert store.results()[0]["payload"] == {"seq": 1}  # the first payload is never overwritten
    assert [a["kind"] for a in store.alarms()] == ["seq-conflict"]
    assert "seq-conflict" in store.dead_letters()[0]["reason"]


def test_ack_is_highest_contiguous_seq(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "f.db")
    assert store.insert_result(_msg(2))[1] == 0  # seq 1 missing: nothing contiguous yet
    assert store.insert_result(_msg(3))[1] == 0
    assert store.insert_result(_msg(1))[1] == 3  # gap filled
    assert store.insert_result(_msg(5))[1] == 3
    assert store.insert_result(_msg(1, device="bed-2"))[1] == 1  # per device


def test_lowest_unacked_skips_seqs_acknowledged_earlier(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "f.db")
    # The device says everything below 40 was acknowledged (by a previous fleet database).
    assert store.insert_result(_msg(41, low=40))[1] == 39
    assert store.insert_result(_msg(40, low=40))[1] == 41
