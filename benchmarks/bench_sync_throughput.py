"""Durable sync throughput: results/s from ``submit()`` until the fleet has committed and acked,
against raw paho QoS1 to the same mosquitto in the same run, and the CPU each stage costs.

Starts its own mosquitto on a free loopback port; the fleet runs in its own process (SQLite).
Each round runs, interleaved: raw QoS1 one result per message (what a user would pick instead,
with no durability) and 32 per message (the transport's ceiling with the device's batching);
durable with 4 and 16 producers calling ``submit()``, and 4 producers calling
``submit_many()`` with 32 results each. Figures are medians over the rounds. CPU per result:
each process's CPU time over the 4-producer run (device, fleet, broker), and the device and
fleet stages timed alone in this process (thread CPU). Prints JSON.
Usage: python benchmarks/bench_sync_throughput.py [N] [--rounds R]
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from _machine import machine_info
from paho.mqtt.enums import CallbackAPIVersion

import edgemed
from edgemed.config import BrokerConfig, OutboxConfig, SyncConfig
from edgemed.fleet import Ingest, SQLiteStore
from edgemed.fleet.broker import free_port, wait_for_port
from edgemed.fleet.validation import PayloadValidator
from edgemed.sync import Outbox, Publisher
from edgemed.wire import prepare_result, stamp_result

# Recommended broker setting (docs/deployment.md): without it mosquitto's Nagle delays each
# small ack by ~40 ms. EDGEMED_BENCH_MOSQUITTO_CONF overrides it (e.g. "" to compare).
EXTRA_CONF = os.environ.get("EDGEMED_BENCH_MOSQUITTO_CONF", "set_tcp_nodelay true\n").replace(
    "\\n", "\n"
)


def raw_qos1_rate(port: int, payload: bytes, n: int, protocol: str, per_message: int = 1) -> float:
    """Plain paho QoS1 publishes, one result per message, no outbox, no fleet: the broker's
    PUBACK rate, speaking the MQTT version the publisher negotiated (paho parses MQTT 5 acks
    with properties and reason codes; both versions are reported)."""
    version = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=version)
    client.max_inflight_messages_set(256)
    client.connect("127.0.0.1", port)
    client.loop_start()
    message = edgemed.wire.join_results([payload] * per_message)
    t0 = time.perf_counter()
    infos = [client.publish("bench/raw", message, qos=1) for _ in range(n // per_message)]
    for info in infos:
        info.wait_for_publish(30)
    rate = n // per_message * per_message / (time.perf_counter() - t0)
    client.loop_stop()
    client.disconnect()
    return rate


def start_fleet(port: int, db: Path) -> subprocess.Popen[str]:
    """The fleet is its own process, as in deployment."""
    args = ["fleet", "serve", "--broker", f"mqtt://127.0.0.1:{port}", "--db", str(db)]
    fleet = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgemed.cli",
            *args,
            "--port",
            str(free_port()),
            "--token",
            "bench-token-0123456789",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert fleet.stdout is not None and "fleet:" in fleet.stdout.readline()
    time.sleep(0.5)  # subscribed
    return fleet


def latency_at_rate(
    port: int, result: edgemed.EmbeddingResult, work: Path, rate: float = 100.0, n: int = 500
) -> dict[str, float]:
    """submit() -> fleet ack latency per result at a steady ``rate`` (ms percentiles)."""
    acks: list[tuple[float, int]] = []
    fleet = start_fleet(port, work / "fleet-latency.db")
    try:
        outbox = Outbox(OutboxConfig(path=work / "outbox-latency.db", device_id="bench-lat"))
        on_ack = lambda seq: acks.append((time.perf_counter(), seq))  # noqa: E731
        with Publisher(outbox, BrokerConfig(port=port), on_ack=on_ack) as pub:
            while not pub.connected:
                time.sleep(0.01)
            submitted: dict[int, float] = {}
            t0 = time.perf_counter()
            for i in range(n):
                t = time.perf_counter()
                submitted[pub.submit(result)] = t
                time.sleep(max(0.0, t0 + (i + 1) / rate - time.perf_counter()))
            assert pub.wait_drained(60)
        outbox.close()
    finally:
        fleet.terminate()
        fleet.wait(10)
    latencies = sorted(
        (next(at for at, ack in acks if ack >= seq) - t) * 1e3 for seq, t in submitted.items()
    )
    return {
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(0.99 * len(latencies)) - 1], 2),
        "rate_per_s": rate,
        "results": n,
    }


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def durable_rate(
    port: int,
    broker_pid: int,
    result: edgemed.EmbeddingResult,
    n: int,
    work: Path,
    threads: int,
    batch: int = 1,
) -> dict[str, Any]:
    """``threads`` producers on the device (e.g. one per bed a gateway serves), each calling
    ``submit()`` (``batch`` 1) or ``submit_many()`` with ``batch`` results; the fleet in its
    own process. Each call returns only once its results are fsynced. Returns the rate, the
    MQTT version negotiated and each process's CPU ms per result."""
    broker = BrokerConfig(port=port)
    for stale in [*work.glob("fleet.db*"), *work.glob("outbox.db*")]:
        stale.unlink()
    fleet = start_fleet(port, work / "fleet.db")
    try:
        outbox = Outbox(OutboxConfig(path=work / "outbox.db", device_id="bench-dev"))
        with Publisher(outbox, broker, SyncConfig(inflight_window=256)) as pub:
            while not pub.connected:
                time.sleep(0.01)
            calls = n // threads // batch

            def produce() -> None:
                for _ in range(calls):
                    if batch == 1:
                        pub.submit(result)
                    else:
                        pub.submit_many([result] * batch)

            cpu0 = (time.process_time(), process_cpu_s(fleet.pid), process_cpu_s(broker_pid))
            t0 = time.perf_counter()
            producers = [threading.Thread(target=produce) for _ in range(threads)]
            for t in producers:
                t.start()
            for t in producers:
                t.join()
            if not pub.wait_drained(120):
                raise SystemExit("results were not all acknowledged within 120 s")
            elapsed = time.perf_counter() - t0
            cpu1 = (time.process_time(), process_cpu_s(fleet.pid), process_cpu_s(broker_pid))
            protocol = pub.protocol or "?"
            messages, published = pub.published
        outbox.close()
    finally:
        fleet.terminate()
        fleet.wait(10)
    sent = calls * batch * threads
    stored = SQLiteStore(work / "fleet.db").count_results()
    assert stored == sent, f"fleet stored {stored} of {sent}"
    cpu_ms = {
        name: round((after - before) / sent * 1e3, 3)
        for name, before, after in zip(("device", "fleet", "broker"), cpu0, cpu1, strict=True)
    }
    return {
        "rate": sent / elapsed,
        "protocol": protocol,
        "cpu_ms_per_result": cpu_ms,
        "results_per_message": published / max(messages, 1),
        "results_per_commit": sent / max(outbox.commits, 1),
    }


def fdatasync_us(work: Path, n: int = 300) -> float:
    """Median fdatasync of a 4 KiB append on the disk the outbox is on: the floor of every
    durable commit (SQLite's WAL commit with synchronous=FULL is one such write and sync)."""
    times = []
    fd = os.open(work / "fsync.probe", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(n):
            os.write(fd, b"x" * 4096)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
    return round(statistics.median(times) * 1e6, 1)


def stage_costs(result: edgemed.EmbeddingResult, work: Path, n: int = 2000) -> dict[str, float]:
    """Thread-CPU microseconds per result of each stage, timed alone in this process."""

    def per_result(run: Callable[[], object], count: int) -> float:
        t0 = time.thread_time()
        run()
        return round((time.thread_time() - t0) / count * 1e6, 1)

    encode = per_result(
        lambda: [prepare_result(result, device_id="d", clock_synced=False) for _ in range(n)], n
    )
    unstamped = prepare_result(result, device_id="d", clock_synced=False)
    payloads = [
        stamp_result(unstamped, seq=i + 1, boot_id="b", lowest_unacked_seq=i + 1, epoch="e")
        for i in range(n)
    ]
    outbox = Outbox(OutboxConfig(path=work / "stages-outbox.db", device_id="d"))
    one = per_result(
        lambda: [outbox.put(lambda s, b, lo: payloads[0]) for _ in range(n // 4)], n // 4
    )
    many = per_result(
        lambda: [outbox.put_many([lambda s, b, lo: payloads[0]] * 32) for _ in range(n // 32)],
        n // 32 * 32,
    )
    outbox.close()
    validator = PayloadValidator()
    validate = per_result(lambda: [validator.result(p, topic_device_id="d") for p in payloads], n)
    store = SQLiteStore(work / "stages-fleet.db")
    ingest = Ingest(store, BrokerConfig())
    ingest._send_ack = lambda device_id, ack: None  # type: ignore[method-assign]  # no broker
    batches = [
        [("edgemed/v1/d/results", p, time.monotonic()) for p in payloads[i : i + 32]]
        for i in range(0, n, 32)
    ]
    ingest_us = per_result(lambda: [ingest._store_batch(b) for b in batches], n)
    store.close()
    return {
        "device_encode_and_contract_us": encode,
        "device_outbox_commit_us_submit": one,
        "device_outbox_commit_us_submit_many_32": many,
        "fleet_validate_us": validate,
        "fleet_validate_store_commit_us_batch_32": ingest_us,
    }


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 4000
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 5
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    result = edgemed.load("clinical-text-minilm")("chest pain radiating to the left arm")
    runs: dict[str, list[float]] = {}
    cpu: list[dict[str, float]] = []
    shape: list[dict[str, float]] = []  # results per message and per commit, 4 producers
    protocol = "?"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port = free_port()
        (work / "m.conf").write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\n{EXTRA_CONF}"
        )
        broker = subprocess.Popen([binary, "-c", str(work / "m.conf")], stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port, 10)
            payload = edgemed.wire.encode_result(
                result, device_id="x", seq=1, boot_id="b", lowest_unacked_seq=1, clock_synced=False
            )
            for _ in range(rounds):
                for name, run in (
                    ("raw_5_unbatched", lambda: raw_qos1_rate(port, payload, n, "5")),
                    (
                        "durable_4_producers",
                        lambda: durable_rate(port, broker.pid, result, n, work, 4),
                    ),
                    ("raw_311_unbatched", lambda: raw_qos1_rate(port, payload, n, "3.1.1")),
                    (
                        "durable_16_producers",
                        lambda: durable_rate(port, broker.pid, result, n, work, 16),
                    ),
                    ("raw_5_32_per_message", lambda: raw_qos1_rate(port, payload, n * 4, "5", 32)),
                    (
                        "durable_4_producers_submit_many_32",
                        lambda: durable_rate(port, broker.pid, result, n, work, 4, batch=32),
                    ),
                ):
                    out = run()
                    if isinstance(out, dict):
                        protocol = out["protocol"]
                        if name == "durable_4_producers":
                            cpu.append(out["cpu_ms_per_result"])
                            shape.append(
                                {k: out[k] for k in ("results_per_message", "results_per_commit")}
                            )
                        out = out["rate"]
                    runs.setdefault(name, []).append(out)
            stages = stage_costs(result, work)
            latency = latency_at_rate(port, result, work)
            fsync = fdatasync_us(work)
        finally:
            broker.kill()
    median = {name: round(statistics.median(rates)) for name, rates in runs.items()}
    raw = median["raw_5_unbatched" if protocol == "5" else "raw_311_unbatched"]
    print(
        json.dumps(
            {
                "benchmark": "sync_throughput",
                "machine": machine_info(),
                "results_per_run": n,
                "rounds": rounds,
                "payload_bytes": len(payload),
                "mqtt_version": protocol,
                "results_per_s_median": median,
                "results_per_s_runs": {k: [round(r) for r in v] for k, v in runs.items()},
                "baseline": f"raw paho QoS1 publish->PUBACK, MQTT {protocol}, one result per message",
                "ratio_to_raw_unbatched": {
                    k: round(v / raw, 3) for k, v in median.items() if k.startswith("durable")
                },
                "cpu_ms_per_result_durable_4_producers": {
                    k: round(statistics.median(c[k] for c in cpu), 3) for k in cpu[0]
                },
                "stage_cpu_us_per_result": stages,
                "durable_4_producers_batching": {
                    k: round(statistics.median(s[k] for s in shape), 2) for k in shape[0]
                },
                "fdatasync_4kib_us_p50": fsync,
                "submit_to_ack_latency": latency,
                "target": {"ratio_4_producers": 0.7, "p99_ms_at_100_per_s": 10},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
