"""PostgreSQL results partitioned by month of receipt (issue 25, item 4): retention drops whole
month partitions, deletes row by row only inside the cutoff's month, and the uniqueness of
(device, epoch, seq) holds across months (a resend is a duplicate, a reused seq a conflict)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from stores import test_store

from edgemed.fleet import SqlStore
from edgemed.fleet.store import results as store_results
from edgemed.fleet.store.partitions import MONTHS_AHEAD, month_bounds, month_of, partition_name
from edgemed.fleet.store.retention import DAY_S, RetentionPolicy
from edgemed.wire import ResultMessage

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    yield from test_store("postgres", tmp_path)


def _msg(seq: int, *, sha: str = "a", encounter: str | None = None) -> ResultMessage:
    body: dict[str, Any] = {"seq": seq} | ({"encounter": encounter} if encounter else {})
    return ResultMessage(
        device_id="bed-1", epoch="", seq=seq, boot_id="b", result_id=f"r{seq}{sha}",
        lowest_unacked_seq=1, created_at=1.0, model_id="m", model_version="1", kind="news2",
        payload_sha256=sha * 64, body=body, raw=f'{{"seq": {seq}}}',
    )  # fmt: skip


def _received(store: SqlStore, at: float, msgs: list[ResultMessage],
              monkeypatch: pytest.MonkeyPatch) -> list[str]:  # fmt: skip
    """Insert as if received at ``at`` (the store reads the clock once per batch)."""
    monkeypatch.setattr(store_results, "time", SimpleNamespace(time=lambda: at))
    try:
        return list(store.insert_results(msgs).outcomes)
    finally:
        monkeypatch.undo()


def _count(store: SqlStore, sql: str) -> int:
    return int(next(iter(store._rows(sql)[0].values())))


def _months(store: SqlStore) -> list[str]:
    return [name for name, _ in store.month_partitions()]  # type: ignore[attr-defined]


def test_a_new_store_is_partitioned_a_few_months_ahead(store: SqlStore) -> None:
    assert store.partitioned  # type: ignore[attr-defined]
    year, month = month_of(time.time())
    assert partition_name(year, month) in _months(store)
    assert len(_months(store)) == MONTHS_AHEAD + 1
    kinds = {r["relname"]: r["relkind"] for r in store._rows(
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n "
        "ON n.oid=c.relnamespace WHERE n.nspname=current_schema()")}  # fmt: skip
    assert kinds["results"] == "p" and kinds["result_keys"] == "r"


def test_retention_drops_whole_months_and_keys_stay_unique_across_months(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    year, month = month_of(now)
    this_month_start = month_bounds(year, month)[0]
    ago = [this_month_start - d * DAY_S for d in (75, 45, 15)]  # three earlier months
    for i, at in enumerate(ago):
        outcomes = _received(store, at, [_msg(10 * i + s, encounter="enc-1") for s in range(1, 6)],
                             monkeypatch)  # fmt: skip
        assert outcomes == ["stored"] * 5
    # A resend months later is a duplicate, a reused seq with another payload a conflict:
    # never a second row, although the months are different partitions.
    assert _received(store, now, [_msg(1), _msg(2, sha="b")], monkeypatch) == [
        "duplicate", "conflict"]  # fmt: skip
    assert _count(store, "SELECT COUNT(*) FROM results") == 15
    assert [a["rule"] for a in store.alerts()] == ["seq-conflict"]
    months_before = _months(store)
    assert len(months_before) >= 3 + MONTHS_AHEAD
    # Keep 30 days: the two months wholly before the cutoff are dropped, not deleted from.
    cutoff = now - 30 * DAY_S
    deleted = store.apply_retention(RetentionPolicy(results_days=30, batch=2), now)
    gone = [m for m in months_before if m not in _months(store)]
    expired = [m for m in months_before if store_end(m) <= cutoff]
    assert gone == expired and len(gone) >= 1
    left = {r["seq"] for r in store.results(limit=100)}
    kept_at = [at for at in ago if at >= cutoff]
    assert deleted["results"] == 15 - len(left) and len(left) == 5 * len(kept_at)
    # Keys and encounter references went with their rows: a resend of a deleted result is new.
    assert _count(store, "SELECT COUNT(*) FROM result_keys") == len(left)
    assert _count(store, "SELECT COUNT(*) FROM result_encounters") == len(left)
    assert store.apply_retention(RetentionPolicy(results_days=30), now)["results"] == 0


def store_end(name: str) -> float:
    year, month = int(name[9:13]), int(name[14:16])
    return month_bounds(year, month)[1]
