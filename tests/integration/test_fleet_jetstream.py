"""The fleet on a 3-node NATS JetStream cluster, started from deploy/nats/: devices speak MQTT to
the cluster's MQTT listeners, two `edgemed fleet serve --jetstream` processes pull from one
durable consumer into one PostgreSQL store. The stream's leader node is SIGKILLed while a
backlog of >= 100 unacknowledged results is queued, and one fleet process is SIGKILLed while it
ingests: every result a device was told is stored must be stored exactly once.

EDGEMED_JETSTREAM_SOAK=1 runs a bigger variant (more devices, more results each).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_client import call
from conftest import until
from engine_suite import kill_all, lost_and_duplicate, pg_schema, stored_rows, submitted_seqs
from nats_cluster import NATS_SERVER, NatsCluster
from stores import PG_DSN

from edgemed.fleet.broker import free_port, wait_for_port
from edgemed.fleet.jetstream import JetStreamConfig, ensure_stream
from edgemed.fleet.store import PostgresStore

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]
pytest.importorskip("nats", reason="pip install 'edgemed[fleet-nats]'")
if not Path(NATS_SERVER).exists():
    pytest.skip("needs the nats-server binary", allow_module_level=True)

SOAK = os.environ.get("EDGEMED_JETSTREAM_SOAK") == "1"
# The devices must still be publishing when both fleet processes have started: with 400 a
# device (13 s), one CI run saw the first process drain the whole stream before the second
# took any work (the fleet's validation had become a third cheaper).
DEVICES, PER_DEVICE, RATE = (9, 2000, 100.0) if SOAK else (4, 800, 30.0)
ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "tests" / "sim_device.py"
TOKEN = "jetstream-test-token-0123456789"
CONFIG = JetStreamConfig(servers=("unused",), ack_wait_s=5.0)  # the test's stream + consumer


@pytest.fixture
def schema() -> Iterator[str]:
    with pg_schema() as name:
        yield name


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    nats = NatsCluster(tmp_path)
    nats.start_all()
    try:
        yield nats
    finally:
        nats.stop()


def _fleet(
    cluster: NatsCluster, schema: str, mqtt_port: int, log: Path, api_port: int
) -> subprocess.Popen[Any]:
    """One `edgemed fleet serve --jetstream` process, as docs/fleet.md starts it."""
    return subprocess.Popen(
        [sys.executable, "-m", "edgemed.cli", "fleet", "serve", "--jetstream", cluster.urls,
         "--broker", f"mqtt://127.0.0.1:{mqtt_port}", "--db", PG_DSN, "--pg-schema", schema,
         "--port", str(api_port), "--token", TOKEN, "--workers", "1"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def _device(i: int, port: int, tmp_path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(SIM), "--outbox", str(tmp_path / f"dev{i}.db"), "--port", str(port),
         "--count", str(PER_DEVICE), "--log", str(tmp_path / f"dev{i}.log"),
         "--rate", str(RATE), "--device-id", f"bed-js-{i}"],
        stdout=subprocess.PIPE, stderr=(tmp_path / f"dev{i}.err").open("w"), text=True,
    )  # fmt: skip
    return proc


async def _backlog(js: Any) -> tuple[int, str]:
    """(result messages in the work-queue stream, i.e. not yet acknowledged; its leader)."""
    info = await js.stream_info(CONFIG.stream, subjects_filter="edgemed.v1.*.results")
    subjects = info.state.subjects or {}
    return sum(subjects.values()), info.cluster.leader


def _leader(cluster: NatsCluster) -> str:
    """The stream's leader now ("" while none answers)."""
    try:
        return cluster.run(_backlog, timeout=3)[1] or ""
    except Exception:
        return ""


def _stored_by(api_port: int) -> int:
    """Results a fleet process's workers stored, from its /api/health (0 while it starts)."""
    with contextlib.suppress(OSError):
        status, body = call(f"http://127.0.0.1:{api_port}", "/api/health")
        if status == 200:
            assert body["broker"]["subscription"] == ["jetstream"]
            return int(body["ingest"]["counts"]["stored"])
    return 0


def test_node_and_worker_kill_lose_nothing_and_store_once(
    tmp_path: Path, cluster: NatsCluster, schema: str
) -> None:
    async def prepare(js: Any) -> None:
        await ensure_stream(js, CONFIG)  # as the workers would; here before any device

    cluster.run(prepare)
    PostgresStore(PG_DSN, schema=schema).close()  # the tables, before two processes open them
    started = time.monotonic()
    devices = [_device(i, cluster.nodes[i % 3].mqtt_port, tmp_path) for i in range(DEVICES)]
    fleets: list[subprocess.Popen[Any]] = []
    try:
        for dev in devices:
            assert dev.stdout is not None and dev.stdout.readline().strip() == "READY"
        # No fleet yet: results queue up in JetStream, PUBACKed but unacknowledged by the fleet.
        assert until(lambda: cluster.run(_backlog)[0] >= 100, 30), cluster.run(_backlog)
        backlog, leader = cluster.run(_backlog)
        victim = cluster.index(leader)
        cluster.kill(victim)  # the stream's leader, mid-stream: devices keep publishing
        killed_at = time.monotonic()
        survivor = cluster.nodes[(victim + 1) % 3]
        api = [free_port() for _ in range(2)]
        fleets = [_fleet(cluster, schema, survivor.mqtt_port, tmp_path / f"fleet{k}.log", api[k])
                  for k in range(2)]  # fmt: skip
        # Restarted once the other two have a new leader: its devices reconnect to it, and it
        # catches up from the others.
        assert until(lambda: _leader(cluster) not in ("", leader), 20)
        time.sleep(1.0)
        cluster.start(victim)
        total = DEVICES * PER_DEVICE
        assert until(lambda: sum(map(len, stored_rows(schema).values())) >= total // 3, 60)
        # Both processes share the work queue: each has stored part of the results.
        assert until(lambda: all(_stored_by(port) > 0 for port in api), 30), [
            call(f"http://127.0.0.1:{port}", "/api/health") for port in api
        ]
        fleets[1].send_signal(signal.SIGKILL)  # one fleet process, while it ingests
        fleets[1].wait(timeout=10)
        stored_at_worker_kill = sum(map(len, stored_rows(schema).values()))
        assert stored_at_worker_kill < total, "the fleet process was killed after the end"
        codes = [dev.wait(timeout=150) for dev in devices]
        elapsed = time.monotonic() - started
        assert codes == [0] * DEVICES, [p.read_text() for p in tmp_path.glob("dev*.err")]
        lost, duplicate = lost_and_duplicate(schema, tmp_path, DEVICES, PER_DEVICE, "bed-js")
        print(
            f"JetStream: {total} results from {DEVICES} devices; backlog {backlog} at the kill of "
            f"leader {leader} ({killed_at - started:.1f} s in); {stored_at_worker_kill} stored "
            f"at the fleet kill; all acknowledged after {elapsed:.1f} s; lost {lost}, "
            f"duplicate {duplicate}"
        )
        assert backlog >= 100
        assert lost == 0 and duplicate == 0
        assert sum(map(len, stored_rows(schema).values())) == total
    finally:
        kill_all([*devices, *fleets])


def _shipped_ports() -> list[int]:
    ports = []
    for env in sorted((ROOT / "deploy" / "nats").glob("node-*.env")):
        for line in env.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.endswith("_PORT"):
                ports.append(int(value))
    return ports


def test_documented_commands_start_the_cluster_and_two_fleets(tmp_path: Path, schema: str) -> None:
    """docs/fleet.md's commands as written: deploy/nats/run-local-cluster.sh with the shipped
    node-N.env ports, then two `edgemed fleet serve --jetstream` processes; a device's results
    are stored once each."""
    ports = _shipped_ports()
    assert len(ports) == 9
    for port in ports:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                pytest.skip(f"port {port} of deploy/nats/node-*.env is in use here")
    script = ROOT / "deploy" / "nats" / "run-local-cluster.sh"
    nodes = subprocess.Popen(
        [str(script), str(tmp_path / "nats-data")],
        env={**os.environ, "NATS_SERVER": NATS_SERVER},
        stdout=(tmp_path / "nats.log").open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    urls = "nats://127.0.0.1:14222,nats://127.0.0.1:14223,nats://127.0.0.1:14224"
    fleets: list[subprocess.Popen[Any]] = []
    try:
        assert all(wait_for_port(p, 20) for p in (14222, 14223, 14224, 11883, 11884, 11885))
        PostgresStore(PG_DSN, schema=schema).close()
        for k, mqtt_port in enumerate((11883, 11884)):
            fleets.append(subprocess.Popen(
                [sys.executable, "-m", "edgemed.cli", "fleet", "serve", "--jetstream", urls,
                 "--broker", f"mqtt://127.0.0.1:{mqtt_port}", "--db", PG_DSN,
                 "--pg-schema", schema, "--port", str(free_port()), "--token", TOKEN],
                stdout=subprocess.PIPE, stderr=(tmp_path / f"fleet{k}.log").open("wb"),
                text=True,
            ))  # fmt: skip
        for fleet in fleets:
            assert fleet.stdout is not None and fleet.stdout.readline().startswith("fleet:")
        device = subprocess.run(
            [sys.executable, str(SIM), "--outbox", str(tmp_path / "d.db"), "--port", "11885",
             "--count", "60", "--log", str(tmp_path / "dev0.log"), "--device-id", "bed-js-0"],
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        assert device.returncode == 0, device.stderr[-2000:]
        assert sorted(stored_rows(schema)["bed-js-0"]) == sorted(submitted_seqs(tmp_path, 0))
    finally:
        for fleet in fleets:
            fleet.terminate()
            fleet.wait(timeout=15)
        os.killpg(nodes.pid, signal.SIGTERM)
        nodes.wait(timeout=20)
