"""Fleet store: idempotent inserts, conflict alarms, contiguous ack high-water mark."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgemed.fleet import SQLiteStore, SqlStore
from edgemed.wire import ResultMessage

PG_DSN = os.environ.get("EDGEMED_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """The same semantics on both backends; PostgreSQL gets a throwaway schema per test."""
    if request.param == "sqlite":
        s: SqlStore = SQLiteStore(tmp_path / "f.db")
        yield s
        s.close()
        return
    import psycopg

    from edgemed.fleet.postgres import PostgresStore

    schema = f"edgemed_test_{uuid.uuid4().hex[:12]}"
    s = PostgresStore(PG_DSN, schema=schema)
    yield s
    s.close()
    with psycopg.connect(PG_DSN, autocommit=True) as db:
        db.execute(f"DROP SCHEMA {schema} CASCADE")


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


def test_duplicates_absorbed_and_conflicts_alarmed(store: SqlStore) -> None:
    assert store.insert_result(_msg(1)) == ("stored", 1)
    assert store.insert_result(_msg(1)) == ("duplicate", 1)
    assert store.insert_result(_msg(1, sha="b")) == ("conflict", 1)
    assert store.count_results() == 1
    assert store.results()[0]["payload"] == {"seq": 1}  # the first payload is never overwritten
    assert [a["kind"] for a in store.alarms()] == ["seq-conflict"]
    assert "seq-conflict" in store.dead_letters()[0]["reason"]


def test_ack_is_highest_contiguous_seq(store: SqlStore) -> None:
    assert store.insert_result(_msg(2))[1] == 0  # seq 1 missing: nothing contiguous yet
    assert store.insert_result(_msg(3))[1] == 0
    assert store.insert_result(_msg(1))[1] == 3  # gap filled
    assert store.insert_result(_msg(5))[1] == 3
    assert store.insert_result(_msg(1, device="bed-2"))[1] == 1  # per device


def test_lowest_unacked_skips_seqs_acknowledged_earlier(store: SqlStore) -> None:
    # The device says everything below 40 was acknowledged (by a previous fleet database).
    assert store.insert_result(_msg(41, low=40))[1] == 39
    assert store.insert_result(_msg(40, low=40))[1] == 41


def test_status_devices_and_dead_letters(store: SqlStore) -> None:
    store.update_status(
        "bed-1",
        {"state": "online", "boot_id": "b1", "connection": 3, "models": ["m@1"], "outbox_depth": 4},
    )
    store.update_status("bed-1", {"state": "offline", "boot_id": "b1"})  # LWT: fewer fields
    (dev,) = store.devices()
    assert (dev["state"], dev["connection"], dev["models"], dev["outbox_depth"]) == (
        "offline",
        3,
        ["m@1"],
        4,
    )
    store.dead_letter("edgemed/v1/x/results", "not JSON", b"\xff\x00")
    assert [d["reason"] for d in store.dead_letters()] == ["not JSON"]


def test_batch_insert_is_one_transaction(store: SqlStore) -> None:
    outcomes, acked = store.insert_results([_msg(1), _msg(2), _msg(2), _msg(1, device="bed-2")])
    assert outcomes == ["stored", "stored", "duplicate", "stored"]
    assert acked == {"bed-1": 2, "bed-2": 1}
