"""Embedded MQTT broker for demos and quick starts: amqtt (pure Python), loopback only.

Production fleets run mosquitto or another hardened broker; this one exists so that
``edgemed demo`` works on a fresh machine with nothing but pip. Run it as its own process:
``python -m edgemed.fleet.broker --port 18830`` (prints ``READY <port>`` when listening).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from types import TracebackType

from ..errors import SyncError

__all__ = ["EmbeddedBroker", "free_port", "wait_for_port"]

_TAIL_LINES = 20


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


# The child gets the parent's sys.path, so it imports the edgemed the parent runs: `python -m`
# would put the working directory first, which in a checkout is the unbuilt source tree.
_BOOTSTRAP = """
import json, os, sys
sys.path[:] = json.loads(sys.argv.pop(1))
want = sys.argv.pop(1)
import edgemed.fleet.broker as b
if os.path.realpath(b.__file__) != want:
    sys.exit(f"embedded broker: imported {b.__file__}, the parent runs {want}")
b.main()
"""


class EmbeddedBroker:
    """Run the amqtt broker in a child process (same interpreter, same edgemed) on a free
    loopback port; stop it on exit. A child that dies before it listens raises
    :class:`SyncError` at once, with the last lines it wrote."""

    def __init__(self, port: int | None = None, *, start_timeout: float = 20.0) -> None:
        self.port = port or free_port()
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def __enter__(self) -> EmbeddedBroker:
        argv = [json.dumps(sys.path), os.path.realpath(__file__), "--port", str(self.port)]
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one stream, drained: a full pipe would stall the broker
            text=True,
        )
        self._reader = threading.Thread(target=self._drain, name="edgemed-broker-output")
        self._reader.daemon = True
        self._reader.start()
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _drain(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self._output.append(line.rstrip())
            if line.startswith(f"READY {self.port}"):
                self._ready.set()

    def _wait_ready(self) -> None:
        assert self._proc is not None and self._reader is not None
        deadline = time.monotonic() + self._start_timeout
        while not self._ready.wait(0.05):
            if self._proc.poll() is not None:
                self._reader.join(timeout=2)  # the child is gone: read what it wrote last
                raise SyncError(
                    f"embedded broker exited with status {self._proc.returncode} before "
                    f"listening on 127.0.0.1:{self.port}:\n{self.output_tail()}"
                )
            if time.monotonic() > deadline:
                raise SyncError(
                    f"embedded broker did not listen on 127.0.0.1:{self.port} within "
                    f"{self._start_timeout:g} s:\n{self.output_tail()}"
                )

    def output_tail(self) -> str:
        """The last lines the broker process wrote (stdout and stderr)."""
        return "\n".join(self._output) or "(no output)"

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
        if self._reader is not None:
            self._reader.join(timeout=2)


def _config(port: int) -> dict[str, object]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


async def _serve(port: int) -> None:
    try:
        from amqtt.broker import Broker
    except ImportError as exc:
        raise SystemExit("the embedded broker needs amqtt: pip install 'edgemed[demo]'") from exc
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
