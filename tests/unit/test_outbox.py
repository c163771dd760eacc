"""The durable outbox: seq allocation, ack deletion, bounds, restarts, integrity."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import edgemed
from edgemed.config import OutboxConfig
from edgemed.errors import SyncError
from edgemed.sync import Outbox


def _payload(seq: int, boot: str, low: int, size: int = 100) -> bytes:
    return f"{seq}:{low}:".encode().ljust(size, b".")


def _put(outbox: Outbox, size: int = 100) -> int:
    return outbox.put(lambda seq, boot, low: _payload(seq, boot, low, size))


def test_seq_is_monotonic_and_never_reused_across_restarts(tmp_path: Path) -> None:
    cfg = OutboxConfig(path=tmp_path / "o.db", device_id="bed-1")
    ob = Outbox(cfg)
    assert [_put(ob) for _ in range(5)] == [1, 2, 3, 4, 5]
    assert ob.ack_through(5) == 5 and ob.stats().depth == 0
    boot1 = ob.boot_id
    ob.close()
    ob = Outbox(cfg)  # "reboot"
    assert ob.boot_id != boot1
    assert _put(ob) == 6  # not 1: deleted seqs are never handed out again
    assert ob.stats().last_ack_seq == 5


def test_payload_sees_its_seq_and_lowest_unacked(tmp_path: Path) -> None:
    ob = Outbox(OutboxConfig(path=tmp_path / "o.db", device_id="bed-1"))
    for _ in range(4):
        _put(ob)
    ob.ack_through(2)
    _put(ob)
    rows = ob.pending(10)
    assert [r.seq for r in rows] == [3, 4, 5]
    assert rows[-1].payload.startswith(b"5:3:")  # lowest unacked at put time was 3


def test_ack_deletes_only_acknowledged_rows(tmp_path: Path) -> None:
    ob = Outbox(OutboxConfig(path=tmp_path / "o.db", device_id="bed-1"))
    for _ in range(6):
        _put(ob)
    assert ob.ack_through(3) == 3
    assert [r.seq for r in ob.pending(10)] == [4, 5, 6]
    assert ob.ack_through(3) == 0  # duplicate ack is harmless
    with pytest.raises(edgemed.SyncError, match="never assigned"):
        ob.ack_through(99)
    assert [r.seq for r in ob.pending(10)] == [4, 5, 6]


def test_full_outbox_refuses_without_touching_accepted_rows(tmp_path: Path) -> None:
    ob = Outbox(OutboxConfig(path=tmp_path / "o.db", device_id="bed-1", max_bytes=1000))
    for _ in range(10):
        _put(ob)
    before = ob.pending(100)
    with pytest.raises(edgemed.OutboxFullError, match="full"):
        _put(ob)
    assert ob.pending(100) == before and ob.stats().refused == 1
    ob.ack_through(1)
    assert _put(ob) == 11  # room again; the refused result consumed no seq


def test_age_bound(tmp_path: Path) -> None:
    ob = Outbox(OutboxConfig(path=tmp_path / "o.db", device_id="bed-1", max_age_s=0.0))
    _put(ob)
    with pytest.raises(edgemed.OutboxFullError, match="unacknowledged"):
        _put(ob)


def test_failed_payload_build_rolls_back(tmp_path: Path) -> None:
    ob = Outbox(OutboxConfig(path=tmp_path / "o.db", device_id="bed-1"))
    _put(ob)

    def boom(seq: int, boot: str, low: int) -> bytes:
        raise edgemed.InputError("cannot encode")

    with pytest.raises(edgemed.InputError):
        ob.put(boom)
    assert [r.seq for r in ob.pending(10)] == [1]
    assert _put(ob) == 2


def test_outbox_belongs_to_one_device(tmp_path: Path) -> None:
    Outbox(OutboxConfig(path=tmp_path / "o.db", device_id="bed-1")).close()
    with pytest.raises(edgemed.SyncError, match="belongs to device"):
        Outbox(OutboxConfig(path=tmp_path / "o.db", device_id="bed-2"))


def test_wal_mode_and_integrity(tmp_path: Path) -> None:
    ob = Outbox(OutboxConfig(path=tmp_path / "o.db", device_id="bed-1"))
    for _ in range(50):
        _put(ob)
    db = sqlite3.connect(tmp_path / "o.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_concurrent_puts_are_group_committed_with_unique_seqs(tmp_path: Path) -> None:
    import threading
    import time

    ob = Outbox(OutboxConfig(path=tmp_path / "o.db", device_id="bed-1"))
    seqs: list[int] = []
    failures: list[Exception] = []
    lock = threading.Lock()

    def slow_build(seq: int, boot: str, low: int) -> bytes:
        time.sleep(0.001)  # hold the commit open so other threads queue behind it
        return f"{seq}:".encode()

    def failing_build(seq: int, boot: str, low: int) -> bytes:
        raise ValueError("bad result")

    def producer(k: int) -> None:
        for i in range(50):
            if k == 0 and i % 10 == 0:
                try:
                    ob.put(failing_build)
                except ValueError as exc:  # only the caller whose builder failed sees it
                    failures.append(exc)
            seq = ob.put(slow_build)
            with lock:
                seqs.append(seq)

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(failures) == 5
    assert sorted(seqs) == list(range(1, 401))  # no gaps, no reuse, failed builders took no seq
    rows = ob.pending(1000)
    assert all(r.payload == f"{r.seq}:".encode() for r in rows)  # payload seq == row seq


def test_sync_status_reads_a_live_outbox_read_only(tmp_path: Path) -> None:
    from edgemed.sync.outbox import read_status

    ob = Outbox(OutboxConfig(path=tmp_path / "o.db", device_id="bed-1", max_bytes=250))
    _put(ob)
    _put(ob)
    ob.ack_through(1)
    with pytest.raises(edgemed.OutboxFullError):
        _put(ob, size=200)
    ob.set_link_state("online")
    device, st = read_status(tmp_path / "o.db")
    assert device == "bed-1"
    assert (st.depth, st.next_seq, st.last_ack_seq, st.refused_total) == (1, 3, 1, 1)
    assert st.link_state == "online" and st.last_ack_at is not None
    with pytest.raises(edgemed.SyncError, match="no outbox"):
        read_status(tmp_path / "missing.db")


def test_acks_do_not_leave_the_connection_in_relaxed_sync_mode(tmp_path: Path) -> None:
    ob = Outbox(OutboxConfig(path=tmp_path / "o.db", device_id="bed-1"))
    _put(ob)
    ob.ack_through(1)
    with pytest.raises(edgemed.SyncError):
        ob.ack_through(5)  # the failing path restores it too
    assert ob._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL, for the next put
    assert ob.depth == 0 and ob.stats().depth == 0


def test_pending_from_the_memory_cache_equals_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender reads fresh rows from memory; every answer must equal what SQLite holds."""
    import edgemed.sync.outbox as outbox_module

    monkeypatch.setattr(outbox_module, "FRESH_ROWS", 16)  # force evictions
    path = tmp_path / "o.db"
    ob = Outbox(OutboxConfig(path=path, device_id="dev-1"))
    for i in range(40):
        ob.put(lambda seq, boot, low, i=i: f"payload {i} seq {seq}".encode())
    ob.ack_through(10)
    cached = {
        (after, limit): ob.pending(limit, after=after)
        for after in range(0, 42, 3)
        for limit in (1, 5, 64)
    }
    assert cached[(30, 64)][0].seq == 31 and len(cached[(30, 64)]) == 10
    ob.close()
    reopened = Outbox(OutboxConfig(path=path, device_id="dev-1"))  # empty cache: SQLite only
    for (after, limit), rows in cached.items():
        assert rows == reopened.pending(limit, after=after), (after, limit)
    reopened.close()


def test_a_commit_that_raises_releases_every_waiter(tmp_path: Path) -> None:
    """A BaseException during a group commit (KeyboardInterrupt lands in whichever thread is
    committing; ordinary exceptions go back to their own caller only) aborts the whole group:
    it propagates in the committing thread, every other member gets a SyncError instead of
    waiting forever, no seq of the group is used, and the outbox keeps working."""
    import threading
    import time

    class Abort(BaseException):
        pass

    ob = Outbox(OutboxConfig(path=tmp_path / "o.db", device_id="bed-1"))
    entered, release = threading.Event(), threading.Event()

    def blocking(seq: int, boot: str, low: int) -> bytes:
        entered.set()
        release.wait(5)
        return b"first"

    def abort(seq: int, boot: str, low: int) -> bytes:
        raise Abort

    outcomes: dict[str, object] = {}

    def put(name: str, build: object) -> None:
        try:
            outcomes[name] = ob.put(build)  # type: ignore[arg-type]
        except (Abort, SyncError) as exc:
            outcomes[name] = exc

    def start(name: str, build: object, queued: int) -> threading.Thread:
        thread = threading.Thread(target=put, args=(name, build))
        thread.start()
        deadline = time.monotonic() + 5
        while len(ob._queue) < queued and time.monotonic() < deadline:
            time.sleep(0.001)
        return thread

    threads = [threading.Thread(target=put, args=("leader", blocking))]
    threads[0].start()
    assert entered.wait(5)  # the leader's group is committing: the rest queue behind it
    # queued: f0 (leads the next group), f1, abort, f2: f0 and f1 get seqs before the abort
    threads += [start(f"f{i}", lambda s, b, lo: b"x", i + 1) for i in range(2)]
    threads.append(start("abort", abort, 3))
    threads.append(start("f2", lambda s, b, lo: b"x", 4))
    release.set()
    for t in threads:
        t.join(5)
        assert not t.is_alive()
    assert outcomes["leader"] == 1 and isinstance(outcomes["f0"], Abort)  # f0 was committing
    assert all(isinstance(outcomes[k], SyncError) for k in ("f1", "abort", "f2"))
    assert ob.depth == 1 and ob.put(lambda s, b, lo: b"y") == 2  # no seq of the group is used
    assert [r.seq for r in ob.pending(10)] == [1, 2]
