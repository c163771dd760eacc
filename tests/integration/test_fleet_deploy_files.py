"""deploy/fleet/ as shipped: a PostgreSQL server started with postgresql-edgemed.conf, two
fleet processes started by run-fleet.sh with the settings of fleet.env and fleet.toml (only
the ports, paths and binary of this machine substituted), a device's results stored once each,
one process stopped as systemd stops it (SIGTERM) without losing a result, and the systemd
unit accepted by systemd's own checker. The documentation cannot drift from these files."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import Mosquitto, until

import edgemed
from edgemed.config import BrokerConfig, OutboxConfig, SyncConfig
from edgemed.fleet.broker import free_port, wait_for_port
from edgemed.sync import Outbox, Publisher

try:
    import tomllib
except ImportError:  # Python 3.10: the backport edgemed depends on there
    import tomli as tomllib

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "fleet"


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(versions[-1]) if versions else None


def _env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads this file (no quotes in it)."""
    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


class PostgresServer:
    """A throwaway PostgreSQL cluster configured by deploy/fleet/postgresql-edgemed.conf."""

    def __init__(self) -> None:
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            pytest.skip("PostgreSQL's initdb/pg_ctl are not installed")
        self.pg_ctl = pg_ctl
        # PostgreSQL refuses to run as root: then the cluster belongs to the postgres user.
        self.user = "postgres" if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="edgemed-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.port = free_port()
        if self.user:
            shutil.chown(self.root, self.user)
        self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\ninclude '{DEPLOY / 'postgresql-edgemed.conf'}'\n"
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\n"
                # this test's machine is not the 8 GB host the file is sized for
                "shared_buffers = 128MB\n"
            )
        self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.root / "log"), "-w", "start")

    def _run(self, *cmd: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        subprocess.run([*prefix, *cmd], check=True, capture_output=True, timeout=120)

    def dsn(self, user: str = "postgres", db: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()


def _health(port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
            body: dict[str, object] = json.loads(r.read())
            return body
    except OSError:
        return None


def _stored(dsn: str) -> tuple[int, int]:
    with psycopg.connect(dsn) as db:
        total, distinct = db.execute("SELECT count(*), count(DISTINCT seq) FROM results").fetchone()
    return int(total), int(distinct)


def test_the_shipped_unit_passes_systemds_checker(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = (DEPLOY / "edgemed-fleet@.service").read_text()
    # Only the script's install path is this checkout's (verify wants the file to exist).
    assert unit.count("ExecStart=/opt/edgemed/run-fleet.sh %i") == 1
    here = unit.replace("/opt/edgemed/run-fleet.sh", str(DEPLOY / "run-fleet.sh"))
    (tmp_path / "edgemed-fleet@8081.service").write_text(here)
    proc = subprocess.run(
        [analyze, "verify", str(tmp_path / "edgemed-fleet@8081.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr  # unknown keys warn


def test_two_fleet_processes_from_the_deploy_files_store_every_result_once(
    postgres: PostgresServer, mosquitto: Mosquitto, tmp_path: Path, encoder: edgemed.Pipeline
) -> None:
    settings = _env_file(DEPLOY / "fleet.env")
    db_url = settings["EDGEMED_FLEET_DB"]
    user, dbname = re.fullmatch(r"postgresql://(\w+)@[\w.]+:\d+/(\w+)", db_url).groups()  # type: ignore[union-attr]
    with psycopg.connect(postgres.dsn(), autocommit=True) as db:
        db.execute(f"CREATE ROLE {user} LOGIN")
        db.execute(f"CREATE DATABASE {dbname} OWNER {user}")
    fleet_toml = (DEPLOY / "fleet.toml").read_text()
    shipped_url = 'url = "mqtt://127.0.0.1:1883"'
    assert fleet_toml.count(shipped_url) == 1
    here = fleet_toml.replace(shipped_url, f'url = "mqtt://127.0.0.1:{mosquitto.port}"')
    (tmp_path / "fleet.toml").write_text(here)
    env = {
        **os.environ,
        **settings,
        "EDGEMED_FLEET_DB": postgres.dsn(user, dbname),
        "EDGEMED_FLEET_CONFIG": str(tmp_path / "fleet.toml"),
        "EDGEMED_FLEET_BUNDLE_DIR": str(tmp_path / "bundles"),
        "EDGEMED_BIN": str(Path(sys.executable).with_name("edgemed")),
        "EDGEMED_FLEET_TOKEN": secrets.token_urlsafe(24),  # fleet-secrets.env's
    }
    ports = [free_port(), free_port()]
    fleets = [
        subprocess.Popen(
            ["sh", str(DEPLOY / "run-fleet.sh"), str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"fleet-{port}.log").open("wb"),
        )
        for port in ports
    ]
    try:
        for port, proc in zip(ports, fleets, strict=True):
            up = until(lambda p=port, f=proc: f.poll() is not None or wait_for_port(p, 0.2), 60)
            assert up and proc.poll() is None, (tmp_path / f"fleet-{port}.log").read_text()
            assert until(lambda p=port: (_health(p) or {}).get("status") == "ok", 30)
        dsn = postgres.dsn(user, dbname)
        with psycopg.connect(postgres.dsn("postgres", dbname)) as db:  # sourcefile: superuser
            rows = db.execute(
                "SELECT name, sourcefile FROM pg_settings WHERE sourcefile IS NOT NULL"
            ).fetchall()
            connections = db.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            ).fetchone()[0]  # type: ignore[index]
        from_file = {name for name, source in rows if source.endswith("postgresql-edgemed.conf")}
        shipped = {
            line.split("=")[0].strip()
            for line in (DEPLOY / "postgresql-edgemed.conf").read_text().splitlines()
            if "=" in line and not line.lstrip().startswith("#")
        }
        assert shipped - {"shared_buffers"} <= from_file, shipped - from_file
        print(f"two fleet processes hold {connections} PostgreSQL connections at rest")
        assert connections <= 4  # the file's max_connections reasoning: 2 per process

        outbox = Outbox(OutboxConfig(path=tmp_path / "outbox.db", device_id="deploy-bed-1"))
        sync = SyncConfig(resend_initial_s=2.0, reconnect_min_s=0.1, reconnect_max_s=0.5)
        result = encoder("respiratory rate 24, SpO2 93 % on air")
        with Publisher(outbox, BrokerConfig(port=mosquitto.port), sync) as pub:
            for _ in range(300):
                pub.submit(result)
            assert pub.wait_drained(60)
            assert _stored(dsn) == (300, 300)
            # systemctl stop: SIGTERM, within the unit's TimeoutStopSec=30
            t0 = time.monotonic()
            fleets[0].send_signal(signal.SIGTERM)
            assert fleets[0].wait(timeout=30) == 0
            print(f"fleet process stopped {time.monotonic() - t0:.1f} s after SIGTERM")
            for _ in range(200):
                pub.submit(result)
            assert pub.wait_drained(60)
        assert _stored(dsn) == (500, 500)
    finally:
        for proc in fleets:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def test_the_fleet_host_requirements_are_the_fleet_extra() -> None:
    """requirements-fleet-host.txt = the fleet extra + what the fleet imports of edgemed's own
    dependencies, so the two lists cannot drift apart."""
    project = tomllib.loads((DEPLOY.parents[1] / "pyproject.toml").read_text())["project"]
    name = re.compile(r"^[A-Za-z0-9_.\-]+(\[[^\]]*\])?")
    fleet_extra = set(project["optional-dependencies"]["fleet"])
    fleet_imports = {"numpy", "paho-mqtt", "orjson", "cryptography", "tomli"}
    own = {d for d in project["dependencies"] if (m := name.match(d)) and m[0] in fleet_imports}
    listed = {
        line.strip()
        for line in (DEPLOY / "requirements-fleet-host.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert listed == fleet_extra | own
