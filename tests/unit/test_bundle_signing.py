"""Signed bundles under a device trust policy (issue 24): the tamper matrix, each case refused
with a typed error naming the reason BEFORE any runtime opens the model, and the positive
cases (signed bundle loads, key rotation, explicit signed rollback, anti-rollback state).

Every bundle is a copy of the smallest bundled model, signed here with keys made here.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

import edgemed
from edgemed.bundle import generate_key, sign_bundle
from edgemed.registry import find_model_dir
from edgemed.trust import TrustPolicy, read_state, version_key

MODEL = "wdbc-malignancy-mlp"
OTHER = "diabetes-progression"


@dataclass(frozen=True)
class Key:
    file: Path
    kid: str
    raw: bytes


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    folder = tmp_path_factory.mktemp("keys")
    made = {}
    for name in ("old", "new", "rogue"):
        public = generate_key(folder / f"{name}.pem")
        made[name] = Key(
            folder / f"{name}.pem", public["key_id"], base64.b64decode(public["public_key"])
        )
    return made


def _policy(tmp: Path, *trusted: Key, revoked: tuple[Key, ...] = (), **kw: Any) -> TrustPolicy:
    return TrustPolicy(
        keys={k.kid: k.raw for k in trusted},
        revoked=frozenset(k.kid for k in revoked),
        rollback_state=kw.pop("rollback_state", tmp / "rollback-state.json"),
        **kw,
    )


def _copy(tmp: Path, name: str, model: str = MODEL) -> Path:
    return Path(shutil.copytree(find_model_dir(model), tmp / name))


def _edit_manifest(bundle: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2) + "\n")


def _version(tmp: Path, version: str, key: Key, **kw: Any) -> Path:
    """A signed copy of the model at ``version``."""
    bundle = _copy(tmp, f"{MODEL}-{version}")
    _edit_manifest(bundle, lambda d: d.update(version=version))
    sign_bundle(bundle, key.file, **kw)
    return bundle


def _forbid_runtime(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, probing the machine or opening a model on any runtime fails the test;
    the list returned names every such call."""
    calls: list[str] = []

    def forbidden(name: str) -> Callable[..., Any]:
        def call(*_a: Any, **_k: Any) -> Any:
            calls.append(name)
            raise AssertionError(f"{name} called: a runtime was reached before the refusal")

        return call

    monkeypatch.setattr("edgemed.pipeline.probe", forbidden("probe"))
    monkeypatch.setattr("edgemed.backends.onnxruntime.open_model", forbidden("onnxruntime"))
    monkeypatch.setattr("edgemed.backends.openvino.open_model", forbidden("openvino"))
    return calls


@pytest.fixture
def no_runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    calls = _forbid_runtime(monkeypatch)
    yield calls
    assert calls == [], calls


# --- the tamper matrix -------------------------------------------------------------------------
# Each case: tamper with a signed v1.0.0 bundle (or the policy / state), return the folder to
# load; the expected error class and the words of its message that name the reason.


def _swap_artifact(c: Ctx) -> Path:
    shutil.copy(find_model_dir(OTHER) / "model.fp32.onnx", c.bundle / "model.fp32.onnx")
    return c.bundle


def _manifest_rehashed(c: Ctx) -> Path:
    import hashlib

    onnx = c.bundle / "model.fp32.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0x01
    onnx.write_bytes(bytes(data))
    sha = hashlib.sha256(data).hexdigest()
    _edit_manifest(c.bundle, lambda d: d["artifacts"]["model"].update(sha256=sha))
    return c.bundle


def _unknown_key(c: Ctx) -> Path:
    sign_bundle(c.bundle, c.keys["rogue"].file)
    return c.bundle


def _revoked_key(c: Ctx) -> Path:
    c.policy = _policy(c.tmp, c.keys["old"], c.keys["new"], revoked=(c.keys["old"],))
    return c.bundle


def _replayed_older(c: Ctx) -> Path:
    newer = _version(c.tmp, "1.1.0", c.keys["old"])
    edgemed.load(newer, trust=c.policy, golden=False).close()  # served (runtime allowed here)
    c.arm()
    return c.bundle


def _truncated(c: Ctx) -> Path:
    onnx = c.bundle / "model.fp32.onnx"
    onnx.write_bytes(onnx.read_bytes()[:1000])
    return c.bundle


def _extra_file(c: Ctx) -> Path:
    (c.bundle / "golden" / "extra.onnx").write_bytes(b"not listed")
    return c.bundle


def _symlink_outside(c: Ctx) -> Path:
    outside = c.tmp / "elsewhere.onnx"  # the very same bytes: only the link is wrong
    shutil.copy(c.bundle / "model.fp32.onnx", outside)
    (c.bundle / "model.fp32.onnx").unlink()
    (c.bundle / "model.fp32.onnx").symlink_to(outside)
    return c.bundle


def _path_traversal(c: Ctx) -> Path:
    import hashlib

    (c.tmp / "outside").mkdir()
    card = (c.bundle / "MODEL_CARD.md").read_bytes()
    (c.tmp / "outside" / "card.md").write_bytes(card)
    sha = hashlib.sha256(card).hexdigest()
    path = "golden/../../outside/card.md"
    _edit_manifest(c.bundle, lambda d: d["artifacts"]["model_card"].update(path=path, sha256=sha))
    return c.bundle


def _duplicate_keys(c: Ctx) -> Path:
    path = c.bundle / "manifest.json"
    text = path.read_text()
    path.write_text(
        text.replace('"version": "1.0.0",', '"version": "1.0.0", "version": "0.1.0",', 1)
    )
    return c.bundle


def _signature_missing(c: Ctx) -> Path:
    (c.bundle / "signature.json").unlink()
    return c.bundle


def _signature_of_other_bundle(c: Ctx) -> Path:
    other = _copy(c.tmp, OTHER, OTHER)
    sign_bundle(other, c.keys["old"].file)  # a valid signature by a trusted key, elsewhere
    shutil.copy(other / "signature.json", c.bundle / "signature.json")
    return c.bundle


def _signature_of_other_version(c: Ctx) -> Path:
    newer = _version(c.tmp, "1.1.0", c.keys["old"])
    shutil.copy(newer / "signature.json", c.bundle / "signature.json")
    return c.bundle


def _huge_manifest(c: Ctx) -> Path:
    path = c.bundle / "manifest.json"
    path.write_bytes(path.read_bytes() + b" " * (1 << 20))  # still valid JSON
    return c.bundle


def _forged_rollback(c: Ctx) -> Path:
    path = c.bundle / "signature.json"
    data = json.loads(path.read_text())
    data["rollback"] = {"from": "99.0.0"}  # not what was signed
    path.write_text(json.dumps(data))
    return c.bundle


def _nan_in_manifest(c: Ctx) -> Path:
    path = c.bundle / "manifest.json"
    text = path.read_text()
    path.write_text(text.replace('"max_abs_diff": ', '"max_abs_diff": NaN, "x": ', 1))
    return c.bundle


def _infinite_limit(c: Ctx) -> Path:
    path = c.bundle / "manifest.json"
    text = path.read_text()
    path.write_text(text.replace('"max_abs_diff": ', '"max_abs_diff": 1e999, "x": ', 1))
    return c.bundle


def _symlinked_manifest(c: Ctx) -> Path:
    real = c.tmp / "manifest-elsewhere.json"
    shutil.move(c.bundle / "manifest.json", real)
    (c.bundle / "manifest.json").symlink_to(real)
    return c.bundle


def _unorderable_version(c: Ctx) -> Path:
    """Signed by hand: sign_bundle itself refuses a version devices cannot order."""
    import hashlib

    from cryptography.hazmat.primitives import serialization

    from edgemed.trust import Signature

    _edit_manifest(c.bundle, lambda d: d.update(version="v2-final"))
    key: Any = serialization.load_pem_private_key(c.keys["old"].file.read_bytes(), None)
    raw = (c.bundle / "manifest.json").read_bytes()
    sig = Signature(
        key_id=c.keys["old"].kid,
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
        model_id=MODEL,
        model_version="v2-final",
        rollback_from=None,
    )
    sig = replace(sig, signature=key.sign(sig.message()))
    (c.bundle / "signature.json").write_text(json.dumps(sig.to_json()))
    return c.bundle


def _damaged_state(c: Ctx) -> Path:
    (c.tmp / "rollback-state.json").write_text('{"schema": "edgemed.rollback-state/1", "mod')
    return c.bundle


@dataclass
class Ctx:
    tmp: Path
    bundle: Path
    keys: dict[str, Key]
    policy: TrustPolicy
    arm: Callable[[], None]


E = edgemed
MATRIX: list[tuple[str, Callable[[Ctx], Path], type[Exception], str]] = [
    ("artifact swapped", _swap_artifact, E.IntegrityError, "'model'.*corrupt or was modified"),
    (
        "manifest edited, sha256 matching",
        _manifest_rehashed,
        E.SignatureError,
        "changed after signing",
    ),
    ("unknown key", _unknown_key, E.SignatureError, "unknown to the"),
    ("revoked key", _revoked_key, E.SignatureError, "revokes"),
    (
        "older version replayed",
        _replayed_older,
        E.RollbackError,
        "older than 1.1.0, which this device has served",
    ),
    ("truncated artifact", _truncated, E.IntegrityError, "'model'.*corrupt or was modified"),
    ("extra file", _extra_file, E.IntegrityError, r"does not list: golden/extra\.onnx"),
    ("symlink outside the bundle", _symlink_outside, E.IntegrityError, "is a symlink"),
    ("path traversal", _path_traversal, E.ManifestError, r"model_card\.path: must be relative"),
    ("duplicate keys", _duplicate_keys, E.ManifestError, "duplicate key 'version'"),
    ("signature missing", _signature_missing, E.SignatureError, "unsigned"),
    (
        "signature of another bundle",
        _signature_of_other_bundle,
        E.SignatureError,
        "is for diabetes-progression@1.0.0",
    ),
    (
        "signature of another version",
        _signature_of_other_version,
        E.SignatureError,
        "is for wdbc-malignancy-mlp@1.1.0",
    ),
    ("huge manifest", _huge_manifest, E.ManifestError, "over the 1048576-byte limit"),
    ("rollback permission forged", _forged_rollback, E.SignatureError, "does not verify"),
    ("NaN in the manifest", _nan_in_manifest, E.ManifestError, "NaN is not JSON"),
    ("manifest.json a symlink", _symlinked_manifest, E.ManifestError, "is a symlink"),
    ("version not semantic", _unorderable_version, E.RollbackError, "not a semantic version"),
    (
        "rollback state damaged",
        _damaged_state,
        E.TrustPolicyError,
        "rollback state .* not valid JSON",
    ),
]


@pytest.mark.parametrize(("case", "tamper", "error", "reason"), MATRIX, ids=[m[0] for m in MATRIX])
def test_tampered_bundle_is_refused_before_any_runtime(
    case: str,
    tamper: Callable[[Ctx], Path],
    error: type[Exception],
    reason: str,
    keys: dict[str, Key],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle = _copy(tmp_path, MODEL)
    sign_bundle(bundle, keys["old"].file)
    armed: list[list[str]] = []

    def arm() -> None:  # from here on, reaching a runtime fails the test
        armed.append(_forbid_runtime(monkeypatch))

    ctx = Ctx(tmp_path, bundle, keys, _policy(tmp_path, keys["old"]), arm)
    if tamper is not _replayed_older:
        arm()
    target = tamper(ctx)
    with pytest.raises(error, match=reason) as caught:
        edgemed.load(target, trust=ctx.policy)
    assert type(caught.value) is error, f"{case}: {type(caught.value).__name__}: {caught.value}"
    assert armed and armed[0] == [], armed


# --- what applies with no trust policy at all --------------------------------------------------


@pytest.mark.parametrize(
    ("tamper", "error", "reason"),
    [
        (_symlink_outside, edgemed.IntegrityError, "is a symlink"),
        (_path_traversal, edgemed.ManifestError, "must be relative"),
        (_duplicate_keys, edgemed.ManifestError, "duplicate key"),
        (_huge_manifest, edgemed.ManifestError, "byte limit"),
        (_nan_in_manifest, edgemed.ManifestError, "NaN is not JSON"),
        (_infinite_limit, edgemed.ManifestError, "1e999 is not a finite number"),
        (_truncated, edgemed.IntegrityError, "corrupt or was modified"),
    ],
)
def test_manifest_hardening_applies_without_a_policy(
    tamper: Callable[[Ctx], Path],
    error: type[Exception],
    reason: str,
    keys: dict[str, Key],
    tmp_path: Path,
    no_runtime: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EDGEMED_TRUST", raising=False)
    bundle = _copy(tmp_path, MODEL)
    tamper(Ctx(tmp_path, bundle, keys, _policy(tmp_path), lambda: None))
    with pytest.raises(error, match=reason):
        edgemed.load(bundle)


def test_without_a_policy_unsigned_and_extra_files_still_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EDGEMED_TRUST", raising=False)
    bundle = _copy(tmp_path, MODEL)
    (bundle / "notes.txt").write_text("kept by the operator")
    with edgemed.load(bundle) as pipe:  # exactly as before signing existed
        assert pipe.manifest.id == MODEL


def test_bundle_folder_may_be_reached_through_a_symlink(
    keys: dict[str, Key], tmp_path: Path
) -> None:
    """Devices switch versions by re-pointing a link to the bundle folder: that is allowed."""
    bundle = _version(tmp_path, "1.0.0", keys["old"])
    (tmp_path / "current").symlink_to(bundle, target_is_directory=True)
    with edgemed.load(tmp_path / "current", trust=_policy(tmp_path, keys["old"])) as pipe:
        assert pipe.manifest.version == "1.0.0"


# --- the positive cases ------------------------------------------------------------------------


def test_signed_bundle_loads_and_its_version_is_recorded(
    keys: dict[str, Key], tmp_path: Path
) -> None:
    bundle = _version(tmp_path, "1.0.0", keys["old"])
    policy = _policy(tmp_path, keys["old"])
    row = json.loads((bundle / "golden" / "inputs.json").read_text())[0]
    with edgemed.load(bundle, trust=policy) as pipe:
        assert pipe(row).provenance.model_version == "1.0.0"
    state_file = tmp_path / "rollback-state.json"
    entry = read_state(state_file)[MODEL]
    assert entry["highest"] == "1.0.0" and entry["key_id"] == keys["old"].kid
    assert not entry["rolled_back"]
    before = state_file.stat().st_mtime_ns
    edgemed.load(bundle, trust=policy, golden=False).close()  # a restart: nothing to write
    assert state_file.stat().st_mtime_ns == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_policy_file_and_environment(
    keys: dict[str, Key], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = _version(tmp_path, "1.0.0", keys["old"])
    policy_file = tmp_path / "policy" / "trust.json"
    policy_file.parent.mkdir()
    data = _policy(tmp_path, keys["old"]).to_json()
    policy_file.write_text(json.dumps({**data, "rollback_state": "state.json"}))
    edgemed.load(bundle, trust=policy_file, golden=False).close()
    assert read_state(policy_file.parent / "state.json")[MODEL]["highest"] == "1.0.0"
    monkeypatch.setenv("EDGEMED_TRUST", str(policy_file))
    with pytest.raises(edgemed.SignatureError, match="unsigned"):
        edgemed.load(MODEL)  # the bundled models are unsigned
    policy_file.write_text(json.dumps({**data, "allow_unsigned": True, "rollback_state": None}))
    edgemed.load(MODEL, golden=False).close()
    policy_file.write_text(json.dumps({**data, "rollback_state": None, "surprise": 1}))
    with pytest.raises(edgemed.TrustPolicyError, match="unknown key"):
        edgemed.load(bundle)
    mislabelled = {
        **data,
        "rollback_state": None,
        "keys": {keys["new"].kid: data["keys"][keys["old"].kid]},
    }
    policy_file.write_text(json.dumps(mislabelled))
    with pytest.raises(edgemed.TrustPolicyError, match="not the id of its"):
        edgemed.load(bundle)
    policy_file.write_text(json.dumps({k: v for k, v in data.items() if k != "rollback_state"}))
    with pytest.raises(edgemed.TrustPolicyError, match="rollback_state"):
        edgemed.load(bundle)


def test_allow_unsigned_still_refuses_extra_files_and_bad_signatures(
    keys: dict[str, Key], tmp_path: Path, no_runtime: list[str]
) -> None:
    policy = _policy(tmp_path, keys["old"], allow_unsigned=True)
    bundle = _copy(tmp_path, MODEL)
    (bundle / ".DS_Store").write_bytes(b"")
    with pytest.raises(edgemed.IntegrityError, match=r"does not list: \.DS_Store"):
        edgemed.load(bundle, trust=policy)
    (bundle / ".DS_Store").unlink()
    sign_bundle(bundle, keys["rogue"].file)  # a signature present must verify
    with pytest.raises(edgemed.SignatureError, match="unknown to the"):
        edgemed.load(bundle, trust=policy)


def test_key_rotation(keys: dict[str, Key], tmp_path: Path) -> None:
    """Trust old and new; re-sign with the new key; then revoke the old one."""
    old, new = keys["old"], keys["new"]
    bundle = _version(tmp_path, "1.0.0", old)
    kept_old = Path(shutil.copytree(bundle, tmp_path / "signed-by-old"))
    both = _policy(tmp_path, old, new, rollback_state=None)
    edgemed.load(bundle, trust=both, golden=False).close()  # step 1: devices trust both keys
    sign_bundle(bundle, new.file)  # step 2: every bundle re-signed with the new key
    edgemed.load(bundle, trust=both, golden=False).close()
    rotated = _policy(tmp_path, new, revoked=(old,), rollback_state=None)  # step 3: revoke old
    edgemed.load(bundle, trust=rotated, golden=False).close()
    with pytest.raises(edgemed.SignatureError, match=f"key {old.kid}, which the .* revokes"):
        edgemed.load(kept_old, trust=rotated, golden=False)
    # revocation wins even where the revoked key is still listed as trusted
    with pytest.raises(edgemed.SignatureError, match="revokes"):
        edgemed.load(kept_old, trust=_policy(tmp_path, old, new, revoked=(old,)), golden=False)


def test_explicit_signed_rollback(keys: dict[str, Key], tmp_path: Path) -> None:
    key = keys["old"]
    policy = _policy(tmp_path, key)
    state = tmp_path / "rollback-state.json"
    v100 = _version(tmp_path, "1.0.0", key)
    v110 = _version(tmp_path, "1.1.0", key)
    edgemed.load(v100, trust=policy, golden=False).close()
    edgemed.load(v110, trust=policy, golden=False).close()
    with pytest.raises(edgemed.RollbackError, match="grants no rollback"):
        edgemed.load(v100, trust=policy, golden=False)
    back = Path(shutil.copytree(v100, tmp_path / "rollback"))
    sign_bundle(back, key.file, rollback_from="1.1.0")
    with edgemed.load(back, trust=policy) as pipe:  # the signed rollback serves
        assert pipe.manifest.version == "1.0.0"
    entry = read_state(state)[MODEL]
    assert entry == {**entry, "highest": "1.1.0", "rolled_back": True, "serving": "1.0.0"}
    with pytest.raises(edgemed.RollbackError, match=r"1\.1\.0 was rolled back from"):
        edgemed.load(v110, trust=policy, golden=False)  # the withdrawn version stays out
    edgemed.load(back, trust=policy, golden=False).close()  # a restart on the rollback
    v120 = _version(tmp_path, "1.2.0", key)
    edgemed.load(v120, trust=policy, golden=False).close()  # only a higher version moves on
    assert read_state(state)[MODEL]["rolled_back"] is False
    with pytest.raises(
        edgemed.RollbackError, match=r"grants a rollback from versions up to 1\.1\.0"
    ):
        edgemed.load(back, trust=policy, golden=False)  # the old permission does not reach 1.2.0


def test_state_write_is_atomic(
    keys: dict[str, Key], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = _policy(tmp_path, keys["old"])
    state = tmp_path / "rollback-state.json"
    edgemed.load(_version(tmp_path, "1.0.0", keys["old"]), trust=policy, golden=False).close()
    before = state.read_bytes()
    newer = _version(tmp_path, "1.1.0", keys["old"])
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])

    def power_cut(*_a: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(edgemed.TrustPolicyError, match="cannot record"):
        edgemed.load(newer, trust=policy, golden=False)  # not served: it cannot be recorded
    assert state.read_bytes() == before and synced
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    edgemed.load(newer, trust=policy, golden=False).close()
    assert read_state(state)[MODEL]["highest"] == "1.1.0"


def test_golden_failure_is_not_recorded_as_served(
    keys: dict[str, Key], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = _policy(tmp_path, keys["old"])
    monkeypatch.setattr(edgemed.Pipeline, "check_golden", lambda self: ["drifted"])
    with pytest.raises(edgemed.GoldenMismatchError):
        edgemed.load(_version(tmp_path, "2.0.0", keys["old"]), trust=policy)
    assert read_state(tmp_path / "rollback-state.json") == {}


def test_sign_refuses_what_devices_would_refuse(keys: dict[str, Key], tmp_path: Path) -> None:
    bundle = _copy(tmp_path, MODEL)
    (bundle / "notes.txt").write_text("x")
    with pytest.raises(edgemed.IntegrityError, match=r"notes\.txt"):
        sign_bundle(bundle, keys["old"].file)
    (bundle / "notes.txt").unlink()
    _edit_manifest(bundle, lambda d: d.update(version="1.0"))
    with pytest.raises(edgemed.RollbackError, match="not a semantic version"):
        sign_bundle(bundle, keys["old"].file)
    assert not (bundle / "signature.json").exists()
    (tmp_path / "not-a-key.pem").write_text("hello")
    with pytest.raises(edgemed.InputError, match="not an unencrypted PEM private key"):
        sign_bundle(bundle, tmp_path / "not-a-key.pem")
    with pytest.raises(FileExistsError):
        generate_key(keys["old"].file)  # a key is never overwritten
    assert keys["old"].file.stat().st_mode & 0o777 == 0o600


def test_semantic_version_order() -> None:
    ordered = [
        "0.9.9", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
        "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.2.0", "1.10.0", "2.0.0",
    ]  # fmt: skip
    keys_ = [version_key(v, "v") for v in ordered]
    assert keys_ == sorted(keys_) and len(set(keys_)) == len(keys_)
    assert version_key("1.0.0+build.5", "v") == version_key("1.0.0", "v")
    for bad in ("1.0", "01.0.0", "v1.0.0", "1.0.0-", "1.0.0-01", "", "1.0.0 "):
        with pytest.raises(edgemed.RollbackError, match="not a semantic version"):
            version_key(bad, "v")
