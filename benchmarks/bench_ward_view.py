"""The ward page's data (``GET /api/wards/{id}/view``) timed on a SQLite store: BEDS beds, each
with a monitor reading every 5 min for 6 h (72) and, with ``--eeg N``, an EEG device's last N
seizure windows (4 s apart; 5,400 is 6 h of a continuous watch). Through the API in process
(FastAPI's test client: routing, the guard and JSON encoding included). Reported: p50 and min
ms of ``--runs`` calls and the reply's size.

Usage: python benchmarks/bench_ward_view.py [BEDS] [--eeg N] [--runs R]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _machine import machine_info
from fastapi.testclient import TestClient

from edgemed.fleet import SQLiteStore
from edgemed.fleet.alerts import AlertRules
from edgemed.fleet.app import create_app
from edgemed.fleet.validation import PayloadValidator
from edgemed.fleet.wards.registry import WardRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from payloads import news2_body, result_payload, seizure_body

TOKEN = "bench-ward-view-token-0123456789"


def seed(store: SQLiteStore, beds: int, eeg: int, now: float) -> None:
    reg, validator, rules = WardRegistry(store), PayloadValidator(), AlertRules()
    reg.put_ward("w")
    for b in range(beds):
        mon, eeg_id = f"mon-{b}", f"eeg-{b}"
        reg.put_bed("w", str(b), devices=[mon, eeg_id] if eeg else [mon])
        raw = [
            (
                mon,
                result_payload(
                    mon, i + 1, news2_body(pulse=i % 3), created_at=now - 6 * 3600 + i * 300
                ),
            )
            for i in range(72)
        ]
        raw += [(eeg_id, result_payload(eeg_id, i + 1, seizure_body(0.1 + (i % 10) / 20),
                                        created_at=now - eeg * 4 + i * 4,
                                        model="seizure-ieeg@1.0.0")) for i in range(eeg)]  # fmt: skip
        msgs = [validator.result(r, topic_device_id=d) for d, r in raw]
        store.insert_results(msgs, lambda m: rules.evaluate(m, time.time()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("beds", nargs="?", type=int, default=30)
    parser.add_argument("--eeg", type=int, default=0, help="seizure windows per bed")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "fleet.db")
        now = time.time()
        seed(store, args.beds, args.eeg, now)
        client = TestClient(create_app(store, token=TOKEN))
        headers = {"Authorization": f"Bearer {TOKEN}"}
        times, size = [], 0
        for _ in range(args.runs):
            started = time.perf_counter()
            reply = client.get("/api/wards/w/view?hours=6", headers=headers)
            times.append((time.perf_counter() - started) * 1000)
            reply.raise_for_status()
            size = len(reply.content)
        print(json.dumps({
            "machine": machine_info(), "beds": args.beds, "eeg_windows_per_bed": args.eeg,
            "results": store.count_results(), "p50_ms": round(statistics.median(times), 1),
            "min_ms": round(min(times), 1), "reply_bytes": size,
        }, indent=2))  # fmt: skip
        store.close()


if __name__ == "__main__":
    main()
