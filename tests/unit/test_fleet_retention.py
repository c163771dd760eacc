"""Fleet store retention and quotas (issue 25, item 4): bounded dead letters with a quota that
counts what it refuses, dead-letter pages and filters, retention in batches, and an index under
every list query the API offers. On SQLite and PostgreSQL alike."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stores import test_store

from edgemed.fleet import SqlStore
from edgemed.fleet.alerts import Alert
from edgemed.fleet.store.dead_letters import KEEP_BYTES, PREVIEW_BYTES, DeadLetterQuota
from edgemed.fleet.store.retention import DAY_S, RetentionPolicy
from edgemed.wire import ResultMessage


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    yield from test_store(request.param, tmp_path)


def _msg(seq: int, *, device: str = "bed-1", sha: str = "a", model: str = "m") -> ResultMessage:
    return ResultMessage(
        device_id=device, epoch="", seq=seq, boot_id="b", result_id=f"r{seq}{sha}",
        lowest_unacked_seq=1, created_at=1.0, model_id=model, model_version="1",
        kind="news2", payload_sha256=sha * 64, body={"seq": seq}, raw=f'{{"seq": {seq}}}',
    )  # fmt: skip


def _one(store: SqlStore, sql: str, params: tuple[Any, ...] = ()) -> Any:
    return next(iter(store._rows(sql, params)[0].values()))


def test_a_dead_letter_keeps_a_prefix_its_size_and_sha256(store: SqlStore) -> None:
    junk = b"\xff\x00" + b"x" * 300_000
    assert store.dead_letter("edgemed/v1/bed-1/results", "results: 300002 bytes exceeds", junk)
    (letter,) = store.dead_letters()
    assert letter["size"] == len(junk) and letter["sha256"] == hashlib.sha256(junk).hexdigest()
    assert letter["device_id"] == "bed-1" and letter["truncated"] is True
    assert letter["preview"].startswith("\\xff\x00xxx") and letter["preview"].count("x") < 260
    assert letter["reason_class"] == "results: N bytes exceeds"
    assert _one(store, "SELECT LENGTH(payload) AS n FROM dead_letters") == KEEP_BYTES
    store.dead_letter("not/an/edgemed/topic", "short", b"{}")
    short = store.dead_letters()[0]
    assert (short["device_id"], short["preview"], short["truncated"]) == (None, "{}", False)
    assert PREVIEW_BYTES < KEEP_BYTES


def test_beyond_the_quota_dead_letters_are_counted_and_results_still_stored(
    store: SqlStore,
) -> None:
    store.dead_letter_quota = DeadLetterQuota(rows=3)
    for i in range(5):
        store.dead_letter("edgemed/v1/bed-1/results", f"result: seq {i} is 'bad{i}'", b"j" * 10)
    assert store.insert_result(_msg(1)) == ("stored", 1)  # ingest goes on
    assert store.insert_result(_msg(1, sha="b")) == ("conflict", 1)  # its dead letter: refused
    assert len(store.dead_letters()) == 3
    refused = {r["reason"]: (r["count"], r["bytes"]) for r in store.dead_letters_refused()}
    assert refused == {"result: seq N is '…'": (2, 20), "seq-conflict at seq N": (1, 10)}
    assert [a["rule"] for a in store.alerts()] == ["seq-conflict"]  # the alert is not refused
    store.dead_letter_quota = DeadLetterQuota(rows=None, stored_bytes=3 * 10 + 5)
    assert not store.dead_letter("t", "bytes", b"123456")  # 30 kept + 6 > 35
    assert store.dead_letter_quota.rows is None and len(store.dead_letters()) == 3


def test_dead_letters_page_newest_first_and_filter_by_device_and_reason(store: SqlStore) -> None:
    for i in range(7):
        device = "bed-1" if i % 2 == 0 else "bed-2"
        store.dead_letter(f"edgemed/v1/{device}/results", f"reason {'AB'[i % 3 == 0]} {i}", b"p")
    pages, before = [], None
    while True:
        page = store.dead_letters(before=before, limit=3)
        pages.append([r["id"] for r in page])
        if len(page) < 3:
            break
        before = page[-1]["id"]
    ids = [i for page in pages for i in page]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 7 and len(pages) == 3
    assert {r["device_id"] for r in store.dead_letters(device_id="bed-2")} == {"bed-2"}
    assert len(store.dead_letters(device_id="bed-2")) == 3
    assert len(store.dead_letters(reason="reason B N")) == 3  # i = 0, 3, 6
    assert len(store.dead_letters(reason="reason B N", device_id="bed-1")) == 2


def _age(store: SqlStore, sql: str, params: tuple[Any, ...]) -> None:
    with store._lock, store._transaction():
        store._run(sql, params)


def test_retention_deletes_old_rows_in_batches_and_keeps_open_alerts(store: SqlStore) -> None:
    now = time.time()
    old = now - 10 * DAY_S
    store.insert_results([_msg(s) for s in range(1, 13)])
    _age(store, "UPDATE results SET received_at=? WHERE seq<=10", (old,))
    store.raise_alerts([Alert(device_id="bed-1", seq=None, rule=r, severity="warning",
                              detail="d", dedupe_key=r) for r in ("a1", "a2", "a3")])  # fmt: skip
    by_rule = {a["rule"]: a["id"] for a in store.alerts()}
    store.acknowledge_alert(by_rule["a1"], by="nurse")
    store.acknowledge_alert(by_rule["a3"], by="nurse")
    _age(store, "UPDATE alerts SET raised_at=? WHERE rule IN ('a1', 'a2')", (old,))
    for _ in range(4):
        store.dead_letter("edgemed/v1/bed-1/results", "r", b"x")
    _age(store, "UPDATE dead_letters SET received_at=? WHERE id IN "
                "(SELECT id FROM dead_letters ORDER BY id LIMIT 3)", (old,))  # fmt: skip
    policy = RetentionPolicy(results_days=5, alerts_days=5, dead_letters_days=5, batch=3)
    assert store.apply_retention(policy, now) == {"results": 10, "alerts": 1, "dead_letters": 3}
    assert sorted(r["seq"] for r in store.results()) == [11, 12]
    # a2 is old but unacknowledged, a3 acknowledged but new: both kept; a1's history goes too.
    assert sorted(a["rule"] for a in store.alerts()) == ["a2", "a3"]
    assert _one(store, "SELECT COUNT(*) AS n FROM alert_acks") == 1
    assert len(store.dead_letters()) == 1
    assert store.insert_result(_msg(13)) == ("stored", 13)  # acks go on past deleted rows
    assert store.apply_retention(policy, now) == {"results": 0, "alerts": 0, "dead_letters": 0}


# Every list query the API documents, with each filter it offers (docs/fleet.md REST API).
LIST_QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("results", {}),
    ("results", {"device_id": "bed-1"}),
    ("results", {"model_id": "nothing"}),
    ("results", {"kind": "news2"}),
    ("results", {"since": 1.0, "until": 2.0}),
    ("results", {"device_id": "bed-1", "since": 1.0}),
    ("results", {"model_id": "m", "before": (2.0, "bed-1", 3)}),
    ("alerts", {}),
    ("alerts", {"open_only": True}),
    ("alerts", {"device_id": "bed-1"}),
    ("alerts", {"rule": "seizure"}),
    ("alerts", {"since": 1.0, "until": 2.0}),
    ("alerts", {"after": (5,)}),
    ("alerts", {"device_id": "bed-1", "after": (5,)}),
    ("dead_letters", {}),
    ("dead_letters", {"device_id": "bed-1"}),
    ("dead_letters", {"reason": "r"}),
    ("dead_letters", {"before": 5}),
]


def _plan(store: SqlStore, sql: str, params: tuple[Any, ...]) -> str:
    with store._lock, store._transaction():
        if store.placeholder == "?":
            rows = store._run("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            return "\n".join(str(r[3]) for r in rows)
        # Whether an index can serve the query, whatever the planner prefers on a tiny table.
        store._run("SET LOCAL enable_seqscan = off")
        return "\n".join(str(r[0]) for r in store._run("EXPLAIN " + sql, params).fetchall())


@pytest.mark.parametrize(("query", "filters"), LIST_QUERIES)
def test_every_list_query_uses_an_index(
    store: SqlStore, query: str, filters: dict[str, Any]
) -> None:
    plan = _plan(store, *getattr(store, f"{query}_sql")(**filters))
    assert "Seq Scan" not in plan, plan  # PostgreSQL
    # No full sorts: only the open list (by severity) and an alerts time range (the rows in the
    # range, via raised_at; 1.1 ms for a day of 100,000 alerts: benchmarks/bench_fleet_queries.py)
    # are sorted.
    sorted_ok = "open_only" in filters or (query == "alerts" and "since" in filters)
    assert "TEMP B-TREE FOR ORDER BY" not in plan or sorted_ok, plan
    table = "results" if query == "results" else query
    if filters and "before" not in filters:
        # SQLite: a filter is a SEARCH through an index, never a SCAN of the table.
        assert not re.search(rf"^SCAN {table}\b", plan, re.M), plan


def test_fleet_serve_options_give_the_quota_and_the_policy_the_server_applies(
    tmp_path: Path,
) -> None:
    from edgemed.cli.commands import _parser
    from edgemed.cli.fleet import _retention
    from edgemed.config import BrokerConfig
    from edgemed.fleet.housekeeping import RetentionWorker
    from edgemed.fleet.server import FleetServer

    argv = ["fleet", "serve", "--retain-days", "30", "--retain-alerts-days", "365"]
    args = _parser().parse_args([*argv, "--dead-letter-quota", "50", "--dead-letter-quota-mb", "2"])
    store = next(test_store("sqlite", tmp_path))
    policy = _retention(args, store)
    assert store.dead_letter_quota == DeadLetterQuota(rows=50, stored_bytes=2_000_000)
    assert (policy.results_days, policy.alerts_days, policy.dead_letters_days) == (30, 365, 30)
    default = _retention(_parser().parse_args(["fleet", "serve"]), store)
    assert not default.active and store.dead_letter_quota == DeadLetterQuota(rows=10_000)
    broker = BrokerConfig.from_url("mqtt://127.0.0.1:1")
    server = FleetServer(store, broker, token="t" * 16, retention=policy)
    assert server.retention is not None and server.retention.policy == policy
    assert FleetServer(store, broker, token="t" * 16, retention=default).retention is None
    # One pass of the worker (at start, then every hour until the server stops).
    store.insert_results([_msg(1)])
    _age(store, "UPDATE results SET received_at=?", (time.time() - 31 * DAY_S,))
    stop = threading.Event()
    stop.set()
    worker = RetentionWorker(store, policy)
    worker.run(stop)
    assert worker.deleted["results"] == 1 and store.count_results() == 0
    store.close()
