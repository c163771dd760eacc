"""A 3-node RabbitMQ cluster (quorum queues, MQTT plugin) for tests, started with the shipped
deploy/rabbitmq/run-node.sh and edgemed-rabbitmq.conf.in, each node's settings in its
environment, on free loopback ports, with node names of its own and its data under the test's
tmp path. Never touches a RabbitMQ node already running (the system's shares only epmd).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgemed.fleet.broker import free_port, wait_for_port

__all__ = ["RABBITMQ_SERVER", "RabbitCluster", "RabbitNode"]

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "rabbitmq"
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


@dataclass
class RabbitNode:
    name: str  # Erlang node name, name@localhost
    amqp_port: int
    mqtt_port: int
    dist_port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://127.0.0.1:{self.amqp_port}"


class RabbitCluster:
    """Three nodes of deploy/rabbitmq/; ``kill(i)`` SIGKILLs one, ``start(i)`` brings it back
    on the same ports and data (it rejoins the cluster)."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        tag = uuid.uuid4().hex[:6]
        self.data = workdir / "rabbitmq"
        self.nodes = [
            RabbitNode(
                name=f"edgemed-rmq-{tag}-{i + 1}@localhost",
                amqp_port=free_port(),
                mqtt_port=free_port(),
                dist_port=free_port(),
                log=workdir / f"rabbitmq-{i + 1}.log",
            )
            for i in range(size)
        ]

    @property
    def urls(self) -> str:
        return ",".join(n.url for n in self.nodes)

    def environment(self, node: RabbitNode) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            EDGEMED_RMQ_NAME=node.name,
            EDGEMED_RMQ_HOST="127.0.0.1",
            EDGEMED_RMQ_AMQP_PORT=str(node.amqp_port),
            EDGEMED_RMQ_MQTT_PORT=str(node.mqtt_port),
            EDGEMED_RMQ_DIST_PORT=str(node.dist_port),
            EDGEMED_RMQ_COOKIE_FILE=str(self.data / ".erlang.cookie"),
        )
        for i, other in enumerate(self.nodes, start=1):
            env[f"EDGEMED_RMQ_NODE_{i}"] = other.name
        return env

    def start(self, i: int) -> None:
        node = self.nodes[i]
        with node.log.open("ab") as log:
            node.proc = subprocess.Popen(
                [str(DEPLOY / "run-node.sh"), str(self.data)],
                env=self.environment(node),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the node's shell and Erlang VM: killed together
            )

    def start_all(self, timeout: float = 120.0) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        cookie = self.data / ".erlang.cookie"
        cookie.write_text(uuid.uuid4().hex + uuid.uuid4().hex)  # one cookie, before any node
        cookie.chmod(0o400)
        # One after another, as deploy/rabbitmq/run-local-cluster.sh does: RabbitMQ 3.10's MQTT
        # plugin keeps its client ids in a Raft cluster of its own, and nodes that boot at the
        # same moment can each start one (then MQTT connects on one node time out with
        # "client ID registration timed out"; seen here).
        for i, node in enumerate(self.nodes):
            self.start(i)
            for port in (node.amqp_port, node.mqtt_port):
                if not wait_for_port(port, timeout):
                    raise RuntimeError(f"{node.name} did not listen on {port}: see {node.log}")

    def kill(self, i: int) -> None:
        proc = self.nodes[i].proc
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                os.killpg(node.proc.pid, signal.SIGKILL)  # tests keep no data: no clean stop
                node.proc.wait(timeout=10)

    def index(self, name: str) -> int:
        return next(i for i, n in enumerate(self.nodes) if n.name == name)

    def queue(self, name: str, via: int | None = None) -> dict[str, Any] | None:
        """The queue as a running node reports it (leader, members, messages), or None."""
        for i, node in enumerate(self.nodes):
            if via is not None and i != via:
                continue
            if node.proc is None or node.proc.poll() is not None:
                continue
            home = self.data / node.name.split("@")[0] / "home"
            out = subprocess.run(
                [RABBITMQCTL, "-n", node.name, "-q", "list_queues", "name", "leader", "members",
                 "messages", "messages_unacknowledged", "--formatter", "json"],
                env={**os.environ, "HOME": str(home)}, capture_output=True, text=True,
                timeout=30,
            )  # fmt: skip
            if out.returncode != 0:
                continue
            for row in json.loads(out.stdout or "[]"):
                if row["name"] == name:
                    return dict(row)
            return None
        return None


def available() -> bool:
    return Path(RABBITMQ_SERVER).exists() and shutil.which("epmd") is not None
