"""The fleet's half of rollouts: bundle uploads checked against the fleet's trust policy and
kept by hash, rollouts in waves driven by the devices' reports, pause/resume/abort, downloads
by hash with a rollout's token and HTTP Range, and the wire formats against their schemas."""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient
from ota_bundles import make_key, make_version
from stores import test_store

from edgemed.delivery import (
    AbortCommand,
    Criteria,
    InstallCommand,
    RolloutReport,
    decode_command,
    encode_command,
    pack_bundle,
    unpack_bundle,
)
from edgemed.errors import IntegrityError, PayloadError
from edgemed.fleet import SqlStore
from edgemed.fleet.app import create_app
from edgemed.fleet.rollouts.bundles import BundleShelf
from edgemed.fleet.rollouts.engine import plan_waves, record_report, rollout_key
from edgemed.fleet.rollouts.routes import RolloutService, rollout_service
from edgemed.fleet.validation import PayloadValidator, load_schema
from edgemed.trust import TrustPolicy
from edgemed.wire import encode_status

TOKEN = "rollout-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Setup:
    def __init__(self, tmp: Path, store: SqlStore) -> None:
        self.key = make_key(tmp)
        self.store = store
        policy = TrustPolicy(keys={self.key.kid: self.key.raw}, rollback_state=None)
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.service: RolloutService = rollout_service(
            self.store, self.store.store_id,
            shelf=BundleShelf(folder=tmp / "shelf", policy=policy), publish=self._publish,
        )  # fmt: skip
        self.client = TestClient(create_app(self.store, token=TOKEN, rollouts=self.service))
        self.tmp = tmp

    def _publish(self, topic: str, payload: bytes) -> bool:
        self.sent.append((topic.split("/")[2], json.loads(payload)))
        return True

    def upload(self, bundle: Path) -> Any:
        buf = io.BytesIO()
        pack_bundle(bundle, buf)
        headers = {**AUTH, "Content-Type": "application/x-tar"}
        return self.client.post("/api/bundles", content=buf.getvalue(), headers=headers)

    def report(self, device: str, rollout_id: int, state: str, seq: int, **kw: Any) -> None:
        report = RolloutReport(
            rollout_id=rollout_key(self.store.store_id, rollout_id), state=state,  # type: ignore[arg-type]
            seq=seq, at=time.time(), model_id="diabetes-progression", version="1.1.0",
            serving="diabetes-progression@1.0.0", **kw,
        )  # fmt: skip
        birth = encode_status("online", device_id=device, boot_id="b", connection=1,
                              rollout=report.body())  # fmt: skip
        status = PayloadValidator().status(birth, topic_device_id=device)  # the schema check
        record_report(self.store, device, status["rollout"])
        self.service.engine.tick()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    for store in test_store(request.param, tmp_path):
        yield Setup(tmp_path, store)


def test_upload_is_checked_against_the_fleet_policy_and_kept_by_hash(fleet: Setup) -> None:
    good = make_version(fleet.tmp, "1.1.0", fleet.key)
    first = fleet.upload(good)
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["model_id"], body["version"], body["key_id"]) == (
        "diabetes-progression", "1.1.0", fleet.key.kid,
    )  # fmt: skip
    again = fleet.upload(good)  # the same bundle again: the same hash, 200
    assert again.status_code == 200 and again.json()["sha256"] == body["sha256"]
    rogue = make_key(fleet.tmp, "rogue")
    (fleet.tmp / "r").mkdir()
    other = make_version(fleet.tmp / "r", "1.2.0", rogue)
    refused = fleet.upload(other)
    assert refused.status_code == 422 and "unknown to the" in refused.json()["detail"]
    (good / "MODEL_CARD.md").write_text("edited after signing")
    tampered = fleet.upload(good)
    assert tampered.status_code == 422 and "sha256" in tampered.json()["detail"]
    junk = fleet.client.post("/api/bundles", content=b"not a tar", headers=AUTH)
    assert junk.status_code == 422 and "not a tar" in junk.json()["detail"]
    assert [b["version"] for b in fleet.client.get("/api/bundles", headers=AUTH).json()] == [
        "1.1.0"
    ]


def test_waves_canary_first_then_in_order_and_a_failure_halts(fleet: Setup) -> None:
    sha = fleet.upload(make_version(fleet.tmp, "1.1.0", fleet.key)).json()["sha256"]
    devices = [f"bed-{i}" for i in range(7)]
    created = fleet.client.post(
        "/api/rollouts", headers=AUTH,
        json={"bundle_sha256": sha, "devices": devices, "canary": 1, "waves": 2,
              "criteria": {"shadow_results": 5, "min_agreement": 0.8}},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    assert [d for d, _ in fleet.sent] == ["bed-0"]  # the canary alone
    command = decode_command(json.dumps(fleet.sent[0][1]).encode())
    assert isinstance(command, InstallCommand) and command.criteria.shadow_results == 5
    assert command.path == f"/ota/bundles/{sha}" and command.size > 0
    busy = fleet.client.post("/api/rollouts", headers=AUTH,
                             json={"bundle_sha256": sha, "devices": ["bed-3"]})  # fmt: skip
    assert busy.status_code == 409
    fleet.report("bed-0", rid, "shadow", 1, shadow_done=2, shadow_needed=5)
    fleet.report("bed-0", rid, "switched", 2)
    assert sorted(d for d, _ in fleet.sent[1:]) == ["bed-1", "bed-2", "bed-3"]  # wave 1
    fleet.report("bed-0", rid, "downloading", 1)  # an older report: ignored
    for i, device in enumerate(["bed-1", "bed-2"]):
        fleet.report(device, rid, "switched", 5 + i)
    fleet.report("bed-3", rid, "failed", 9, reason="golden: drift")
    detail = fleet.client.get(f"/api/rollouts/{rid}", headers=AUTH).json()
    assert detail["state"] == "halted" and "bed-3: golden: drift" in detail["reason"]
    states = {d["device_id"]: d["state"] for d in detail["devices"]}
    assert states == {"bed-0": "switched", "bed-1": "switched", "bed-2": "switched",
                      "bed-3": "failed", "bed-4": "skipped", "bed-5": "skipped",
                      "bed-6": "skipped"}  # fmt: skip
    assert len(fleet.sent) == 4  # the last wave never heard of it
    assert detail["counts"] == {"switched": 3, "failed": 1, "skipped": 3}


def test_pause_resume_abort_and_groups(fleet: Setup) -> None:
    sha = fleet.upload(make_version(fleet.tmp, "1.1.0", fleet.key)).json()["sha256"]
    put = fleet.client.put("/api/device-groups/ward-3", headers=AUTH,
                           json={"devices": ["bed-1", "bed-2", "bed-3"]})  # fmt: skip
    assert put.json() == ["bed-1", "bed-2", "bed-3"]
    rid = fleet.client.post(
        "/api/rollouts", headers=AUTH,
        json={"bundle_sha256": sha, "groups": ["ward-3"], "canary": 1, "waves": 1},
    ).json()["id"]  # fmt: skip
    post = lambda action: fleet.client.post(f"/api/rollouts/{rid}/{action}", headers=AUTH)  # noqa: E731
    assert post("pause").json()["state"] == "paused"
    assert post("pause").status_code == 409
    fleet.report("bed-1", rid, "switched", 1)
    assert [d for d, _ in fleet.sent] == ["bed-1"]  # paused: no new wave
    assert post("resume").json()["state"] == "running"
    assert sorted(d for d, _ in fleet.sent[1:]) == ["bed-2", "bed-3"]
    fleet.report("bed-2", rid, "shadow", 2)
    aborted = post("abort").json()
    assert aborted["state"] == "aborted"
    aborts = [(d, c["command"]) for d, c in fleet.sent[3:]]
    assert sorted(aborts) == [("bed-2", "abort"), ("bed-3", "abort")]
    assert post("resume").status_code == 409
    assert fleet.client.get("/api/rollouts/99", headers=AUTH).status_code == 404


def test_download_needs_the_rollout_token_and_resumes_with_range(fleet: Setup) -> None:
    sha = fleet.upload(make_version(fleet.tmp, "1.1.0", fleet.key)).json()["sha256"]
    url = f"/ota/bundles/{sha}"
    assert fleet.client.get(url).status_code == 401  # no rollout yet: no token works
    assert fleet.client.get(url, headers=AUTH).status_code == 401  # nor the API token
    fleet.client.post("/api/rollouts", headers=AUTH, json={"bundle_sha256": sha, "devices": ["a"]})
    token = fleet.sent[0][1]["token"]
    whole = fleet.client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert whole.status_code == 200 and len(whole.content) == fleet.sent[0][1]["size"]
    tail = fleet.client.get(
        url, headers={"Authorization": f"Bearer {token}", "Range": "bytes=1000-"}
    )
    assert tail.status_code == 206 and tail.content == whole.content[1000:]
    assert (
        tail.headers["content-range"] == f"bytes 1000-{len(whole.content) - 1}/{len(whole.content)}"
    )


def test_archives_are_canonical_and_unpacking_is_strict(tmp_path: Path) -> None:
    key = make_key(tmp_path)
    bundle = make_version(tmp_path, "1.0.0", key)
    one, two = io.BytesIO(), io.BytesIO()
    pack_bundle(bundle, one)
    (bundle / "MODEL_CARD.md").touch()  # a new mtime: the same archive
    pack_bundle(bundle, two)
    assert one.getvalue() == two.getvalue()

    def archive(*members: tarfile.TarInfo) -> Path:
        path = tmp_path / f"a{len(list(tmp_path.glob('a*.tar')))}.tar"
        with tarfile.open(path, "w") as tar:
            for m in members:
                tar.addfile(m, io.BytesIO(b"x" * m.size) if m.isreg() else None)
        return path

    def member(name: str, kind: bytes = tarfile.REGTYPE, **kw: Any) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.size = kind, 1 if kind == tarfile.REGTYPE else 0
        for k, v in kw.items():
            setattr(info, k, v)
        return info

    cases = {
        "../escape": archive(member("../escape")),
        "absolute": archive(member("/etc/passwd")),
        "symlink": archive(member("link", tarfile.SYMTYPE, linkname="/etc/passwd")),
        "hard link": archive(member("hard", tarfile.LNKTYPE, linkname="x")),
        "twice": archive(member("a"), member("a")),
        "device": archive(member("dev", tarfile.CHRTYPE)),
    }
    for i, (name, path) in enumerate(cases.items()):
        with pytest.raises(IntegrityError):
            unpack_bundle(path, tmp_path / f"out-{i}")
            pytest.fail(f"{name}: unpacked")


def test_messages_match_their_schemas_and_decoding_is_strict() -> None:
    install = InstallCommand(
        rollout_id="abc.1", model_id="m-1", version="1.0.0", sha256="0" * 64, size=10,
        path="/ota/bundles/" + "0" * 64, token="t" * 32, criteria=Criteria(),
    )  # fmt: skip
    schema = load_schema("command-1")
    for command in (install, AbortCommand(rollout_id="abc.1")):
        raw = encode_command(command)
        jsonschema.validate(json.loads(raw), schema)
        assert decode_command(raw) == command
    bad = [
        b"[]", b"{}", encode_command(install).replace(b'"install"', b'"format-disk"'),
        encode_command(install).replace(b'"/ota/', b'"http://evil/'),
        encode_command(install).replace(b'"size":10', b'"size":-1'),
        encode_command(install).replace(b'"shadow_results":20', b'"shadow_results":0'),
    ]  # fmt: skip
    for raw in bad:
        with pytest.raises(PayloadError):
            decode_command(raw)
    assert plan_waves([str(i) for i in range(10)], 1, 3) == [
        ["0"], ["1", "2", "3"], ["4", "5", "6"], ["7", "8", "9"],
    ]  # fmt: skip


def test_a_silent_device_times_out_and_counts_as_a_failure(fleet: Setup) -> None:
    sha = fleet.upload(make_version(fleet.tmp, "1.1.0", fleet.key)).json()["sha256"]
    rid = fleet.client.post(
        "/api/rollouts", headers=AUTH,
        json={"bundle_sha256": sha, "devices": ["a", "b", "c"], "canary": 1, "waves": 1,
              "max_failures": 1, "wave_timeout_s": 0.2},
    ).json()["id"]  # fmt: skip
    time.sleep(0.3)
    fleet.service.engine.tick()  # the canary said nothing: timed out, within the budget of 1
    devices = {
        d["device_id"]: d
        for d in fleet.client.get(f"/api/rollouts/{rid}", headers=AUTH).json()["devices"]
    }
    assert devices["a"]["state"] == "timed-out" and "0.2 s" in devices["a"]["reason"]
    assert devices["b"]["state"] == "commanded"  # the next wave went on
    fleet.report("a", rid, "switched", 3)  # a late report still counts
    time.sleep(0.3)
    fleet.service.engine.tick()
    detail = fleet.client.get(f"/api/rollouts/{rid}", headers=AUTH).json()
    assert detail["state"] == "halted" and detail["counts"] == {"switched": 1, "timed-out": 2}


def test_schemathesis_finds_no_server_error_in_the_rollout_routes(tmp_path: Path) -> None:
    """The API fuzz (test_fleet_api_hardening.py) over this feature's operations, with a bundle
    shelf and a trust policy, so that uploads reach the archive and trust checks: no 5xx."""
    schemathesis = pytest.importorskip("schemathesis")
    from schemathesis.generation.modes import GenerationMode
    from test_fleet_api_hardening import TOKEN as FUZZ_TOKEN
    from test_fleet_api_hardening import _fuzz

    store = next(test_store("sqlite", tmp_path))
    made = Setup(tmp_path, store)
    made.upload(make_version(tmp_path, "1.1.0", made.key))
    app = create_app(store, token=FUZZ_TOKEN, rollouts=made.service)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    cases: list[tuple[str, int]] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith(
            ("/api/bundles", "/api/rollouts", "/api/device-groups", "/ota/")
        ):
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, cases)
    assert len({name for name, _ in cases}) == 10, sorted({n for n, _ in cases})
    assert [c for c in cases if c[1] >= 500] == []
    store.close()


def test_a_rollout_of_a_bundle_whose_key_was_revoked_since_upload_is_refused(
    fleet: Setup,
) -> None:
    sha = fleet.upload(make_version(fleet.tmp, "1.1.0", fleet.key)).json()["sha256"]
    shelf = fleet.service.shelf
    assert shelf is not None and shelf.policy is not None
    revoked = BundleShelf(
        folder=shelf.folder, policy=replace(shelf.policy, revoked=frozenset({fleet.key.kid}))
    )
    service = rollout_service(fleet.store, fleet.store.store_id, shelf=revoked)
    client = TestClient(create_app(fleet.store, token=TOKEN, rollouts=service))
    refused = client.post(
        "/api/rollouts", headers=AUTH, json={"bundle_sha256": sha, "devices": ["a"]}
    )
    assert refused.status_code == 422 and "revokes" in refused.json()["detail"]
    assert fleet.store.rollouts() == []


def test_a_ward_is_a_target_bed_by_bed(fleet: Setup) -> None:
    from edgemed.fleet.wards.registry import WardRegistry

    wards = WardRegistry(fleet.store)
    wards.put_ward("icu-2")
    for bed, devices in (("10", ["mon-10"]), ("2", ["mon-2", "eeg-2"]), ("1", [])):
        wards.put_bed("icu-2", bed, devices=devices)
    sha = fleet.upload(make_version(fleet.tmp, "1.1.0", fleet.key)).json()["sha256"]
    made = fleet.client.post(
        "/api/rollouts", headers=AUTH,
        json={"bundle_sha256": sha, "devices": ["mon-10"], "wards": ["icu-2"], "canary": 1},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    assert [d["device_id"] for d in made.json()["devices"]] == ["mon-10", "eeg-2", "mon-2"]
    unknown = fleet.client.post(
        "/api/rollouts", headers=AUTH, json={"bundle_sha256": sha, "wards": ["nowhere"]}
    )
    assert unknown.status_code == 404 and "nowhere" in unknown.json()["detail"]
