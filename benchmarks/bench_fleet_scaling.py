"""Fleet ingest scaling: results/s committed to PostgreSQL by 1, 2 and 3 worker processes (one
``$share`` group, as deployed), with the CPU time each stage spent per result, so a reader can
project what a bigger machine or a cluster needs (docs/fleet.md, "Sizing").

Stages and how their CPU is counted (/proc/<pid>/stat utime+stime, before and after a run):
the loader (this whole process: publishing, paho's network thread, polling the store for the
end), the broker (mosquitto),
the fleet workers (every ``edgemed fleet serve`` process), PostgreSQL (every process of the
server's user, i.e. the backends serving the fleet plus its background writers). Broker and
loader are pinned to CPU 0 (``taskset``, reported); workers and PostgreSQL are not pinned.
Each worker count runs ``--rounds`` times, interleaved (1, 2, 3, 1, 2, 3, ...); medians.

Usage: python benchmarks/bench_fleet_scaling.py [N_RESULTS] [--rounds R]   (default 12000, 3)
Env: EDGEMED_TEST_POSTGRES (default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psycopg
from _machine import machine_info
from bench_fleet_ingest import PG_DSN, payloads, publish_all, start_fleets

from edgemed.fleet.broker import free_port, wait_for_port
from edgemed.fleet.store import open_store

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def postgres_pids() -> list[int]:
    try:
        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        return []
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def total_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:  # a backend that ended: its time is lost to both readings
            continue
    return total


def run(
    port: int, broker_pid: int, workers: int, messages: list[tuple[str, bytes]]
) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    procs, api_ports = start_fleets(port, PG_DSN, schema, workers)
    store = open_store(PG_DSN, schema=schema)

    try:
        time.sleep(1.5)  # subscriptions in place
        pg = postgres_pids()
        before = {
            "loader": cpu_seconds(os.getpid()),
            "broker": cpu_seconds(broker_pid),
            "fleet": total_cpu([p.pid for p in procs]),
            "postgres": total_cpu(pg),
        }
        t0 = time.perf_counter()
        loader = threading.Thread(target=publish_all, args=(port, messages))
        loader.start()
        while store.count_results() < len(messages):
            if time.perf_counter() - t0 > 300:
                raise RuntimeError(f"ingest stalled at {store.count_results()}")
            time.sleep(0.02)
        elapsed = time.perf_counter() - t0
        loader.join()
        after = {
            "loader": cpu_seconds(os.getpid()),
            "broker": cpu_seconds(broker_pid),
            "fleet": total_cpu([p.pid for p in procs]),
            "postgres": total_cpu(pg),
        }
        stored = []
        for api_port in api_ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/api/health", timeout=10) as r:
                stored.append(json.loads(r.read())["ingest"]["counts"]["stored"])
    finally:
        store.close()
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    n = len(messages)
    cpu_ms = {k: round((after[k] - before[k]) * 1000 / n, 4) for k in before}
    return {
        "workers": workers,
        "results": n,
        "seconds": round(elapsed, 3),
        "results_per_s": round(n / elapsed),
        "stored_per_worker": stored,
        "cpu_ms_per_result": cpu_ms,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=12_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    messages = payloads(args.n)
    work = Path(tempfile.mkdtemp(prefix="edgemed-bench-scaling-"))
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
        "max_queued_messages 1000000\nmax_inflight_messages 1000\npersistence false\n"
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    pinned = shutil.which("taskset") is not None
    broker = subprocess.Popen(
        [*(["taskset", "-c", "0"] if pinned else []), binary, "-c", str(conf)],
        stdout=subprocess.DEVNULL, stderr=(work / "mq.log").open("wb"),
    )  # fmt: skip
    if pinned:
        os.sched_setaffinity(0, {0})  # the loader thread (and this process's waiting)
    assert wait_for_port(port, 10)
    runs: list[dict[str, Any]] = []
    try:
        for _ in range(args.rounds):
            for workers in (1, 2, 3):
                runs.append(run(port, broker.pid, workers, messages))
    finally:
        broker.kill()
        shutil.rmtree(work, ignore_errors=True)
    summary = []
    for workers in (1, 2, 3):
        mine = [r for r in runs if r["workers"] == workers]
        stages = mine[0]["cpu_ms_per_result"].keys()
        summary.append({
            "workers": workers,
            "results_per_s_median": round(statistics.median(r["results_per_s"] for r in mine)),
            "results_per_s_runs": [r["results_per_s"] for r in mine],
            "cpu_ms_per_result_median": {
                s: round(statistics.median(r["cpu_ms_per_result"][s] for r in mine), 4)
                for s in stages
            },
        })  # fmt: skip
    print(json.dumps({
        "benchmark": "fleet_scaling",
        "machine": machine_info(),
        "conditions": {
            "store": "PostgreSQL on 127.0.0.1 (same machine)",
            "pinned": "broker and loader on CPU 0 (taskset)" if pinned else "nothing pinned",
            "workers_pinned": False, "device_ids": 200, "payload": "text-embedding results",
            "loader": "one MQTT connection, QoS 1, as fast as the broker accepts",
            "rounds": args.rounds, "order": "interleaved 1, 2, 3 workers per round",
        },
        "summary": summary,
        "runs": runs,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
