"""Durable sync throughput: results/s from ``submit()`` until the fleet has committed and acked,
against the raw paho QoS1 publish -> PUBACK rate to the same mosquitto in the same run.

Starts its own mosquitto on a free loopback port. Prints JSON. The issue's target is
>= 2,000 results/s and >= 30 % of the raw rate. Usage: python benchmarks/bench_sync_throughput.py [N]
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
from pathlib import Path

import paho.mqtt.client as mqtt
from _machine import machine_info
from paho.mqtt.enums import CallbackAPIVersion

import edgemed
from edgemed.config import BrokerConfig, OutboxConfig, SyncConfig
from edgemed.fleet import SQLiteStore
from edgemed.fleet.broker import free_port, wait_for_port
from edgemed.sync import Outbox, Publisher

# Recommended broker setting (docs/deployment.md): without it mosquitto's Nagle delays each
# small ack by ~40 ms. EDGEMED_BENCH_MOSQUITTO_CONF overrides it (e.g. "" to compare).
EXTRA_CONF = os.environ.get("EDGEMED_BENCH_MOSQUITTO_CONF", "set_tcp_nodelay true\n").replace(
    "\\n", "\n"
)


def raw_qos1_rate(port: int, payload: bytes, n: int, protocol: str) -> float:
    """Plain paho QoS1 publishes, one result per message, no outbox, no fleet: the broker's
    PUBACK rate, speaking the MQTT version the publisher negotiated (paho parses MQTT 5 acks
    with properties and reason codes; both versions are reported)."""
    version = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=version)
    client.max_inflight_messages_set(256)
    client.connect("127.0.0.1", port)
    client.loop_start()
    t0 = time.perf_counter()
    infos = [client.publish("bench/raw", payload, qos=1) for _ in range(n)]
    for info in infos:
        info.wait_for_publish(30)
    rate = n / (time.perf_counter() - t0)
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


def durable_rate(
    port: int, result: edgemed.EmbeddingResult, n: int, work: Path, threads: int
) -> tuple[float, str]:
    """``threads`` producers on the device (e.g. one per bed a gateway serves); the fleet in
    its own process. Each submit returns only once its result is fsynced, so the rate is set
    by how many results share one group commit (at most ``threads``). Returns (rate, the MQTT
    version the publisher negotiated)."""
    broker = BrokerConfig(port=port)
    for stale in work.glob("fleet.db*"):
        stale.unlink()
    for stale in work.glob("outbox.db*"):
        stale.unlink()
    fleet = start_fleet(port, work / "fleet.db")
    try:
        outbox = Outbox(OutboxConfig(path=work / "outbox.db", device_id="bench-dev"))
        with Publisher(outbox, broker, SyncConfig(inflight_window=256)) as pub:
            while not pub.connected:
                time.sleep(0.01)
            per_thread = n // threads
            t0 = time.perf_counter()
            producers = [
                threading.Thread(target=lambda: [pub.submit(result) for _ in range(per_thread)])
                for _ in range(threads)
            ]
            for t in producers:
                t.start()
            for t in producers:
                t.join()
            if not pub.wait_drained(120):
                raise SystemExit("results were not all acknowledged within 120 s")
            rate = per_thread * threads / (time.perf_counter() - t0)
            protocol = pub.protocol or "?"
        outbox.close()
    finally:
        fleet.terminate()
        fleet.wait(10)
    stored = SQLiteStore(work / "fleet.db").count_results()
    assert stored == n // threads * threads, f"fleet stored {stored} of {n // threads * threads}"
    return rate, protocol


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    result = edgemed.load("clinical-text-minilm")("chest pain radiating to the left arm")
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
            raw = {v: raw_qos1_rate(port, payload, n, v) for v in ("3.1.1", "5")}
            runs = {t: durable_rate(port, result, n, work, t) for t in (4, 16)}
            protocol = runs[16][1]
            durable = {t: rate for t, (rate, _) in runs.items()}
            latency = latency_at_rate(port, result, work)
        finally:
            broker.kill()
    print(
        json.dumps(
            {
                "benchmark": "sync_throughput",
                "machine": machine_info(),
                "results": n,
                "payload_bytes": len(payload),
                "durable_results_per_s": {f"{t}_producers": round(r) for t, r in durable.items()},
                "mqtt_version": protocol,
                "baseline": f"raw paho QoS1 publish->PUBACK, MQTT {protocol}",
                "baseline_per_s": round(raw[protocol]),
                "raw_per_s_by_mqtt_version": {v: round(r) for v, r in raw.items()},
                "ratio": {
                    f"{t}_producers": round(r / raw[protocol], 3) for t, r in durable.items()
                },
                "submit_to_ack_latency": latency,
                "target": {"durable_per_s": 2000, "ratio": 0.30},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
