"""Embedded MQTT broker for demos and quick starts: amqtt (pure Python), loopback only.

Production fleets run mosquitto or another hardened broker; this one exists so that
``edgemed demo`` works on a fresh machine with nothing but pip. Run it as its own process:
``python -m edgemed.fleet.broker --port 18830`` (prints ``READY <port>`` when listening).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import subprocess
import sys
import time
from types import TracebackType

from ..errors import SyncError

__all__ = ["EmbeddedBroker", "free_port", "wait_for_port"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return True
        time.sleep(0.05)
    return False


class EmbeddedBroker:
    """Start ``python -m edgemed.fleet.broker`` on a free loopback port; stop it on exit."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> EmbeddedBroker:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "edgemed.fleet.broker", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if not wait_for_port(self.port, timeout=20.0):
            self.__exit__(None, None, None)
            raise SyncError(f"embedded broker did not listen on 127.0.0.1:{self.port}")
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


def _config(port: int) -> dict[str, object]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


async def _serve(port: int) -> None:
    try:
        from amqtt.broker import Broker
    except ImportError as exc:
        raise SystemExit("the embedded broker needs amqtt: pip install 'edgemed[fleet]'") from exc
    broker = Broker(_config(port))
    await broker.start()
    print(f"READY {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await broker.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description="edgemed embedded MQTT broker (127.0.0.1 only)")
    parser.add_argument("--port", type=int, default=1883)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_serve(args.port))


if __name__ == "__main__":
    main()
