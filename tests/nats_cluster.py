"""A 3-node NATS cluster (JetStream, MQTT listeners) for tests, started from the shipped
deploy/nats/edgemed-nats.conf with each node's settings in its environment, on free loopback
ports and with its store under the test's tmp path. Never touches a NATS server already running.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from edgemed.fleet.broker import free_port, wait_for_port

__all__ = ["NATS_SERVER", "NatsCluster", "NatsNode"]

CONF = Path(__file__).resolve().parents[1] / "deploy" / "nats" / "edgemed-nats.conf"
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
T = TypeVar("T")


@dataclass
class NatsNode:
    name: str
    port: int  # NATS clients
    mqtt_port: int
    cluster_port: int
    store: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


class NatsCluster:
    """Three nodes of deploy/nats/edgemed-nats.conf; ``kill(i)`` SIGKILLs one, ``start(i)``
    brings it back on the same ports and store."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.nodes = [
            NatsNode(
                name=f"edgemed-nats-{i + 1}",
                port=free_port(),
                mqtt_port=free_port(),
                cluster_port=free_port(),
                store=workdir / f"nats-{i + 1}",
                log=workdir / f"nats-{i + 1}.log",
            )
            for i in range(size)
        ]

    @property
    def urls(self) -> str:
        return ",".join(n.url for n in self.nodes)

    def environment(self, node: NatsNode) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            EDGEMED_NATS_NAME=node.name,
            EDGEMED_NATS_HOST="127.0.0.1",
            EDGEMED_NATS_PORT=str(node.port),
            EDGEMED_NATS_MQTT_PORT=str(node.mqtt_port),
            EDGEMED_NATS_CLUSTER_PORT=str(node.cluster_port),
            EDGEMED_NATS_STORE=str(node.store),
        )
        for i, other in enumerate(self.nodes, start=1):
            env[f"EDGEMED_NATS_ROUTE_{i}"] = f"nats-route://127.0.0.1:{other.cluster_port}"
        return env

    def start(self, i: int) -> None:
        node = self.nodes[i]
        with node.log.open("ab") as log:
            node.proc = subprocess.Popen(
                [NATS_SERVER, "-c", str(CONF)],
                env=self.environment(node),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def start_all(self, timeout: float = 30.0) -> None:
        for i in range(len(self.nodes)):
            self.start(i)
        for node in self.nodes:
            for port in (node.port, node.mqtt_port):
                if not wait_for_port(port, timeout):
                    raise RuntimeError(f"{node.name} did not listen on {port}: see {node.log}")

    def kill(self, i: int) -> None:
        proc = self.nodes[i].proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
                try:
                    node.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()

    def index(self, name: str) -> int:
        return next(i for i, n in enumerate(self.nodes) if n.name == name)

    def run(self, body: Callable[[Any], Awaitable[T]], timeout: float = 30.0) -> T:
        """``await body(js)`` with a JetStream context on the cluster, retried while JetStream
        has no quorum or leader yet."""

        async def once() -> T:
            import nats

            nc = await nats.connect(servers=self.urls.split(","), connect_timeout=2)
            try:
                return await body(nc.jetstream(timeout=3.0))
            finally:
                await nc.close()

        deadline = time.monotonic() + timeout
        while True:
            try:
                return asyncio.run(once())
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
