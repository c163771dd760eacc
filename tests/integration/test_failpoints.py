"""Crashes aimed at the windows that matter (edgemed/failpoints.py), against real mosquitto and
`edgemed fleet serve`: a device or fleet process SIGKILLs itself between a commit and the
message that announces it, and between an ack and what follows; restarted, every result the
outbox committed is stored exactly once.

- ``ingest.committed``: the fleet stored a batch, the devices never heard (they resend; the
  store absorbs the copies);
- ``ingest.acked``: the fleet acked, then died;
- ``outbox.committed``: the device's result is durable but ``submit`` never returned (the
  caller was not told: the result must still reach the fleet once, not be lost or doubled);
- ``publisher.sent``: results on the wire, unacknowledged;
- ``outbox.acked``: an ack applied (rows deleted), then the device died.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Mosquitto, start_fleet_server
from engine_suite import kill_all, submitted_seqs

pytestmark = pytest.mark.broker
SIM = Path(__file__).resolve().parents[1] / "sim_device.py"
DEVICE = "bed-fp-0"
COUNT, RATE = 300, 150.0


def _device(tmp_path: Path, port: int, count: int, env: dict[str, str] | None = None) -> Any:
    return subprocess.Popen(
        [sys.executable, str(SIM), "--outbox", str(tmp_path / "dev0.db"), "--port", str(port),
         "--count", str(count), "--log", str(tmp_path / "dev0.log"), "--rate", str(RATE),
         "--device-id", DEVICE],
        stdout=subprocess.PIPE, stderr=(tmp_path / "dev0.err").open("a"), text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def _stored(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT seq FROM results WHERE device_id = ?", (DEVICE,)).fetchall()
    return [int(seq) for (seq,) in rows]


def _verdict(db: Path, tmp_path: Path) -> tuple[list[int], list[int]]:
    """Every seq the outbox assigned stored exactly once: none missing below the highest,
    none twice, every one the device logged among them."""
    stored, logged = _stored(db), submitted_seqs(tmp_path, 0)
    assert len(stored) == len(set(stored)), "a result stored twice"
    assert sorted(stored) == list(range(1, max(stored) + 1)), "a committed result is missing"
    assert set(logged) <= set(stored)
    return stored, logged


@pytest.mark.parametrize(
    "point", ["ingest.committed:1", "ingest.committed:4", "ingest.acked:1", "ingest.acked:4"]
)
def test_a_fleet_killed_at_a_failpoint_loses_and_doubles_nothing(
    point: str, tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "fleet.db"
    monkeypatch.setenv("EDGEMED_FAILPOINTS", point)
    first, _ = start_fleet_server(db, mosquitto.port)
    monkeypatch.delenv("EDGEMED_FAILPOINTS")
    procs = [first]
    try:
        device = _device(tmp_path, mosquitto.port, COUNT)
        procs.append(device)
        assert device.stdout is not None and device.stdout.readline().strip() == "READY"
        assert first.wait(timeout=60) == -9  # killed itself at the point
        assert (
            first.stderr is not None and f"failpoint {point.split(':')[0]}" in first.stderr.read()
        )
        stored_at_kill = len(_stored(db))
        second, _ = start_fleet_server(db, mosquitto.port)  # same store, after the crash
        procs.append(second)
        assert device.wait(timeout=120) == 0, (tmp_path / "dev0.err").read_text()[-2000:]
        stored, logged = _verdict(db, tmp_path)
        print(f"fleet killed at {point}: {stored_at_kill} stored at the kill; {len(stored)} "
              f"stored in all, {len(logged)} accepted, 0 missing, 0 twice")  # fmt: skip
        assert len(stored) == COUNT and stored_at_kill < COUNT
    finally:
        kill_all(procs)


@pytest.mark.parametrize(
    "point",
    [
        "outbox.committed:1",
        "outbox.committed:40",
        "publisher.sent:1",
        "publisher.sent:10",
        "outbox.acked:1",
        "outbox.acked:3",
    ],
)
def test_a_device_killed_at_a_failpoint_loses_and_doubles_nothing(
    point: str, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    db = tmp_path / "fleet.db"
    fleet, _ = start_fleet_server(db, mosquitto.port)
    procs = [fleet]
    try:
        device = _device(tmp_path, mosquitto.port, COUNT, {"EDGEMED_FAILPOINTS": point})
        procs.append(device)
        assert device.stdout is not None and device.stdout.readline().strip() == "READY"
        assert device.wait(timeout=60) == -9
        assert f"failpoint {point.split(':')[0]}" in (tmp_path / "dev0.err").read_text()
        logged_at_kill = len(submitted_seqs(tmp_path, 0))
        # Restarted on the same outbox, submitting nothing new: it drains what it committed.
        again = _device(tmp_path, mosquitto.port, 0)
        procs.append(again)
        assert again.wait(timeout=120) == 0, (tmp_path / "dev0.err").read_text()[-2000:]
        stored, logged = _verdict(db, tmp_path)
        print(f"device killed at {point}: {logged_at_kill} accepted before the kill, "
              f"{len(stored)} stored, 0 missing, 0 twice")  # fmt: skip
        assert logged_at_kill < COUNT
        if point.startswith("outbox.committed"):  # committed, never returned to the caller
            assert len(stored) == len(logged) + 1
    finally:
        kill_all(procs)
