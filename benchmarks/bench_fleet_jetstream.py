"""Fleet ingest from a 3-node NATS JetStream cluster: results/s stored by 1 and 2
``edgemed fleet serve --jetstream`` processes (one worker each) into PostgreSQL.

The cluster is started from deploy/nats/edgemed-nats.conf on free loopback ports (as
tests/integration/test_fleet_jetstream.py does). A loader publishes N real result payloads
(the bundled text model's output, 200 device ids) QoS1 to one node's MQTT listener while no
fleet runs, so they wait in the work-queue stream; then the fleet processes start and drain it.
The rate is taken between the first and the last commit (the store's received_at), so process
start-up is not counted; the fleet processes' CPU time per result (from /proc, from the first
commit on) too.

Usage: python benchmarks/bench_fleet_jetstream.py [N_RESULTS]   (default 6000)
Env: EDGEMED_TEST_POSTGRES (default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from _machine import machine_info
from bench_fleet_ingest import PG_DSN, TOKEN, payloads, publish_all

from edgemed.fleet.broker import free_port
from edgemed.fleet.jetstream import JetStreamConfig, ensure_stream
from edgemed.fleet.store import PostgresStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from nats_cluster import NatsCluster  # the tests' cluster, same files

CONFIG = JetStreamConfig(servers=("unused",))


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _queued(cluster: NatsCluster) -> int:
    async def count(js: Any) -> int:
        info = await js.stream_info(CONFIG.stream, subjects_filter="edgemed.v1.*.results")
        return sum((info.state.subjects or {}).values())

    return cluster.run(count)


def _commits(schema: str) -> tuple[int, float, float]:
    with psycopg.connect(PG_DSN) as db:
        row = db.execute(
            f"SELECT COUNT(*), MIN(received_at), MAX(received_at) FROM {schema}.results"
        ).fetchone()
    assert row is not None
    return int(row[0]), float(row[1] or 0.0), float(row[2] or 0.0)


def run(workers: int, messages: list[tuple[str, bytes]]) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="edgemed-bench-js-"))
    cluster = NatsCluster(work)
    cluster.start_all()
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    procs: list[subprocess.Popen[str]] = []
    try:
        cluster.run(lambda js: ensure_stream(js, CONFIG))
        loading = time.monotonic()
        publish_all(cluster.nodes[0].mqtt_port, messages)
        while _queued(cluster) < len(messages) and time.monotonic() < loading + 120:
            time.sleep(0.2)
        queued, loaded_s = _queued(cluster), time.monotonic() - loading
        PostgresStore(PG_DSN, schema=schema).close()
        for k in range(workers):
            args = ["fleet", "serve", "--jetstream", cluster.urls, "--broker",
                    f"mqtt://127.0.0.1:{cluster.nodes[k % 3].mqtt_port}", "--db", PG_DSN,
                    "--pg-schema", schema, "--port", str(free_port()), "--token", TOKEN,
                    "--backlog-threshold", str(10**9)]  # fmt: skip
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "edgemed.cli", *args],
                stdout=subprocess.PIPE, stderr=(work / f"fleet{k}.log").open("w"), text=True,
            ))  # fmt: skip
        t0 = time.perf_counter()
        while _commits(schema)[0] == 0 and time.perf_counter() - t0 < 60:
            time.sleep(0.02)
        counted = _commits(schema)[0]  # CPU from the first commit on: start-up not counted
        cpu0 = [_cpu_s(p.pid) for p in procs]
        while _commits(schema)[0] < len(messages):
            if time.perf_counter() - t0 > 300:
                raise RuntimeError(f"ingest stalled at {_commits(schema)[0]}")
            time.sleep(0.1)
        wall = time.perf_counter() - t0
        cpu = sum(_cpu_s(p.pid) for p in procs) - sum(cpu0)
        stored, first, last = _commits(schema)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
        with psycopg.connect(PG_DSN, autocommit=True) as db:
            db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return {
        "workers": workers,
        "results": stored,
        "queued_before_start": queued,
        "load_s_mqtt_qos1_to_one_node": round(loaded_s, 2),
        "first_to_last_commit_s": round(last - first, 2),
        "results_per_s": round((stored - 1) / (last - first)),
        "wall_s_including_start": round(wall, 2),
        "fleet_cpu_ms_per_result": round(cpu * 1000.0 / (stored - counted), 3),
    }


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 6000
    messages = payloads(n)
    runs = [run(workers, messages) for workers in (1, 2)]
    print(json.dumps({
        "benchmark": "fleet_jetstream",
        "machine": machine_info(),
        "cluster": "3 nats-server nodes (deploy/nats/edgemed-nats.conf), R3 work-queue stream",
        "store": "PostgreSQL",
        "runs": runs,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
