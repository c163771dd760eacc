"""Fleet ingest throughput: results/s committed (and acked) by 1 and 3 ingest workers, on SQLite
and PostgreSQL, against the raw rate at which one plain subscriber receives the same messages
from the same mosquitto in the same run (the broker's delivery ceiling on this machine).

Each worker is its own ``edgemed fleet serve`` process on one ``$share`` group, as deployed.
200 device ids; real result payloads (the bundled text model's output, ~1.6 kB). A loader
publishes them QoS1 as fast as the broker takes them. Reports the receive->commit latency
percentiles each worker measured. The issue's target: >= 3,000 results/s with 3 workers on
PostgreSQL on this 2-core machine.

Usage: python benchmarks/bench_fleet_ingest.py [N_RESULTS]   (default 20000)
Env: EDGEMED_TEST_POSTGRES (default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from _machine import machine_info
from paho.mqtt.enums import CallbackAPIVersion

import edgemed
from edgemed.fleet.broker import free_port, wait_for_port
from edgemed.fleet.store import open_store
from edgemed.wire import encode_result

PG_DSN = os.environ.get("EDGEMED_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
TOKEN = "bench-token-0123456789"
DEVICES = 200


def payloads(n: int) -> list[tuple[str, bytes]]:
    with edgemed.load("clinical-text-minilm", threads=1) as model:
        results = [model(f"observation note {i}") for i in range(8)]
    out = []
    for i in range(n):
        device, seq = f"bench-{i % DEVICES:04d}", i // DEVICES + 1
        raw = encode_result(
            results[i % len(results)], device_id=device, seq=seq, boot_id="b",
            lowest_unacked_seq=seq, clock_synced=True,
        )  # fmt: skip
        out.append((f"edgemed/v1/{device}/results", raw))
    return out


def publish_all(port: int, messages: list[tuple[str, bytes]], rate: float | None = None) -> float:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-loader-{uuid.uuid4().hex[:6]}"
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    t0 = time.perf_counter()
    infos = []
    for i, (topic, raw) in enumerate(messages):
        infos.append(client.publish(topic, raw, qos=1))
        if rate:
            time.sleep(max(0.0, t0 + (i + 1) / rate - time.perf_counter()))
    for info in infos:
        info.wait_for_publish(120)
    elapsed = time.perf_counter() - t0
    client.loop_stop()
    client.disconnect()
    return elapsed


def raw_receive_rate(port: int, messages: list[tuple[str, bytes]]) -> float:
    """One plain QoS1 subscriber that only counts: the broker's delivery ceiling here."""
    got = threading.Event()
    count = [0]
    first: list[float] = []

    def on_message(_c: Any, _u: Any, _m: Any) -> None:
        if not first:
            first.append(time.perf_counter())
        count[0] += 1
        if count[0] == len(messages):
            got.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw-sub")
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.subscribe("edgemed/v1/+/results", qos=1)
    sub.loop_start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    publish_all(port, messages)
    got.wait(120)
    rate = count[0] / (time.perf_counter() - t0)
    sub.loop_stop()
    sub.disconnect()
    return rate


def start_fleets(
    port: int, db: str, schema: str, workers: int
) -> tuple[list[subprocess.Popen[str]], list[int]]:
    """``workers`` ``edgemed fleet serve`` processes on one ``$share`` group, as deployed (alert
    rules that would fire on the load's backlog turned off), and their API ports."""
    api_ports = [free_port() for _ in range(workers)]
    procs = []
    for api_port in api_ports:
        args = ["fleet", "serve", "--broker", f"mqtt://127.0.0.1:{port}", "--db", db,
                "--pg-schema", schema, "--port", str(api_port), "--token", TOKEN,
                "--shared-group", "bench", "--backlog-threshold", str(10**9)]  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgemed.cli", *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().startswith("fleet:")
        procs.append(proc)
    return procs, api_ports


def run_fleet(
    port: int,
    db: str,
    schema: str,
    workers: int,
    messages: list[tuple[str, bytes]],
    rate: float | None = None,
) -> dict[str, Any]:
    procs, api_ports = start_fleets(port, db, schema, workers)
    store = open_store(db, schema=schema)
    try:
        time.sleep(1.5)  # subscriptions in place
        t0 = time.perf_counter()
        loader = threading.Thread(target=publish_all, args=(port, messages, rate))
        loader.start()
        while store.count_results() < len(messages):
            if time.perf_counter() - t0 > 300:
                raise RuntimeError(f"ingest stalled at {store.count_results()}")
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        loader.join()
        health = []
        for api_port in api_ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/api/health", timeout=10) as r:
                health.append(json.loads(r.read())["ingest"])
    finally:
        store.close()
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    per_worker = [h["counts"]["stored"] for h in health]
    return {
        "offered_per_s": rate or "max",
        "workers": workers,
        "results": len(messages),
        "seconds": round(elapsed, 2),
        "results_per_s": round(len(messages) / elapsed),
        "stored_per_worker": per_worker,
        "commit_latency_ms_p50": [h.get("commit_latency_ms", {}).get("p50") for h in health],
        "commit_latency_ms_p99": [h.get("commit_latency_ms", {}).get("p99") for h in health],
    }


def _drop(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    messages = payloads(n)
    work = Path(tempfile.mkdtemp(prefix="edgemed-bench-ingest-"))
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
        "max_queued_messages 1000000\nmax_inflight_messages 1000\npersistence false\n"
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=(work / "mq.log").open("wb")
    )
    assert wait_for_port(port, 10)
    try:
        raw = [raw_receive_rate(port, messages) for _ in range(3)]
        runs = []
        for backend in ("sqlite", "postgresql"):
            for workers in (1, 3):
                schema = f"bench_{uuid.uuid4().hex[:8]}"
                db = str(work / f"{schema}.db") if backend == "sqlite" else PG_DSN
                run = run_fleet(port, db, schema, workers, messages)
                run["store"] = backend
                runs.append(run)
                if workers == 3:  # latency below saturation: a steady 1,000 results/s
                    schema2 = f"bench_{uuid.uuid4().hex[:8]}"
                    db2 = str(work / f"{schema2}.db") if backend == "sqlite" else PG_DSN
                    paced = run_fleet(port, db2, schema2, workers, messages[: n // 4], rate=1000.0)
                    paced["store"] = backend
                    runs.append(paced)
                    if backend == "postgresql":
                        _drop(schema2)
                if backend == "postgresql":
                    _drop(schema)
    finally:
        broker.kill()
        shutil.rmtree(work, ignore_errors=True)
    raw_rate = statistics.median(raw)
    for run in runs:
        run["ratio_vs_raw_subscriber"] = round(run["results_per_s"] / raw_rate, 3)
    print(json.dumps({
        "benchmark": "fleet_ingest",
        "machine": machine_info(),
        "baseline": {"name": "one plain QoS1 subscriber counting messages", "results_per_s_median": round(raw_rate),
                     "runs": [round(r) for r in raw]},
        "runs": runs,
        "target": "3 workers on PostgreSQL >= 3000 results/s",
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
