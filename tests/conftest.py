"""Shared fixtures. Broker tests start their own mosquitto on a free loopback port."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import edgemed
from edgemed.fleet import SQLiteStore
from edgemed.fleet.broker import free_port, wait_for_port

# Backend selection by manifest order unless a test measures (tests/unit/test_autotune.py): the
# tests pin what each order and fallback does, and measuring at every first load of a copied
# bundle would cost seconds each. Set before any test, so the processes tests start inherit it.
os.environ.setdefault("EDGEMED_AUTOTUNE", "0")

MODEL_ID = "clinical-text-minilm"
MARKERS = {
    "broker": "needs the mosquitto binary (tests start their own broker on a free loopback port)",
    "postgres": "needs PostgreSQL ($EDGEMED_TEST_POSTGRES, default "
    "postgresql://postgres@127.0.0.1:5432/test)",
    "cluster": "starts a 3-node broker cluster (nats-server) on free loopback ports",
    "slow": "soak variants, not run by default",
}


def pytest_configure(config: pytest.Config) -> None:
    # Registered here, not in pyproject.toml, so the tests also know them when they run
    # against an installed wheel outside the source tree.
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")


@pytest.fixture(scope="session")
def encoder() -> Iterator[edgemed.Pipeline]:
    with edgemed.load(MODEL_ID, threads=1) as pipeline:
        yield pipeline


class Mosquitto:
    """A real mosquitto process on 127.0.0.1:port that tests may kill and restart."""

    def __init__(self, workdir: Path, *, persistence: bool = False, extra: str = "") -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            pytest.fail("mosquitto is not installed: run .ci/run or `apt-get install mosquitto`")
        self.binary = binary
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        self.store = workdir / "mosquitto-data"
        self.store.mkdir(exist_ok=True)
        settings = (
            f"persistence true\npersistence_location {self.store}/\nautosave_interval 1\n"
            if persistence
            else "persistence false\n"
        )
        # As root, mosquitto drops to user "mosquitto", which cannot read pytest's 0700 temp
        # folders (config files, certificates, its own persistence file): stay the test's user.
        self.conf.write_text(
            f"user {getpass.getuser()}\n"
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
            f"{settings}{extra}"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # Its log goes to a file: an unread pipe fills up after a few hundred connections and
        # then blocks the broker itself.
        self.log = self.conf.with_name(f"mosquitto-{self.port}.log")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=log
            )
        if not wait_for_port(self.port, timeout=10):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"mosquitto did not start: {self.log.read_text(errors='replace')}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path)
    broker.start()
    yield broker
    broker.kill()


def until(predicate: object, timeout: float) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "fleet.db")
    yield s
    s.close()


def start_fleet_server(
    db: Path | str,
    broker_port: int,
    *,
    api_port: int | None = None,
    token: str = "fleet-test-token-0123456789",
    extra: list[str] | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """``edgemed fleet serve`` as its own process, and its banner line once it printed it."""
    args = ["fleet", "serve", "--broker", f"mqtt://127.0.0.1:{broker_port}", "--db", str(db)]
    args += ["--port", str(api_port or free_port()), "--token", token, *(extra or [])]
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgemed.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    banner = proc.stdout.readline()
    if not banner.startswith("fleet:"):  # it exited: say why
        assert proc.stderr is not None
        raise AssertionError(f"fleet serve did not start: {banner}{proc.stderr.read()[-3000:]}")
    return proc, banner
