"""The device's rollout agent against a real fleet API (HTTP, no broker: commands are handed
to the agent as the publisher would): download, verify, install, golden vectors, shadow
period, switch; refusals and rollbacks with their reasons; restarts in the middle."""

from __future__ import annotations

import io
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ota_bundles import Key, live_row, make_key, make_version, write_policy

from edgemed.delivery import decode_command, encode_command, pack_bundle
from edgemed.fleet import SQLiteStore
from edgemed.fleet.app import FleetApi
from edgemed.fleet.rollouts.bundles import BundleShelf
from edgemed.fleet.rollouts.routes import rollout_service
from edgemed.ota import OtaAgent, OtaConfig
from edgemed.trust import TrustPolicy, read_state

TOKEN = "ota-agent-test-token-0123456789"


@dataclass
class Fleet:
    api: FleetApi
    store: SQLiteStore
    sent: list[tuple[str, bytes]]
    url: str

    def upload(self, bundle: Path) -> str:
        buf = io.BytesIO()
        pack_bundle(bundle, buf)
        path = self.api_shelf().temporary()
        path.write_bytes(buf.getvalue())
        row = self.api_shelf().accept(path)
        self.store.add_bundle(row, time.time())
        return str(row["sha256"])

    def api_shelf(self) -> BundleShelf:
        shelf = self.service.shelf
        assert shelf is not None
        return shelf

    service: object = None  # set by the fixture

    def rollout(self, sha: str, devices: list[str], **criteria: float) -> bytes:
        spec = {
            "bundle_sha256": sha, "model_id": "", "version": "", "canary": 1, "waves": 1,
            "criteria": {"shadow_results": 10, "min_agreement": 0.9, "abs_tolerance": 1e-3,
                         "rel_tolerance": 1e-3, **criteria},
            "max_failures": 0, "wave_timeout_s": 600.0,
        }  # fmt: skip
        bundle = self.store.bundle(sha)
        assert bundle is not None
        spec.update(model_id=bundle["model_id"], version=bundle["version"])
        self.sent.clear()
        self.service.engine.create(spec, devices)  # type: ignore[attr-defined]
        return self.sent[-1][1]


@pytest.fixture
def key(tmp_path: Path) -> Key:
    return make_key(tmp_path)


@pytest.fixture
def fleet(tmp_path: Path, key: Key) -> Iterator[Fleet]:
    store = SQLiteStore(tmp_path / "fleet.db")
    fleet_policy = TrustPolicy(keys={key.kid: key.raw}, rollback_state=None)
    shelf = BundleShelf(folder=tmp_path / "shelf", policy=fleet_policy)
    sent: list[tuple[str, bytes]] = []

    def publish(topic: str, payload: bytes) -> bool:
        sent.append((topic, payload))
        return True

    service = rollout_service(store, store.store_id, shelf=shelf, publish=publish)
    api = FleetApi(store, token=TOKEN, port=0, rollouts=service).start()
    made = Fleet(api=api, store=store, sent=sent, url=f"http://127.0.0.1:{api.port}")
    made.service = service
    yield made
    api.stop()
    store.close()


def _agent(tmp_path: Path, key: Key, fleet: Fleet, initial: Path, **kw: object) -> OtaAgent:
    policy = TrustPolicy.from_file(write_policy(tmp_path / "device-trust.json", key))
    config = OtaConfig(
        root=tmp_path / "ota",
        fleet_url=fleet.url,
        trust=policy,
        initial_bundle=initial,
        threads=1,
        **kw,
    )  # type: ignore[arg-type]
    return OtaAgent(config)


def _feed(agent: OtaAgent, until: set[str], timeout: float = 30.0) -> list[str]:
    """Live inputs through the agent until its rollout reaches one of ``until``."""
    rng = random.Random(7)
    served: list[str] = []
    deadline = time.monotonic() + timeout
    while agent.state.phase not in until:
        assert time.monotonic() < deadline, agent.state
        served.append(agent(live_row(rng)).provenance.model_version)
        time.sleep(0.005)
    return served


def test_a_good_version_is_downloaded_checked_shadowed_and_switched(
    tmp_path: Path, key: Key, fleet: Fleet
) -> None:
    v1, v2 = make_version(tmp_path, "1.0.0", key), make_version(tmp_path, "1.1.0", key)
    with _agent(tmp_path, key, fleet, v1) as agent:
        assert agent.serving.manifest.version == "1.0.0"
        command = fleet.rollout(fleet.upload(v2), ["bed-1"])
        agent.on_command(command)
        served = _feed(agent, {"switched", "failed"})
        assert agent.state.phase == "switched", agent.state.reason
        # The candidate never answered during its shadow: 1.0.0 until the switch, then 1.1.0.
        assert served == sorted(served) and served.count("1.0.0") >= 10, served
        assert agent(live_row(random.Random(1))).provenance.model_version == "1.1.0"
        report = agent.report()
        assert report is not None and report.serving == "diabetes-progression@1.1.0"
        assert report.shadow_done == 10 and report.shadow_agree == 10
        pointer = json.loads((tmp_path / "ota" / "current.json").read_text())
        assert pointer["version"] == "1.1.0" and pointer["confirmed"]
        assert pointer["previous"]["version"] == "1.0.0"
        state = read_state(tmp_path / "rollback-state.json")
        assert state["diabetes-progression"]["highest"] == "1.1.0"
        agent.on_command(command)  # the retained command again: nothing happens
        time.sleep(0.3)
        assert agent.state.phase == "switched" and agent.serving.manifest.version == "1.1.0"


def test_a_version_that_disagrees_in_the_shadow_period_never_serves(
    tmp_path: Path, key: Key, fleet: Fleet
) -> None:
    v1 = make_version(tmp_path, "1.0.0", key)
    bad = make_version(tmp_path, "1.1.0", key, perturb=0.3)
    with _agent(tmp_path, key, fleet, v1) as agent:
        agent.on_command(fleet.rollout(fleet.upload(bad), ["bed-1"]))
        served = _feed(agent, {"switched", "failed"})
        assert agent.state.phase == "failed"
        assert "shadow" in (agent.state.reason or "") and "disagreed" in (agent.state.reason or "")
        assert set(served) == {"1.0.0"} and agent.serving.manifest.version == "1.0.0"
        state = read_state(tmp_path / "rollback-state.json")
        assert state["diabetes-progression"]["highest"] == "1.0.0"  # never recorded as served


def test_a_power_cut_during_the_switch_leaves_the_previous_version_serving(
    tmp_path: Path, key: Key, fleet: Fleet
) -> None:
    v1, v2 = make_version(tmp_path, "1.0.0", key), make_version(tmp_path, "1.1.0", key)
    served = tmp_path / "rollback-state.json"
    with _agent(tmp_path, key, fleet, v1) as agent:
        before = served.read_bytes()  # 1.0.0 served
        agent.on_command(fleet.rollout(fleet.upload(v2), ["bed-1"]))
        _feed(agent, {"switched"})
    ota = tmp_path / "ota"
    switched_pointer = json.loads((ota / "current.json").read_text())
    switched_state = json.loads((ota / "state.json").read_text())

    def cut_power(*, committed: bool, attempts: int = 1) -> None:
        """The files as a cut during the switch leaves them: the pointer written (confirmed
        only if ``committed``), the step still "switching", nothing recorded as served."""
        (ota / "current.json").write_text(json.dumps({**switched_pointer, "confirmed": committed}))
        state = {**switched_state, "phase": "switching", "attempts": attempts}
        (ota / "state.json").write_text(json.dumps(state))
        served.write_bytes(before)

    cut_power(committed=False)  # the pointer moved, the switch was not committed
    with _agent(tmp_path, key, fleet, v1) as agent:
        assert agent.serving.manifest.version == "1.0.0"  # the previous version serves
        assert json.loads((ota / "current.json").read_text())["version"] == "1.0.0"
        served_versions = _feed(agent, {"switched", "failed"})  # the rollout resumes
        assert agent.state.phase == "switched" and agent.state.attempts == 2
        assert served_versions[0] == "1.0.0" and agent.serving.manifest.version == "1.1.0"
    cut_power(committed=True)  # cut after the commit, before "switched" was written
    with _agent(tmp_path, key, fleet, v1) as agent:
        assert agent.serving.manifest.version == "1.1.0" and agent.state.phase == "switched"
        assert read_state(served)["diabetes-progression"]["highest"] == "1.1.0"
    cut_power(committed=False, attempts=3)  # and a third restart in the same rollout
    with _agent(tmp_path, key, fleet, v1) as agent:
        assert agent.serving.manifest.version == "1.0.0"
        assert agent.state.phase == "rolled-back", agent.state
        assert "crash loop: 3 restarts" in (agent.state.reason or "")


def test_refusals_name_their_reason(tmp_path: Path, key: Key, fleet: Fleet) -> None:
    v1 = make_version(tmp_path, "1.0.0", key)
    with _agent(tmp_path, key, fleet, v1) as agent:
        good = fleet.upload(make_version(tmp_path, "1.1.0", key))
        command = decode_command(fleet.rollout(good, ["bed-1"]))
        # An archive that is not what the command names: refused after the download.
        wrong = encode_command(
            type(command)(**{**command.__dict__, "version": "1.2.0"})  # type: ignore[arg-type]
        )
        agent.on_command(wrong.replace(command.rollout_id.encode(), b"other.9"))
        _feed(agent, {"failed"})
        assert "verifying" in (agent.state.reason or "") and "1.2.0" in (agent.state.reason or "")
        assert agent.serving.manifest.version == "1.0.0"


def test_a_restart_loop_during_a_rollout_fails_it_and_keeps_serving(
    tmp_path: Path, key: Key, fleet: Fleet
) -> None:
    v1, v2 = make_version(tmp_path, "1.0.0", key), make_version(tmp_path, "1.1.0", key)
    with _agent(tmp_path, key, fleet, v1) as agent:
        agent.on_command(fleet.rollout(fleet.upload(v2), ["bed-1"]))
        deadline = time.monotonic() + 20
        while agent.state.phase != "shadow":  # no live input: it waits in its shadow period
            assert time.monotonic() < deadline
            time.sleep(0.02)
    for start in (2, 3):  # each start resumes it (the process "crashed" in its shadow period)
        with _agent(tmp_path, key, fleet, v1) as agent:
            assert agent.state.attempts == start
            deadline = time.monotonic() + 20
            while agent.state.phase != "shadow":
                assert time.monotonic() < deadline
                time.sleep(0.02)
    with _agent(tmp_path, key, fleet, v1) as agent:  # a fourth start: a crash loop
        assert agent.state.phase == "failed", agent.state
        assert "crash loop: 3 restarts" in (agent.state.reason or "")
        assert agent.serving.manifest.version == "1.0.0"


def test_abort_stops_a_rollout_in_its_shadow_period(tmp_path: Path, key: Key, fleet: Fleet) -> None:
    v1, v2 = make_version(tmp_path, "1.0.0", key), make_version(tmp_path, "1.1.0", key)
    with _agent(tmp_path, key, fleet, v1) as agent:
        install = decode_command(fleet.rollout(fleet.upload(v2), ["bed-1"]))
        agent.on_command(encode_command(install))
        deadline = time.monotonic() + 20
        while agent.state.phase != "shadow":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        from edgemed.delivery import AbortCommand

        agent.on_command(encode_command(AbortCommand(rollout_id=install.rollout_id)))
        deadline = time.monotonic() + 10
        while agent.state.phase != "aborted":
            assert time.monotonic() < deadline, agent.state
            time.sleep(0.02)
        assert agent.serving.manifest.version == "1.0.0"
        assert not list((tmp_path / "ota" / "versions").glob("*1.1.0*"))


def test_a_download_resumes_and_a_damaged_part_is_fetched_again(
    tmp_path: Path, key: Key, fleet: Fleet
) -> None:
    from edgemed.ota import Downloader

    sha = fleet.upload(make_version(tmp_path, "1.1.0", key))
    command = decode_command(fleet.rollout(sha, ["bed-1"]))
    whole = fleet.api_shelf().path(sha).read_bytes()
    folder = tmp_path / "downloads"
    folder.mkdir()
    seen: list[int] = []
    loader = Downloader(fleet_url=fleet.url, chunk_bytes=1024)
    (folder / f"{sha}.part").write_bytes(whole[:5000])  # cut after 5,000 bytes
    import threading

    got = loader.fetch(command, folder, stop=threading.Event(), progress=seen.append)  # type: ignore[arg-type]
    assert got.read_bytes() == whole and seen[0] == 5000 + 1024  # it went on from byte 5,000
    got.unlink()
    (folder / f"{sha}.part").write_bytes(b"x" * 5000)  # a damaged start: caught by the hash
    got = loader.fetch(command, folder, stop=threading.Event())  # type: ignore[arg-type]
    assert got.read_bytes() == whole


def test_anti_rollback_holds_through_rollouts_unless_a_signed_rollback_says_so(
    tmp_path: Path, key: Key, fleet: Fleet
) -> None:
    from edgemed.bundle import sign_bundle

    v1, v2 = make_version(tmp_path, "1.0.0", key), make_version(tmp_path, "1.1.0", key)
    (tmp_path / "older").mkdir()
    older = make_version(tmp_path / "older", "1.0.5", key)
    with _agent(tmp_path, key, fleet, v1) as agent:
        agent.on_command(fleet.rollout(fleet.upload(v2), ["bed-1"]))
        _feed(agent, {"switched"})
        agent.on_command(fleet.rollout(fleet.upload(older), ["bed-2"]))
        _feed(agent, {"failed"})  # the last rollout had switched: this is the new one's end
        reason = agent.state.reason or ""
        assert reason.startswith("verifying:") and "older than 1.1.0" in reason, reason
        sign_bundle(older, key.file, rollback_from="1.1.0")  # a rollback, signed on purpose
        command = fleet.rollout(fleet.upload(older), ["bed-3"])
        agent.on_command(command)
        while (agent.state.command or {}).get("rollout_id") != decode_command(command).rollout_id:
            time.sleep(0.01)
        _feed(agent, {"switched", "failed"})
        assert agent.state.phase == "switched", agent.state.reason
        assert agent.serving.manifest.version == "1.0.5"


def test_ota_status_command_reads_the_agents_folder(
    tmp_path: Path, key: Key, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgemed.cli.commands import main

    v1 = make_version(tmp_path, "1.0.0", key)
    bad = make_version(tmp_path, "1.1.0", key, perturb=0.3)
    with _agent(tmp_path, key, fleet, v1) as agent:
        agent.on_command(fleet.rollout(fleet.upload(bad), ["bed-1"]))
        _feed(agent, {"failed"})
        state_file = tmp_path / "ota" / "state.json"
        while json.loads(state_file.read_text())["phase"] != "failed":  # written just after
            time.sleep(0.01)
        assert main(["ota", "status", "--root", str(tmp_path / "ota"), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["serving"] == "diabetes-progression@1.0.0" and status["confirmed"]
    assert status["rollout"]["state"] == "failed" and "disagreed" in status["rollout"]["reason"]
    assert status["installed"] == ["diabetes-progression@1.0.0-initial"]


def test_golden_drift_and_a_key_the_device_does_not_trust_are_refused(
    tmp_path: Path, key: Key, fleet: Fleet
) -> None:
    import hashlib

    import numpy as np

    from edgemed.bundle import sign_bundle

    v1 = make_version(tmp_path, "1.0.0", key)
    drifted = make_version(tmp_path, "1.1.0", key)
    expected = drifted / "golden" / "expected.npy"
    np.save(expected, np.load(expected) + 5.0)  # golden outputs this model does not give
    manifest = json.loads((drifted / "manifest.json").read_text())
    manifest["artifacts"]["golden_outputs"]["sha256"] = hashlib.sha256(
        expected.read_bytes()
    ).hexdigest()
    (drifted / "manifest.json").write_text(json.dumps(manifest, indent=2))
    sign_bundle(drifted, key.file)
    with _agent(tmp_path, key, fleet, v1) as agent:
        agent.on_command(fleet.rollout(fleet.upload(drifted), ["bed-1"]))
        _feed(agent, {"failed", "switched"})
        assert (agent.state.reason or "").startswith("golden:"), agent.state.reason
        assert agent.serving.manifest.version == "1.0.0"
    # A fleet that trusts a key the device does not: the device's own policy decides.
    other = make_key(tmp_path, "fleet-only")
    (tmp_path / "o").mkdir()
    foreign = make_version(tmp_path / "o", "1.2.0", other)
    shelf = fleet.api_shelf()
    assert shelf.policy is not None
    fleet.service.shelf = BundleShelf(  # type: ignore[attr-defined]
        folder=shelf.folder,
        policy=TrustPolicy(keys={**shelf.policy.keys, other.kid: other.raw}, rollback_state=None),
    )
    with _agent(tmp_path, key, fleet, v1) as agent:
        command = fleet.rollout(fleet.upload(foreign), ["bed-1"])
        agent.on_command(command)
        while (agent.state.command or {}).get("rollout_id") != decode_command(command).rollout_id:
            time.sleep(0.01)
        _feed(agent, {"failed", "switched"})
        reason = agent.state.reason or ""
        assert reason.startswith("verifying:") and "unknown to the" in reason, reason


def test_a_rollout_of_another_model_is_refused_before_any_download(
    tmp_path: Path, key: Key, fleet: Fleet
) -> None:
    v1 = make_version(tmp_path, "1.0.0", key)
    with _agent(tmp_path, key, fleet, v1) as agent:
        install = decode_command(
            fleet.rollout(fleet.upload(make_version(tmp_path, "1.1.0", key)), ["b"])
        )
        other = encode_command(
            type(install)(**{**install.__dict__, "model_id": "wdbc-malignancy-mlp"})  # type: ignore[arg-type]
        )
        agent.on_command(other)
        _feed(agent, {"failed"})
        assert "serves diabetes-progression" in (agent.state.reason or "")
        assert agent.state.downloaded == 0


def test_a_version_that_dies_right_after_the_switch_is_rolled_back(
    tmp_path: Path, key: Key, fleet: Fleet
) -> None:
    """Until the new version has served ``probation_results`` results the switch is not
    committed: a process that dies then (here: stopped) comes back on the previous version,
    and the third time it is a crash loop, rolled back."""
    v1, v2 = make_version(tmp_path, "1.0.0", key), make_version(tmp_path, "1.1.0", key)
    with _agent(tmp_path, key, fleet, v1) as agent:
        agent.on_command(fleet.rollout(fleet.upload(v2), ["bed-1"]))
        _feed(agent, {"switching"})
        deadline = time.monotonic() + 10
        while agent.serving.manifest.version != "1.1.0":  # serving, not yet committed
            assert time.monotonic() < deadline
            time.sleep(0.01)
    for start in (2, 3):
        with _agent(tmp_path, key, fleet, v1) as agent:
            assert agent.serving.manifest.version == "1.0.0" and agent.state.attempts == start
            _feed(agent, {"switching"})
            deadline = time.monotonic() + 10
            while agent.serving.manifest.version != "1.1.0":
                assert time.monotonic() < deadline
                time.sleep(0.01)
    with _agent(tmp_path, key, fleet, v1) as agent:
        assert agent.serving.manifest.version == "1.0.0"
        assert agent.state.phase == "rolled-back", agent.state
        assert "crash loop: 3 restarts" in (agent.state.reason or "")
    assert (
        read_state(tmp_path / "rollback-state.json")["diabetes-progression"]["highest"] == "1.0.0"
    )


def test_downloads_over_https_with_the_device_s_ca_and_refuse_another(
    tmp_path: Path, key: Key, fleet: Fleet
) -> None:
    import threading

    from pki import CertificateAuthority

    from edgemed.errors import SyncError
    from edgemed.fleet.auth.headers import HttpsFiles
    from edgemed.ota import Downloader

    ca = CertificateAuthority(tmp_path, "fleet-ca")
    server = ca.issue("fleet", server=True)
    service = fleet.service
    api = FleetApi(fleet.store, token=TOKEN, port=0, rollouts=service,  # type: ignore[arg-type]
                   https=HttpsFiles(server.cert, server.key)).start()  # fmt: skip
    try:
        sha = fleet.upload(make_version(tmp_path, "1.1.0", key))
        command = decode_command(fleet.rollout(sha, ["bed-1"]))
        url = f"https://127.0.0.1:{api.port}"
        (tmp_path / "dl").mkdir()
        got = Downloader(fleet_url=url, ca_file=ca.path).fetch(
            command, tmp_path / "dl", stop=threading.Event()
        )
        assert got.read_bytes() == fleet.api_shelf().path(sha).read_bytes()
        (tmp_path / "x").mkdir()
        other = CertificateAuthority(tmp_path / "x", "other-ca")
        (tmp_path / "dl2").mkdir()
        with pytest.raises(SyncError, match="CERTIFICATE_VERIFY_FAILED"):
            Downloader(fleet_url=url, ca_file=other.path, retries=0).fetch(
                command, tmp_path / "dl2", stop=threading.Event()
            )
    finally:
        api.stop()
