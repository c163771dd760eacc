"""The embedded broker runs the edgemed its parent runs, and says at once why it failed."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edgemed.errors import SyncError
from edgemed.fleet.broker import EmbeddedBroker


def test_child_error_is_raised_at_once_with_its_output() -> None:
    with socket.socket() as taken:  # the broker's port is in use: amqtt cannot bind
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        started = time.monotonic()
        with pytest.raises(SyncError) as failed:
            EmbeddedBroker(port=taken.getsockname()[1]).__enter__()
    assert time.monotonic() - started < 10  # not the 20 s start timeout
    message = str(failed.value)
    assert "exited with status 1 before listening" in message
    assert "address already in use" in message.splitlines()[-1]


def test_checkout_on_the_working_directory_does_not_shadow_the_package(tmp_path: Path) -> None:
    """`python examples/x.py` from a checkout: the parent imports the installed edgemed; the
    broker child must too, not the `edgemed/` folder in its working directory."""
    (tmp_path / "edgemed").mkdir()
    (tmp_path / "edgemed" / "__init__.py").write_text(
        "raise ImportError('the source tree in the working directory was imported')\n"
    )
    (tmp_path / "examples").mkdir()
    script = tmp_path / "examples" / "start_broker.py"
    script.write_text(
        textwrap.dedent("""
        from edgemed.fleet.broker import EmbeddedBroker
        with EmbeddedBroker(start_timeout=15) as broker:
            print("LISTENING", broker.port)
        """)
    )
    proc = subprocess.run(
        [sys.executable, "examples/start_broker.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "LISTENING" in proc.stdout, proc.stdout + proc.stderr
