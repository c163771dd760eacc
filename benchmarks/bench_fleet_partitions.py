"""PostgreSQL store inserts, results partitioned by month (schema 12: result_keys written first)
against the unpartitioned table, paired and interleaved in one run: 6 rounds of 6,000 results
(10 transactions of 600, 200 devices, ~650-byte payloads) through ``insert_results``, the
store's own path (no broker). Median results/s of each.

Usage: python benchmarks/bench_fleet_partitions.py [--quick]   (EDGEMED_TEST_POSTGRES: the DSN)
``--quick``: 2 rounds of one transaction of 600 each (testing, not figures).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid

import psycopg
from _machine import machine_info

from edgemed.fleet.store import PostgresStore
from edgemed.wire import ResultMessage

DSN = os.environ.get("EDGEMED_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
RAW = '{"x": "' + "p" * 600 + '"}'


def _msg(device: str, seq: int) -> ResultMessage:
    return ResultMessage(
        device_id=device, epoch="", seq=seq, boot_id="b", result_id=f"r{device}{seq}",
        lowest_unacked_seq=1, created_at=1.0, model_id="m", model_version="1", kind="news2",
        payload_sha256="a" * 64, body={}, raw=RAW,
    )  # fmt: skip


def _store(partitioned: bool) -> tuple[PostgresStore, str]:
    schema = f"edgemed_bench_{uuid.uuid4().hex[:8]}"
    if partitioned:
        return PostgresStore(DSN, schema=schema), schema
    make_new = PostgresStore._create_new_store
    PostgresStore._create_new_store = lambda self: None  # type: ignore[method-assign]
    try:  # the table as stores made before schema 12 keep it
        return PostgresStore(DSN, schema=schema), schema
    finally:
        PostgresStore._create_new_store = make_new  # type: ignore[method-assign]


def main() -> None:
    rounds, batches = (2, 1) if "--quick" in sys.argv[1:] else (6, 10)
    stores = {kind: _store(kind) for kind in (True, False)}
    assert stores[True][0].partitioned and not stores[False][0].partitioned
    rates: dict[bool, list[float]] = {True: [], False: []}
    next_seq = {True: 0, False: 0}
    try:
        for round_ in range(rounds):
            for kind in (True, False) if round_ % 2 == 0 else (False, True):
                started = time.perf_counter()
                for _ in range(batches):
                    base = next_seq[kind]
                    stores[kind][0].insert_results(
                        [_msg(f"dev-{i % 200}", base + i + 1) for i in range(600)]
                    )
                    next_seq[kind] += 600
                rates[kind].append(600 * batches / (time.perf_counter() - started))
    finally:
        for store, schema in stores.values():
            store.close()
            with psycopg.connect(DSN, autocommit=True) as db:
                db.execute(f"DROP SCHEMA {schema} CASCADE")
    print(json.dumps({
        "machine": machine_info(),
        "results_per_round": 600 * batches,
        "partitioned_results_per_s": round(statistics.median(rates[True])),
        "unpartitioned_results_per_s": round(statistics.median(rates[False])),
        "rounds": {"partitioned": [round(r) for r in rates[True]],
                   "unpartitioned": [round(r) for r in rates[False]]},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
