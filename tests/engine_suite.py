"""What the broker-cluster fault tests (test_fleet_jetstream.py, test_fleet_rabbitmq.py) share:
a throwaway PostgreSQL schema, what the devices were told was accepted, what the fleet stored,
and the verdict: every accepted (device, seq) stored exactly once."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from stores import PG_DSN

__all__ = ["kill_all", "lost_and_duplicate", "pg_schema", "stored_rows", "submitted_seqs"]


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    name = f"edgemed_test_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as db:
            db.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def stored_rows(schema: str) -> dict[str, list[int]]:
    """device_id -> every seq stored for it (repeats kept: a duplicate shows)."""
    with psycopg.connect(PG_DSN) as db:
        rows = db.execute(f"SELECT device_id, seq FROM {schema}.results").fetchall()
    stored: dict[str, list[int]] = {}
    for device_id, seq in rows:
        stored.setdefault(device_id, []).append(int(seq))
    return stored


def submitted_seqs(tmp_path: Path, i: int) -> list[int]:
    """The seqs tests/sim_device.py number i was told were accepted (its --log)."""
    lines = (tmp_path / f"dev{i}.log").read_text().split()
    return [int(seq) for seq in lines[0::2]]


def lost_and_duplicate(
    schema: str, tmp_path: Path, devices: int, per_device: int, prefix: str
) -> tuple[int, int]:
    """(accepted results not stored, stored more than once) over devices ``prefix-0`` ..."""
    stored = stored_rows(schema)
    lost = duplicate = 0
    for i in range(devices):
        submitted = submitted_seqs(tmp_path, i)
        assert len(submitted) == per_device == len(set(submitted))
        rows = stored.get(f"{prefix}-{i}", [])
        lost += len(set(submitted) - set(rows))
        duplicate += len(rows) - len(set(rows))
        assert set(rows) <= set(submitted), "stored a seq no device submitted"
    return lost, duplicate


def kill_all(procs: Iterable[subprocess.Popen[Any]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
