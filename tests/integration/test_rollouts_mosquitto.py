"""Rollout acceptance (issue 24, items 3-5) against a real mosquitto, a real ``edgemed fleet
serve`` process and device processes (tests/ota_device.py), with bundles signed here.

- 20 devices: a good version reaches all 20, canary first, then in waves; a bad version (its
  weights perturbed, its golden outputs re-derived so they pass) is stopped on the canary by
  the shadow check, and none of the other 19 downloads, installs or loads it.
- SIGKILL x10 at random points of download, install and switch on one device: it always comes
  back serving a verified version; every result it accepted is at the fleet, once, under the
  version that computed it.

Each runs in well under 2 minutes on 2 cores. ``EDGEMED_ROLLOUT_SOAK=N`` makes the kill test
kill N times instead of 10.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from api_client import call
from conftest import Mosquitto, start_fleet_server
from ota_bundles import Key, make_key, make_version, policy_json

from edgemed.fleet.broker import free_port
from edgemed.trust import TrustPolicy, check_bundle

pytestmark = pytest.mark.broker
TOKEN = "rollout-acceptance-token-0123456789"
TESTS = Path(__file__).parents[1]
SOAK = int(os.environ.get("EDGEMED_ROLLOUT_SOAK", "0") or 0)


class Device:
    """One tests/ota_device.py process and the lines it prints."""

    def __init__(self, root: Path, args: list[str]) -> None:
        self.root, self.args = root, args
        self.lines: queue.Queue[str] = queue.Queue()
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(TESTS / "ota_device.py"), *self.args],
            stdout=subprocess.PIPE, stderr=(self.root / "stderr.log").open("a"), text=True,
        )  # fmt: skip
        out = self.proc.stdout
        assert out is not None
        threading.Thread(
            target=lambda: [self.lines.put(x.strip()) for x in out], daemon=True
        ).start()

    def wait_for(self, prefix: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                assert self.proc is not None and self.proc.poll() is None, self.stderr()
                continue
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no {prefix!r} within {timeout} s: {self.stderr()}")

    def stderr(self) -> str:
        return (self.root / "stderr.log").read_text()[-3000:]

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=90)


class Fleet:
    def __init__(self, tmp: Path, mosquitto: Mosquitto, key: Key) -> None:
        self.policy = tmp / "fleet-trust.json"
        self.policy.write_text(json.dumps(policy_json(key, None)))
        self.db = tmp / "fleet.db"
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc, _ = start_fleet_server(
            self.db, mosquitto.port, api_port=port, token=TOKEN,
            extra=["--trust", str(self.policy), "--bundle-dir", str(tmp / "shelf")],
        )  # fmt: skip

    def cli(self, *args: str) -> Any:
        env = {**os.environ, "EDGEMED_FLEET_TOKEN": TOKEN}
        done = subprocess.run(
            [sys.executable, "-m", "edgemed.cli", "fleet", *args, "--fleet", self.url],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def rollout(self, rollout_id: int) -> dict[str, Any]:
        status, body = call(self.url, f"/api/rollouts/{rollout_id}", token=TOKEN)
        assert status == 200, body
        return dict(body)

    def wait(self, rollout_id: int, states: set[str], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (body := self.rollout(rollout_id))["state"] not in states:
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
        return body

    def results(self) -> dict[tuple[str, str, int], str]:
        with sqlite3.connect(self.db) as db:
            rows = db.execute("SELECT device_id, epoch, seq, model_version FROM results")
            return {(d, e, s): v for d, e, s, v in rows}

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def _device(tmp: Path, fleet: Fleet, mosquitto: Mosquitto, name: str, initial: Path,
            trust: Path, *extra: str) -> Device:  # fmt: skip
    root = tmp / name
    root.mkdir()
    args = ["--root", str(root / "ota"), "--port", str(mosquitto.port), "--fleet-url", fleet.url,
            "--device-id", name, "--trust", str(trust), "--initial", str(initial),
            "--log", str(root / "accepted.log"), *extra]  # fmt: skip
    return Device(root, args)


def _accepted(device: Device) -> list[tuple[str, int, str, str, str]]:
    rows = []
    for line in (device.root / "accepted.log").read_text().splitlines():
        epoch, seq, version, before, after = line.split()
        rows.append((epoch, int(seq), version, before, after))
    return rows


def _check_results(fleet: Fleet, devices: list[Device]) -> int:
    """Every accepted result is at the fleet under the version that computed it, which was
    serving when it was asked; returns how many were checked."""
    stored = fleet.results()
    checked = 0
    for device in devices:
        name = device.root.name
        for epoch, seq, version, before, after in _accepted(device):
            assert stored.get((name, epoch, seq)) == version, (name, epoch, seq, version)
            assert version in (before, after), (name, seq, version, before, after)
            checked += 1
    return checked


def test_twenty_devices_good_version_in_waves_bad_version_stopped_on_the_canary(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    started = time.monotonic()
    key = make_key(tmp_path)
    v1, good = make_version(tmp_path, "1.0.0", key), make_version(tmp_path, "1.1.0", key)
    bad = make_version(tmp_path, "1.2.0", key, perturb=0.3)
    fleet = Fleet(tmp_path, mosquitto, key)
    devices: list[Device] = []
    try:
        for i in range(20):
            trust = tmp_path / f"trust-{i}.json"
            trust.write_text(json.dumps(policy_json(key, f"bed-{i:02d}/rollback-state.json")))
            device = _device(tmp_path, fleet, mosquitto, f"bed-{i:02d}", v1, trust,
                             "--rate", "8", "--seed", str(i))  # fmt: skip
            device.start()
            devices.append(device)
        for device in devices:
            assert device.wait_for("READY") == "READY 1.0.0"
        names = [d.root.name for d in devices]
        sha = fleet.cli("bundles", "upload", str(good))["sha256"]
        criteria = ["--shadow-results", "8", "--min-agreement", "1.0"]
        args = [a for n in names for a in ("--device", n)]
        made = fleet.cli("rollouts", "create", sha, *args, "--canary", "1", "--waves", "3",
                         "--wave-timeout", "60", *criteria)  # fmt: skip
        done = fleet.wait(made["id"], {"completed", "halted"}, timeout=90)
        assert done["state"] == "completed" and done["counts"] == {"switched": 20}, done
        _check_waves(done)
        print(f"good version on 20 devices in {time.monotonic() - started:.1f} s")
        bad_sha = fleet.cli("bundles", "upload", str(bad))["sha256"]
        made = fleet.cli("rollouts", "create", bad_sha, *args, "--canary", "1", "--waves", "2",
                         *criteria)  # fmt: skip
        halted = fleet.wait(made["id"], {"completed", "halted"}, timeout=60)
        assert halted["state"] == "halted", halted
        canary, *others = halted["devices"]
        assert canary["state"] == "failed" and "disagreed" in canary["reason"], canary
        assert {d["state"] for d in others} == {"skipped"}
        for device in devices[1:]:  # 0 of the other 19 loaded it, or even downloaded it
            ota = device.root / "ota"
            assert not list((ota / "versions").glob("*1.2.0*")) and not list(
                (ota / "downloads").iterdir()
            )
            state = json.loads((ota / "state.json").read_text())
            assert state["command"]["version"] == "1.1.0" and state["phase"] == "switched"
        canary_ota = devices[0].root / "ota"  # the canary kept nothing of it either
        assert not list((canary_ota / "versions").glob("*1.2.0*"))
        assert not list((canary_ota / "downloads").iterdir())
        for device in devices:
            assert device.stop() == 0, device.stderr()
        checked = _check_results(fleet, devices)
        assert "1.2.0" not in set(fleet.results().values())  # never served a patient
        print(f"{checked} results checked; total {time.monotonic() - started:.1f} s")
    finally:
        for device in devices:
            if device.proc is not None and device.proc.poll() is None:
                device.kill()
        fleet.stop()


def _check_waves(rollout: dict[str, Any]) -> None:
    """Each wave was commanded only after every device of the waves before it switched."""
    by_wave: dict[int, list[dict[str, Any]]] = {}
    for d in rollout["devices"]:
        by_wave.setdefault(d["wave"], []).append(d)
    assert [len(by_wave[w]) for w in sorted(by_wave)] == [1, 6, 6, 7]
    for wave in sorted(by_wave)[1:]:
        finished = max(d["report"]["at"] for d in by_wave[wave - 1])
        assert min(d["commanded_at"] for d in by_wave[wave]) >= finished - 0.5


def test_sigkill_during_download_install_and_switch_always_comes_back_verified(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    started = time.monotonic()
    kills = SOAK or 10
    key = make_key(tmp_path)
    versions = [make_version(tmp_path, f"1.{k}.0", key) for k in range(kills + 1)]
    fleet = Fleet(tmp_path, mosquitto, key)
    trust = tmp_path / "device-trust.json"
    trust.write_text(json.dumps(policy_json(key, "rollback-state.json")))
    policy = TrustPolicy.from_file(trust)
    device = _device(tmp_path, fleet, mosquitto, "bed-k", versions[0], trust,
                     "--rate", "40", "--bandwidth", "12000", "--chunk", "1024")  # fmt: skip
    rng = random.Random(24)
    outcomes: list[str] = []
    try:
        device.start()
        device.wait_for("READY")
        for k in range(1, kills + 1):
            sha = fleet.cli("bundles", "upload", str(versions[k]))["sha256"]
            made = fleet.cli("rollouts", "create", sha, "--device", "bed-k", "--wave-timeout",
                             "120", "--shadow-results", "5")  # fmt: skip
            phase = rng.choice(["downloading", "verifying", "golden", "switching"])
            device.wait_for(f"PHASE {phase}")
            # The download lasts ~1 s, the other steps tens of milliseconds.
            time.sleep(rng.uniform(0.0, {"downloading": 0.8, "switching": 0.03}.get(phase, 0.01)))
            device.kill()
            device.start()
            serving = device.wait_for("READY").split()[1]
            pointer = json.loads((device.root / "ota" / "current.json").read_text())
            assert pointer["version"] == serving
            check_bundle(device.root / "ota" / pointer["path"], policy)  # verified, as served
            done = fleet.wait(made["id"], {"completed", "halted"}, timeout=60)
            outcomes.append(f"{phase}: up on {serving}, {done['devices'][0]['state']}")
        assert device.stop() == 0, device.stderr()
        checked = _check_results(fleet, [device])
        served = {v for _e, _s, v, _b, _a in _accepted(device)}
        print(f"{kills} kills: {outcomes}; {checked} results checked, versions {sorted(served)}; "
              f"{time.monotonic() - started:.1f} s")  # fmt: skip
        assert all(o.endswith(("switched", "failed", "rolled-back")) for o in outcomes), outcomes
    finally:
        if device.proc is not None and device.proc.poll() is None:
            device.kill()
        fleet.stop()
