"""Fleet store: idempotent inserts, alerts, contiguous ack high-water mark, schema migration."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from stores import PG_DSN, V1_TABLES, test_store

from edgemed.errors import SyncError
from edgemed.fleet import SQLiteStore, SqlStore
from edgemed.fleet.alerts import Alert
from edgemed.fleet.store import SCHEMA_VERSION
from edgemed.fleet.store.schema import ALERTS_V2
from edgemed.wire import ResultMessage


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """The same semantics on both backends; PostgreSQL gets a throwaway schema per test."""
    yield from test_store(request.param, tmp_path)


def _msg(
    seq: int, *, low: int = 1, sha: str = "a", device: str = "bed-1", epoch: str = ""
) -> ResultMessage:
    return ResultMessage(
        device_id=device,
        epoch=epoch,
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
    assert [(a["rule"], a["severity"]) for a in store.alerts()] == [("seq-conflict", "integrity")]
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
    done = store.insert_results([_msg(1), _msg(2), _msg(2), _msg(1, device="bed-2")])
    outcomes, acked = done.outcomes, done.acked
    assert outcomes == ["stored", "stored", "duplicate", "stored"]
    assert acked == {("bed-1", ""): 2, ("bed-2", ""): 1}  # per (device, epoch)


def _alert(rule: str = "news2-urgent", *, seq: int | None = 1, key: str | None = None) -> Alert:
    return Alert(
        device_id="bed-1", seq=seq, rule=rule, severity="urgent", detail="NEWS2 5", dedupe_key=key
    )


def test_alerts_commit_with_their_result_and_only_for_new_results(store: SqlStore) -> None:
    def evaluate(msg: ResultMessage) -> list[Alert]:
        return [_alert(seq=msg.seq)]

    first = store.insert_results([_msg(1), _msg(2)], evaluate)
    again = store.insert_results([_msg(1)], evaluate)  # a resend: no second alert
    assert len(first.alerts) == 2 and again.alerts == []
    assert sorted(a["seq"] for a in store.alerts()) == [1, 2]


def test_dedupe_key_raises_once_and_ack_is_idempotent(store: SqlStore) -> None:
    assert len(store.raise_alerts([_alert("device-offline", seq=None, key="k1")])) == 1
    assert store.raise_alerts([_alert("device-offline", seq=None, key="k1")]) == []
    (alert,) = store.alerts(open_only=True)
    acked = store.acknowledge_alert(alert["id"], by="nurse station 3")
    assert acked is not None and acked["acked_by"] == "nurse station 3"
    again = store.acknowledge_alert(alert["id"], by="someone else")
    assert again is not None and again["acked_by"] == "nurse station 3"  # the first ack stands
    assert store.alerts(open_only=True) == []
    assert store.acknowledge_alert(10_000, by="x") is None
    assert store.resolve_alerts("bed-1", "device-offline") == 1
    assert store.alerts()[0]["resolved_at"] is not None


def test_a_stale_death_notice_does_not_mark_a_live_device_offline(store: SqlStore) -> None:
    assert store.update_status("bed-1", {"state": "online", "boot_id": "b1", "connection": 2})
    # The broker delivers the retained death of connection 1 late: ignored.
    assert not store.update_status("bed-1", {"state": "offline", "boot_id": "b1", "connection": 1})
    assert store.device("bed-1")["state"] == "online"  # type: ignore[index]
    # After a reboot (new boot_id) connection counters restart: accepted.
    assert store.update_status("bed-1", {"state": "offline", "boot_id": "b2", "connection": 1})
    device = store.device("bed-1")
    assert device is not None and device["state"] == "offline"
    assert store.offline_since(device["state_since"] + 1) == [
        {"device_id": "bed-1", "state_since": device["state_since"]}
    ]
    assert store.device("nope") is None


def test_results_filters_and_keyset_pages(store: SqlStore) -> None:
    for seq in range(1, 8):
        store.insert_result(_msg(seq))
    store.insert_result(_msg(1, device="bed-2"))
    seen: list[tuple[str, int]] = []
    before = None
    while True:
        page = store.results(device_id="bed-1", limit=3, before=before)
        seen += [(r["device_id"], r["seq"]) for r in page]
        if len(page) < 3:
            break
        last = page[-1]
        before = (last["received_at"], last["device_id"], last["seq"])
    assert seen == [("bed-1", s) for s in range(7, 0, -1)]  # newest first, no gaps or repeats
    assert len(store.results(model_id="m", kind="text-embedding")) == 8
    assert store.results(kind="news2") == []
    assert store.results(since=time.time() + 60) == []


def test_model_inventory_from_birth_messages(store: SqlStore) -> None:
    for dev, models in (("bed-1", ["a@1", "b@2"]), ("bed-2", ["a@1"]), ("bed-3", ["a@2"])):
        store.update_status(dev, {"state": "online", "models": models})
    assert [(m["model_id"], m["version"], m["devices"]) for m in store.model_inventory()] == [
        ("a", "1", 2),
        ("a", "2", 1),
        ("b", "2", 1),
    ]


V1_SQLITE = (
    V1_TABLES
    + """
INSERT INTO devices(device_id, acked_seq, last_seen) VALUES ('bed-1', 1, 1.0);
INSERT INTO results VALUES ('bed-1', 1, 'r1', 'b', 'm', '1', 'text-embedding', 1.0, 2.0, 'h', '{}');
INSERT INTO alarms(device_id, seq, kind, detail, raised_at) VALUES ('bed-1', 1, 'seq-conflict', 'old', 3.0);
"""
)


def test_a_version_1_sqlite_store_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as db:
        db.executescript(V1_SQLITE)
    store = SQLiteStore(path)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.count_results() == 1 and store.device("bed-1")["acked_seq"] == 1  # type: ignore[index]
        (alert,) = store.alerts()
        assert (alert["rule"], alert["severity"], alert["detail"]) == (
            "seq-conflict",
            "integrity",
            "old",
        )
        assert store.insert_result(_msg(2)) == ("stored", 2)  # the new columns work
    finally:
        store.close()
    reopened = SQLiteStore(path)  # idempotent: opening again changes nothing
    assert reopened.schema_version() == SCHEMA_VERSION and len(reopened.alerts()) == 1
    reopened.close()


def test_a_store_from_a_newer_edgemed_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_version VALUES (99)")
    with pytest.raises(SyncError, match="schema version 99"):
        SQLiteStore(path)


def test_a_long_run_of_seqs_acks_in_one_go(store: SqlStore) -> None:
    # More than one read window (PostgreSQL reads 4096 seqs per query) behind a gap at seq 1.
    assert store.insert_results([_msg(s) for s in range(2, 5002)]).acked == {("bed-1", ""): 0}
    assert store.insert_result(_msg(1))[1] == 5001


def test_a_repeated_status_keeps_the_time_its_state_began(store: SqlStore) -> None:
    # A retained death redelivered (a worker resubscribing) must not restart the offline clock:
    # the sweeper's once-per-episode alert key is built from it.
    store.update_status("bed-1", {"state": "offline", "boot_id": "b1", "connection": 1})
    since = store.device("bed-1")["state_since"]  # type: ignore[index]
    time.sleep(0.01)
    store.update_status("bed-1", {"state": "offline", "boot_id": "b1", "connection": 1})
    assert store.device("bed-1")["state_since"] == since  # type: ignore[index]
    store.update_status("bed-1", {"state": "online", "boot_id": "b1", "connection": 2})
    assert store.device("bed-1")["state_since"] > since  # type: ignore[index]


# -- epochs: a device whose outbox was lost, corrupted or restored ---------------------------
def test_same_seq_in_a_new_epoch_is_stored_not_dead_lettered(store: SqlStore) -> None:
    done = store.insert_results([_msg(s, epoch="e1") for s in range(1, 6)])
    assert done.acked == {("bed-1", "e1"): 5}
    # The outbox was deleted: the device starts again at seq 1, in a new epoch.
    done = store.insert_results([_msg(s, epoch="e2", sha="b") for s in (1, 2)])
    assert done.outcomes == ["stored", "stored"] and done.acked == {("bed-1", "e2"): 2}
    assert store.dead_letters() == [] and store.alerts(rule="seq-conflict") == []
    assert store.count_results() == 7
    assert {(r["epoch"], r["seq"]) for r in store.results()} == {
        *(("e1", s) for s in range(1, 6)),
        ("e2", 1),
        ("e2", 2),
    }
    device = store.device("bed-1")
    assert device is not None and (device["epoch"], device["acked_seq"]) == ("e2", 2)
    (event,) = store.device_events("bed-1")
    assert (event["kind"], event["epoch"], event["previous_epoch"]) == ("seq-restart", "e2", "e1")
    assert (event["previous_acked_seq"], event["start_seq"]) == (5, 1)
    # A late resend of the old epoch is a duplicate of its own epoch, acked under it.
    assert store.insert_result(_msg(5, epoch="e1")) == ("duplicate", 5)
    assert store.insert_result(_msg(3, epoch="e2", sha="b")) == ("stored", 3)
    assert len(store.device_events("bed-1")) == 1  # one event per restart
    assert store.insert_result(_msg(3, epoch="e2", sha="c"))[0] == "conflict"  # still guarded


def test_a_restored_copy_is_a_restart_too(store: SqlStore) -> None:
    store.insert_results([_msg(s, epoch="e1") for s in range(1, 101)])
    # An old copy of the outbox: its counter says 51; the device opened it in a new epoch.
    assert store.insert_result(_msg(51, low=51, epoch="e2", sha="b")) == ("stored", 51)
    (event,) = store.device_events("bed-1")
    assert (event["kind"], event["start_seq"], event["previous_acked_seq"]) == (
        "seq-restart",
        51,
        100,
    )
    assert store.dead_letters() == []


def test_a_reboot_continues_without_an_event_and_a_late_old_epoch_is_not_current(
    store: SqlStore,
) -> None:
    store.insert_results([_msg(s, epoch="e1") for s in range(1, 11)])
    # Rebooted: epoch e3 continues the file's counter at 21; e2 (11-20) was never delivered.
    assert store.insert_result(_msg(21, low=21, epoch="e3")) == ("stored", 21)
    assert store.insert_results([_msg(s, low=11, epoch="e2") for s in range(11, 21)]).acked == {
        ("bed-1", "e2"): 20
    }
    assert store.device_events("bed-1") == []
    device = store.device("bed-1")
    assert device is not None and (device["epoch"], device["acked_seq"]) == ("e3", 21)


def test_a_device_reporting_a_moved_aside_outbox_is_recorded_once(store: SqlStore) -> None:
    status = {"state": "online", "boot_id": "b1", "connection": 1, "epoch": "e9"}
    store.update_status("bed-1", {**status, "outbox_moved_aside": "o.db.corrupt-20250101T000000Z"})
    store.update_status(
        "bed-1", {**status, "connection": 2, "outbox_moved_aside": "o.db.corrupt-20250101T000000Z"}
    )
    (event,) = store.device_events("bed-1")
    assert (
        event["kind"] == "outbox-moved-aside" and "o.db.corrupt-20250101T000000Z" in event["detail"]
    )
    assert event["epoch"] == "e9"


V2_SQLITE = """
CREATE TABLE schema_version (version INTEGER PRIMARY KEY);
INSERT INTO schema_version VALUES (2);
CREATE TABLE devices (device_id TEXT PRIMARY KEY, acked_seq BIGINT NOT NULL DEFAULT 0,
    boot_id TEXT, state TEXT, connection BIGINT, edgemed_version TEXT, models TEXT,
    outbox_depth BIGINT, state_since DOUBLE PRECISION, last_seen DOUBLE PRECISION NOT NULL);
CREATE TABLE results (device_id TEXT NOT NULL, seq BIGINT NOT NULL, result_id TEXT NOT NULL,
    boot_id TEXT NOT NULL, model_id TEXT NOT NULL, model_version TEXT NOT NULL,
    kind TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    received_at DOUBLE PRECISION NOT NULL, payload_sha256 TEXT NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (device_id, seq));
CREATE TABLE alerts (id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, seq BIGINT,
    rule TEXT NOT NULL, severity TEXT NOT NULL, detail TEXT NOT NULL,
    raised_at DOUBLE PRECISION NOT NULL, acked_at DOUBLE PRECISION, acked_by TEXT,
    resolved_at DOUBLE PRECISION, dedupe_key TEXT UNIQUE);
CREATE TABLE dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,
    reason TEXT NOT NULL, payload BLOB NOT NULL, received_at DOUBLE PRECISION NOT NULL);
CREATE INDEX alerts_open ON alerts(acked_at, id);
CREATE INDEX results_received ON results(received_at);
INSERT INTO devices(device_id, acked_seq, last_seen) VALUES ('bed-1', 3, 1.0), ('bed-2', 1, 1.0);
"""


def test_a_version_2_store_with_data_is_rekeyed_keeping_every_row(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    with sqlite3.connect(path) as db:
        db.executescript(V2_SQLITE)
        rows = [
            ("bed-1", s, f"r{s}", "b", "m", "1", "k", 1.0, 2.0, f"h{s}", "{}") for s in (1, 2, 3, 5)
        ]
        rows.append(("bed-2", 1, "x", "b", "m", "1", "k", 1.0, 2.0, "a" * 64, "{}"))
        db.executemany("INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
    store = SQLiteStore(path)
    try:
        assert store.schema_version() == SCHEMA_VERSION >= 4
        kept = {
            (r["device_id"], r["epoch"], r["seq"], r["payload_sha256"]) for r in store.results()
        }
        assert kept == {(d, "", s, h) for d, s, _, _, _, _, _, _, _, h, _ in rows}
        # The old acks carry over to epoch "": an old device's next result continues them.
        assert store.insert_result(_msg(4)) == ("stored", 5)
        assert store.insert_result(_msg(1, device="bed-2")) == ("duplicate", 1)
        # ... and a device now sending epochs starts afresh beside them, without a conflict.
        assert store.insert_result(_msg(1, epoch="e1")) == ("stored", 1)
        assert store.dead_letters() == [] and store.count_results() == 7
        assert [e["kind"] for e in store.device_events("bed-1")] == ["seq-restart"]
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        (pk,) = db.execute(
            "SELECT group_concat(name) FROM pragma_table_info('results') WHERE pk > 0 ORDER BY pk"
        ).fetchone()
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert set(pk.split(",")) == {"device_id", "epoch", "seq"}
    assert "results_received" in indexes and "results_before_epochs" not in str(indexes)


@pytest.mark.postgres
def test_a_version_2_postgres_store_is_rekeyed_in_place() -> None:
    import psycopg

    from edgemed.fleet.store import PostgresStore

    schema = f"edgemed_test_{uuid.uuid4().hex[:12]}"
    # The version-2 tables a migration touches (the rest the full DDL creates).
    ddl = [s for s in V2_SQLITE.split(";") if "results" in s or "devices" in s or "schema_v" in s]
    ddl.append(ALERTS_V2.format(serial="BIGSERIAL PRIMARY KEY"))  # migration 6 extends it
    with psycopg.connect(PG_DSN, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
        db.execute(f"SET search_path TO {schema}")
        for statement in ddl:
            db.execute(statement)
        db.execute(
            "INSERT INTO results VALUES ('bed-1', 1, 'r', 'b', 'm', '1', 'k', 1, 2, %s, '{}')",
            ("a" * 64,),
        )
    try:
        store = PostgresStore(PG_DSN, schema=schema)
        assert store.schema_version() == SCHEMA_VERSION and store.count_results() == 1
        assert store.insert_result(_msg(1)) == ("duplicate", 3)  # the v2 ack carried over
        assert store.insert_result(_msg(1, epoch="e1", sha="b")) == ("stored", 1)
        assert store.dead_letters() == []
        store.close()
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as db:
            db.execute(f"DROP SCHEMA {schema} CASCADE")
