"""Fleet at ward scale: 200 real device publishers, three ingest processes on one ``$share``
group, one of them SIGKILLed mid-run: 0 missing, 0 duplicates stored, on SQLite and on
PostgreSQL. Devices resend what the dead worker never acknowledged.

EDGEMED_SCALE_PER_DEVICE sets results per device: the suite's CI-sized default is 15 (3,000
results: the kill still lands mid-run, and CI stays inside its time budget); the ward soak (scripts/soak.sh scale) is ``EDGEMED_SCALE_PER_DEVICE=100 pytest
tests/integration/test_fleet_scale.py`` (20,000 results, ~90 s per store).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Mosquitto, start_fleet_server, until

from edgemed.fleet.store import SqlStore, open_store

PG_DSN = os.environ.get("EDGEMED_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
DEVICES = 200
PER_DEVICE = int(os.environ.get("EDGEMED_SCALE_PER_DEVICE", "15"))
SIM = Path(__file__).parents[1] / "sim_fleet.py"

pytestmark = pytest.mark.broker


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(--db value, --pg-schema value): a fresh database either way."""
    if request.param == "sqlite":
        yield str(tmp_path / "fleet.db"), "edgemed"
        return
    import psycopg

    schema = f"edgemed_scale_{uuid.uuid4().hex[:10]}"
    yield PG_DSN, schema
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _count(store: SqlStore) -> int:
    try:
        return store.count_results()
    except Exception:  # SQLite busy under three writers: ask again
        return -1


def test_200_devices_three_workers_one_killed(tmp_path: Path, db: tuple[str, str]) -> None:
    dsn, schema = db
    broker = Mosquitto(tmp_path, extra="max_queued_messages 100000\n")
    broker.start()
    total = DEVICES * PER_DEVICE
    extra = ["--shared-group", "fleet-scale", "--pg-schema", schema]
    fleets = [start_fleet_server(dsn, broker.port, extra=extra)[0] for _ in range(3)]
    devices_dir = tmp_path / "devices"
    devices_dir.mkdir()
    sim_log = (tmp_path / "sim.log").open("w+")
    sim = subprocess.Popen(
        [sys.executable, str(SIM), "--port", str(broker.port), "--workdir", str(devices_dir),
         "--devices", str(DEVICES), "--per-device", str(PER_DEVICE), "--rate", "2000"],
        stdout=subprocess.PIPE, stderr=sim_log, text=True,
    )  # fmt: skip
    store = open_store(dsn, schema=schema)
    try:
        assert sim.stdout is not None
        assert sim.stdout.readline().strip() == "READY", sim_log.seek(0) or sim_log.read()[-3000:]
        t0 = time.monotonic()
        assert until(lambda: _count(store) >= total // 3, 120), "ingest did not progress"
        fleets[0].send_signal(signal.SIGKILL)  # one worker dies with results in flight
        killed_at = _count(store)
        out, _ = sim.communicate(timeout=300)
        elapsed = time.monotonic() - t0
        assert sim.returncode == 0, sim_log.seek(0) or sim_log.read()[-3000:]
        summary = json.loads(out.strip().splitlines()[-1])
        rows = store.results(limit=10**9)
        keys = [(r["device_id"], r["seq"]) for r in rows]
        expected = {(f"sim-{d:04d}", s) for d in range(DEVICES) for s in range(1, PER_DEVICE + 1)}
        missing = len(expected - set(keys))
        duplicates = len(keys) - len(set(keys)) + len(rows) - len({r["result_id"] for r in rows})
        acked = {d["device_id"]: d["acked_seq"] for d in store.devices()}
        conflicts = store.alerts(rule="seq-conflict")
        print(
            f"scale {'postgresql' if dsn.startswith('postgres') else 'sqlite'}: {summary['accepted']} accepted by {DEVICES} devices, "
            f"{len(rows)} stored, {missing} missing, {duplicates} duplicates stored, worker killed "
            f"at {killed_at} stored, all acked in {elapsed:.1f} s"
        )
        assert summary["accepted"] == total and len(rows) == total
        assert missing == 0 and duplicates == 0 and conflicts == []
        assert set(keys) == expected
        assert acked == {f"sim-{d:04d}": PER_DEVICE for d in range(DEVICES)}
    finally:
        sim.kill()
        for fleet in fleets:
            fleet.kill()
            fleet.wait()
        store.close()
        broker.kill()
        sim_log.close()
