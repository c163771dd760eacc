"""The durable outbox: seq allocation, ack deletion, bounds, restarts, integrity."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import edgemed
from edgemed.config import OutboxConfig
from edgemed.errors import OutboxFullError, SyncError
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


# -- epochs and integrity -------------------------------------------------------------------
def _stamped(outbox: Outbox) -> int:
    """A put whose payload carries the epoch, as the Publisher's does."""
    return outbox.put(lambda seq, boot, low: _payload(seq, boot, low), stamps_epoch=True)


def _epochs(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [r[0] for r in db.execute("SELECT epoch FROM outbox ORDER BY seq")]
    finally:
        db.close()


def test_every_open_starts_an_epoch_and_rows_keep_theirs(tmp_path: Path) -> None:
    cfg = OutboxConfig(path=tmp_path / "o.db", device_id="bed-1")
    ob = Outbox(cfg)
    first = ob.epoch
    assert len(first) == 32 and ob.epoch_start == 1
    assert [_stamped(ob) for _ in range(3)] == [1, 2, 3]
    ob.close()
    ob = Outbox(cfg)
    assert ob.epoch != first and ob.epoch_start == 4 and ob.stats().epoch == ob.epoch
    assert _stamped(ob) == 4  # seqs continue in the file; the epoch is new
    assert _epochs(cfg.path) == [first] * 3 + [ob.epoch]
    # This epoch's lowest unacked seq is its own first seq, not the older epoch's rows.
    assert ob.pending(10)[-1].payload.startswith(b"4:4:")


def test_a_deleted_outbox_comes_back_in_a_new_epoch_at_seq_1(tmp_path: Path) -> None:
    cfg = OutboxConfig(path=tmp_path / "o.db", device_id="bed-1")
    ob = Outbox(cfg)
    for _ in range(5):
        _stamped(ob)
    old = ob.epoch
    ob.close()
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"o.db{suffix}").unlink(missing_ok=True)
    ob = Outbox(cfg)
    assert ob.epoch != old and _stamped(ob) == 1 and ob.recovered_from is None


def test_acks_apply_to_their_epoch_only(tmp_path: Path) -> None:
    cfg = OutboxConfig(path=tmp_path / "o.db", device_id="bed-1")
    ob = Outbox(cfg)
    old = ob.epoch
    for _ in range(3):
        _stamped(ob)  # 1-3 in the old epoch
    ob.close()
    ob = Outbox(cfg)
    for _ in range(3):
        _stamped(ob)  # 4-6 in the new one
    # A stale ack (an epoch this file does not hold, e.g. of a deleted outbox) deletes nothing,
    # even for seqs far above what this outbox assigned.
    assert ob.ack_through(100, "0" * 32) == 0 and ob.ack_range(100, "0" * 32) == range(0)
    # An ack of the old epoch deletes only its rows, whatever seq it names.
    assert ob.ack_range(50, old) == range(1, 4)
    assert ob.ack_through(50, old) == 3
    assert [r.seq for r in ob.pending(10)] == [4, 5, 6]
    assert ob.stats().last_ack_seq == 0  # the current epoch has no ack yet
    assert ob.ack_through(5, ob.epoch) == 2 and ob.depth == 1
    with pytest.raises(edgemed.SyncError, match="never assigned"):
        ob.ack_through(7, ob.epoch)
    assert ob.ack_range(9, ob.epoch) == range(4, 10)


def test_an_outbox_from_before_epochs_keeps_its_rows_under_the_empty_epoch(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, boot_id TEXT NOT NULL,"
        " created_at REAL NOT NULL, bytes INTEGER NOT NULL, payload BLOB NOT NULL);"
        "INSERT INTO meta VALUES ('device_id', 'bed-1'), ('next_seq', '3'),"
        " ('last_ack_seq', '0');"
        f"INSERT INTO outbox VALUES (1, 'b', {time.time()}, 1, x'31'),"
        f" (2, 'b', {time.time()}, 1, x'32');"
    )
    db.close()
    ob = Outbox(OutboxConfig(path=path, device_id="bed-1"))
    assert _stamped(ob) == 3 and _put(ob) == 4  # a builder that stamps no epoch: ""
    assert _epochs(path) == ["", "", ob.epoch, ""]
    # Its lowest unacked seq counts the "" rows only, as the fleet does.
    assert ob.pending(10)[-1].payload.startswith(b"4:1:")
    assert ob.ack_through(2, "") == 2  # the fleet files epoch-less payloads under ""
    assert [r.seq for r in ob.pending(10)] == [3, 4]
    assert ob.ack_through(3, ob.epoch) == 1 and ob.ack_through(3, "") == 0
    ob.ack_through(4)  # an ack from a fleet older than epochs: seqs across the device
    assert ob.depth == 0


def _real_outbox(path: Path, rows: int = 200) -> None:
    ob = Outbox(OutboxConfig(path=path, device_id="bed-1"))
    for _ in range(rows):
        _put(ob, size=1000)
    ob._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
    ob.close()


def _random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def _truncated(path: Path) -> None:
    _real_outbox(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _page_corrupted(path: Path) -> None:
    _real_outbox(path)
    data = bytearray(path.read_bytes())
    page = 4096
    for n in range(2, len(data) // page):  # scribble over the b-tree pages, header intact
        data[n * page + 8 : n * page + 64] = os.urandom(56)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_random_bytes, _truncated, _page_corrupted])
def test_a_corrupted_outbox_is_moved_aside_and_a_new_one_started(
    tmp_path: Path, damage: Callable[[Path], None], caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "o.db"
    damage(path)
    damaged = path.read_bytes()
    with caplog.at_level(logging.ERROR, logger="edgemed.sync.outbox"):
        ob = Outbox(OutboxConfig(path=path, device_id="bed-1"))
    moved = ob.recovered_from
    assert moved is not None and moved.parent == tmp_path
    assert moved.name.startswith("o.db.corrupt-") and moved.read_bytes() == damaged  # kept
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert str(moved) in record.getMessage() and "corrupted" in record.getMessage()
    assert _put(ob) == 1 and ob.depth == 1  # a working outbox, in a new epoch
    assert ob.stats().recovered_from == moved.name == ob.moved_aside
    ob.close()
    again = Outbox(OutboxConfig(path=path, device_id="bed-1"))  # the new file is sound
    assert again.recovered_from is None and again.moved_aside == moved.name
    assert [r.seq for r in again.pending(10)] == [1]


def test_a_rewound_next_seq_is_corruption_not_reuse(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    ob = Outbox(OutboxConfig(path=path, device_id="bed-1"))
    for _ in range(3):
        _put(ob)
    ob._db.execute("UPDATE meta SET value='2' WHERE key='next_seq'")
    ob.close()
    ob = Outbox(OutboxConfig(path=path, device_id="bed-1"))
    assert ob.recovered_from is not None and _put(ob) == 1


def test_put_many_stores_in_order_in_one_commit_beside_concurrent_puts(tmp_path: Path) -> None:
    import threading

    ob = Outbox(OutboxConfig(path=tmp_path / "o.db", device_id="bed-1"))
    commits: list[int] = []
    commit_group = ob._commit_group

    def counting(batch: list[object]) -> None:
        commits.append(len(batch))
        commit_group(batch)  # type: ignore[arg-type]

    ob._commit_group = counting  # type: ignore[method-assign]
    assert ob.put_many([]) == []
    assert ob.put_many([lambda s, b, lo: _payload(s, b, lo)] * 40) == list(range(1, 41))
    assert commits == [40]  # one transaction, one fsync
    many: list[list[int]] = []
    single: list[int] = []

    def batches() -> None:
        for _ in range(20):
            many.append(ob.put_many([lambda s, b, lo: _payload(s, b, lo)] * 10))

    def singles() -> None:
        for _ in range(100):
            single.append(_put(ob))

    threads = [threading.Thread(target=batches), threading.Thread(target=singles)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seqs in many:  # one caller's results stay together and in order
        assert seqs == list(range(seqs[0], seqs[0] + 10))
    assert sorted(single + [s for seqs in many for s in seqs]) == list(range(41, 341))
    assert all(r.payload.startswith(f"{r.seq}:".encode()) for r in ob.pending(1000))


def test_put_many_stores_a_prefix_and_says_which(tmp_path: Path) -> None:
    ob = Outbox(OutboxConfig(path=tmp_path / "o.db", device_id="bed-1", max_bytes=1000))
    _put(ob, size=500)

    def sized(size: int) -> Callable[[int, str, int], bytes]:
        return lambda s, b, lo: _payload(s, b, lo, size)

    # The third does not fit; the fourth would, but what is stored must be a prefix.
    with pytest.raises(OutboxFullError) as refused:
        ob.put_many([sized(100), sized(100), sized(400), sized(50)])
    assert refused.value.stored_seqs == (2, 3)
    assert [r.seq for r in ob.pending(10)] == [1, 2, 3]

    def broken(seq: int, boot: str, low: int) -> bytes:
        raise ValueError("cannot encode")

    with pytest.raises(ValueError):  # a builder's own error, after a stored first result
        ob.put_many([sized(10), broken, sized(10)])
    assert [r.seq for r in ob.pending(10)] == [1, 2, 3, 4]
    assert _put(ob, size=10) == 5  # no seq was taken by the refused ones


@pytest.mark.parametrize("seed", range(6))
def test_what_commits_keep_in_memory_always_equals_the_file(tmp_path: Path, seed: int) -> None:
    """Commits read no table (next seq, bytes, depth, the oldest row, each epoch's lowest
    unacknowledged seq are kept in memory): random puts, refusals, failing builders, acks of
    both epochs and reopenings, each checked against what the file says."""
    import random

    rng = random.Random(seed)
    cfg = OutboxConfig(path=tmp_path / "o.db", device_id="bed-1", max_bytes=40_000)
    ob = Outbox(cfg)
    given: dict[int, tuple[int, int | None]] = {}  # seq -> (low given, lowest stored then)
    epoch = ""

    def build(seq: int, boot: str, low: int) -> bytes:
        if rng.random() < 0.1:
            raise ValueError("a builder that fails")
        (lowest,) = ob._db.execute("SELECT MIN(seq) FROM outbox WHERE epoch=?", (epoch,)).fetchone()
        given[seq] = (low, lowest)
        return _payload(seq, boot, low, rng.randint(50, 3000))

    for _ in range(150):
        op, stamps = rng.random(), rng.random() < 0.7
        epoch = ob.epoch if stamps else ""
        given.clear()
        seqs: list[int] = []
        try:
            if op < 0.45:
                seqs = [ob.put(build, stamps_epoch=stamps)]
            elif op < 0.7:
                seqs = ob.put_many([build] * rng.randint(1, 6), stamps_epoch=stamps)
            elif op < 0.9:
                stored = [s for (s,) in ob._db.execute("SELECT seq FROM outbox")]
                if stored:
                    ob.ack_through(rng.choice(stored), ob.epoch if rng.random() < 0.7 else "")
            else:
                ob.close()
                ob = Outbox(cfg)
        except (ValueError, OutboxFullError, SyncError) as exc:
            seqs = list(getattr(exc, "stored_seqs", ()))
        for seq in seqs:  # the lowest stored seq of the row's epoch, or the call's first row
            low, lowest = given[seq]
            assert low == (seqs[0] if lowest is None else lowest)
        rows = ob._db.execute(
            "SELECT seq, bytes, created_at, epoch FROM outbox ORDER BY seq"
        ).fetchall()
        assert ob.depth == len(rows) and ob._bytes == sum(r[1] for r in rows)
        assert ob._next_seq == int(ob._meta("next_seq") or 1) > max((r[0] for r in rows), default=0)
        if ob._oldest_known:
            assert ob._oldest == (rows[0][2] if rows else None)
        for name, low in ob._lows.items():
            assert low == min(r[0] for r in rows if r[3] == name)
