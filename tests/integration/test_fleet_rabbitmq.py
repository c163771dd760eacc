"""The fleet on a 3-node RabbitMQ cluster, started from deploy/rabbitmq/: devices speak MQTT to
the nodes' MQTT plugin listeners, two `edgemed fleet serve --amqp` processes consume one quorum
queue into one PostgreSQL store. The queue's leader node is SIGKILLed while a backlog of >= 100
unacknowledged results is queued, and one fleet process is SIGKILLed while it ingests: every
result a device was told is stored must be stored exactly once.

EDGEMED_RABBITMQ_SOAK=1 runs a bigger variant (more devices, more results each).
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
from rabbit_cluster import RabbitCluster, available
from stores import PG_DSN

from edgemed.fleet.amqp import AmqpConfig, ensure_queue
from edgemed.fleet.broker import free_port, wait_for_port
from edgemed.fleet.store import PostgresStore

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]
pika = pytest.importorskip("pika", reason="pip install 'edgemed[fleet-amqp]'")
if not available():
    pytest.skip("needs rabbitmq-server (Debian package rabbitmq-server)", allow_module_level=True)

SOAK = os.environ.get("EDGEMED_RABBITMQ_SOAK") == "1"
DEVICES, PER_DEVICE, RATE = (9, 2000, 100.0) if SOAK else (4, 400, 30.0)
ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "tests" / "sim_device.py"
TOKEN = "rabbitmq-test-token-0123456789"
QUEUE = "edgemed-results"


@pytest.fixture
def schema() -> Iterator[str]:
    with pg_schema() as name:
        yield name


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RabbitCluster]:
    rabbit = RabbitCluster(tmp_path)
    try:
        rabbit.start_all()
        yield rabbit
    finally:
        rabbit.stop()


def _declare(url: str) -> None:
    """The queue and its bindings, as the workers would declare them; here before any device."""
    port = int(url.rsplit(":", 1)[1])
    deadline = time.monotonic() + 60
    while True:
        try:
            with pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port)) as conn:
                ensure_queue(conn.channel(), AmqpConfig(urls=(url,)))
                return
        except pika.exceptions.AMQPError:  # the cluster still forming
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def _fleet(cluster: RabbitCluster, schema: str, mqtt_port: int, log: Path, api_port: int) -> Any:
    """One `edgemed fleet serve --amqp` process, as docs/fleet.md starts it."""
    return subprocess.Popen(
        [sys.executable, "-m", "edgemed.cli", "fleet", "serve", "--amqp", cluster.urls,
         "--broker", f"mqtt://127.0.0.1:{mqtt_port}", "--db", PG_DSN, "--pg-schema", schema,
         "--port", str(api_port), "--token", TOKEN, "--workers", "1"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def _device(i: int, port: int, tmp_path: Path, count: int = PER_DEVICE) -> Any:
    return subprocess.Popen(
        [sys.executable, str(SIM), "--outbox", str(tmp_path / f"dev{i}.db"), "--port", str(port),
         "--count", str(count), "--log", str(tmp_path / f"dev{i}.log"),
         "--rate", str(RATE), "--device-id", f"bed-rmq-{i}"],
        stdout=subprocess.PIPE, stderr=(tmp_path / f"dev{i}.err").open("w"), text=True,
    )  # fmt: skip


def _stored_by(api_port: int) -> int:
    with contextlib.suppress(OSError):
        status, body = call(f"http://127.0.0.1:{api_port}", "/api/health")
        if status == 200:
            assert body["broker"]["subscription"] == ["amqp"]
            return int(body["ingest"]["counts"]["stored"])
    return 0


def _waiting(cluster: RabbitCluster) -> int:
    queue = cluster.queue(QUEUE)
    return int(queue["messages"]) if queue else 0


def test_node_and_worker_kill_lose_nothing_and_store_once(
    tmp_path: Path, cluster: RabbitCluster, schema: str
) -> None:
    _declare(cluster.nodes[0].url)
    PostgresStore(PG_DSN, schema=schema).close()  # the tables, before two processes open them
    started = time.monotonic()
    devices = [_device(i, cluster.nodes[i % 3].mqtt_port, tmp_path) for i in range(DEVICES)]
    fleets: list[Any] = []
    try:
        for dev in devices:
            assert dev.stdout is not None and dev.stdout.readline().strip() == "READY"
        # No fleet yet: results wait in the quorum queue, PUBACKed but unacknowledged.
        assert until(lambda: _waiting(cluster) >= 100, 60), cluster.queue(QUEUE)
        queue = cluster.queue(QUEUE)
        assert queue is not None and len(queue["members"]) == 3, queue
        backlog, leader = int(queue["messages"]), str(queue["leader"])
        victim = cluster.index(leader)
        cluster.kill(victim)  # the queue's leader, mid-stream: devices keep publishing
        killed_at = time.monotonic()
        survivor = (victim + 1) % 3
        api = [free_port() for _ in range(2)]
        fleets = [
            _fleet(cluster, schema, cluster.nodes[survivor].mqtt_port, tmp_path / f"fleet{k}.log",
                   api[k])
            for k in range(2)
        ]  # fmt: skip

        def new_leader() -> bool:
            q = cluster.queue(QUEUE, via=survivor)
            return q is not None and q["leader"] not in ("", leader)

        assert until(new_leader, 60)  # the two others elected a leader: restart the victim
        cluster.start(victim)
        total = DEVICES * PER_DEVICE
        assert until(lambda: sum(map(len, stored_rows(schema).values())) >= total // 3, 120)
        # Both processes consume the one queue: each has stored part of the results.
        assert until(lambda: all(_stored_by(port) > 0 for port in api), 60), [
            call(f"http://127.0.0.1:{port}", "/api/health") for port in api
        ]
        fleets[1].send_signal(signal.SIGKILL)  # one fleet process, while it ingests
        fleets[1].wait(timeout=10)
        stored_at_worker_kill = sum(map(len, stored_rows(schema).values()))
        assert stored_at_worker_kill < total, "the fleet process was killed after the end"
        codes = [dev.wait(timeout=240) for dev in devices]
        elapsed = time.monotonic() - started
        assert codes == [0] * DEVICES, [p.read_text()[-2000:] for p in tmp_path.glob("dev*.err")]
        lost, duplicate = lost_and_duplicate(schema, tmp_path, DEVICES, PER_DEVICE, "bed-rmq")
        print(
            f"RabbitMQ: {total} results from {DEVICES} devices; backlog {backlog} at the kill of "
            f"queue leader {leader} ({killed_at - started:.1f} s in); {stored_at_worker_kill} "
            f"stored at the fleet kill; all acknowledged after {elapsed:.1f} s; lost {lost}, "
            f"duplicate {duplicate}"
        )
        assert backlog >= 100
        assert lost == 0 and duplicate == 0
        assert sum(map(len, stored_rows(schema).values())) == total
    finally:
        kill_all([*devices, *fleets])


def _shipped() -> dict[str, str]:
    found: dict[str, str] = {}
    for env in sorted((ROOT / "deploy" / "rabbitmq").glob("node-*.env")):
        for line in env.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.startswith("EDGEMED_RMQ_"):
                found[f"{env.stem}.{key}"] = value
    return found


def test_documented_commands_start_the_cluster_and_two_fleets(tmp_path: Path, schema: str) -> None:
    """docs/fleet.md's commands as written: deploy/rabbitmq/run-local-cluster.sh with the
    shipped node-N.env, then two `edgemed fleet serve --amqp` processes; a device's results
    are stored once each."""
    shipped = _shipped()
    ports = [int(v) for k, v in shipped.items() if k.endswith("_PORT")]
    assert len(ports) == 9
    for port in ports:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                pytest.skip(f"port {port} of deploy/rabbitmq/node-*.env is in use here")
    names = [v for k, v in shipped.items() if k.endswith("EDGEMED_RMQ_NAME")]
    running = subprocess.run(["epmd", "-names"], capture_output=True, text=True).stdout
    if any(f"name {n.split('@')[0]} " in running for n in names):
        pytest.skip("a node named as in deploy/rabbitmq/node-*.env already runs here")
    script = ROOT / "deploy" / "rabbitmq" / "run-local-cluster.sh"
    nodes = subprocess.Popen(
        [str(script), str(tmp_path / "rabbitmq-data")],
        stdout=(tmp_path / "rabbitmq.log").open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    amqp = [int(shipped[f"node-{n}.EDGEMED_RMQ_AMQP_PORT"]) for n in (1, 2, 3)]
    mqtt = [int(shipped[f"node-{n}.EDGEMED_RMQ_MQTT_PORT"]) for n in (1, 2, 3)]
    urls = ",".join(f"amqp://127.0.0.1:{p}" for p in amqp)
    fleets: list[Any] = []
    try:
        assert all(wait_for_port(p, 120) for p in (*amqp, *mqtt)), tmp_path / "rabbitmq.log"
        PostgresStore(PG_DSN, schema=schema).close()
        for k in range(2):
            fleets.append(subprocess.Popen(
                [sys.executable, "-m", "edgemed.cli", "fleet", "serve", "--amqp", urls,
                 "--broker", f"mqtt://127.0.0.1:{mqtt[k]}", "--db", PG_DSN,
                 "--pg-schema", schema, "--port", str(free_port()), "--token", TOKEN],
                stdout=subprocess.PIPE, stderr=(tmp_path / f"fleet{k}.log").open("wb"),
                text=True,
            ))  # fmt: skip
        for fleet in fleets:
            assert fleet.stdout is not None and fleet.stdout.readline().startswith("fleet:")
        device = subprocess.run(
            [sys.executable, str(SIM), "--outbox", str(tmp_path / "d.db"),
             "--port", str(mqtt[2]), "--count", "60", "--log", str(tmp_path / "dev0.log"),
             "--device-id", "bed-rmq-0"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert device.returncode == 0, device.stderr[-2000:]
        assert sorted(stored_rows(schema)["bed-rmq-0"]) == sorted(submitted_seqs(tmp_path, 0))
    finally:
        for fleet in fleets:
            fleet.terminate()
            fleet.wait(timeout=15)
        os.killpg(nodes.pid, signal.SIGKILL)  # the script, its node shells and Erlang VMs
        nodes.wait(timeout=20)
