"""A bundle checked against a device's trust policy, entirely before any runtime opens it:
manifest (strict, <= 1 MiB), signature (trusted, not revoked, valid, for this very manifest
and model version), no file the manifest does not list, every artifact's sha256, then
anti-rollback."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import IntegrityError, SignatureError
from ..manifest import MANIFEST_FILE, Manifest, manifest_bytes, parse_manifest, strict_json
from ..manifest import verify_artifacts as _verify_artifacts
from .policy import TrustPolicy
from .rollback import check_rollback, record_served
from .signature import SIGNATURE_FILE, Signature, read_signature, verify_signature

__all__ = ["Verified", "check_bundle", "check_signature", "record", "unlisted_files"]


@dataclass(frozen=True, kw_only=True)
class Verified:
    """What :func:`check_bundle` established about one bundle."""

    manifest: Manifest
    manifest_sha256: str  # of the exact bytes parsed
    signature: Signature | None  # None: unsigned, and the policy allows that


def check_signature(
    signature: Signature | None, manifest: Manifest, manifest_sha256: str, policy: TrustPolicy
) -> None:
    """SignatureError unless ``signature`` is a valid signature of this manifest by a key
    the policy trusts (or is absent and the policy allows unsigned bundles)."""
    name = f"{manifest.id} ({manifest.root})"
    if signature is None:
        if policy.allow_unsigned:
            return
        raise SignatureError(
            f"{name}: unsigned (no {SIGNATURE_FILE}), and the {policy.source} does not allow "
            "unsigned bundles"
        )
    kid = signature.key_id
    if kid in policy.revoked:
        raise SignatureError(f"{name}: signed with key {kid}, which the {policy.source} revokes")
    if kid not in policy.keys:
        raise SignatureError(f"{name}: signed with key {kid}, unknown to the {policy.source}")
    if not verify_signature(signature, policy.keys[kid]):
        raise SignatureError(f"{name}: the signature by key {kid} does not verify")
    signed = f"{signature.model_id}@{signature.model_version}"
    if signed != f"{manifest.id}@{manifest.version}":
        raise SignatureError(
            f"{name}: the signature is for {signed}, this manifest is "
            f"{manifest.id}@{manifest.version} (a signature copied from another bundle?)"
        )
    if signature.manifest_sha256 != manifest_sha256:
        raise SignatureError(
            f"{name}: manifest.json has sha256 {manifest_sha256[:12]}…, the signature is over "
            f"{signature.manifest_sha256[:12]}…: the manifest was changed after signing or the "
            "signature belongs to another manifest"
        )


def unlisted_files(manifest: Manifest) -> list[str]:
    """Entries of the bundle folder that are neither an artifact, manifest.json nor
    signature.json (symlinked folders and special files included), relative to it."""
    listed = {os.path.normpath(a.path) for a in manifest.artifacts.values()}
    listed |= {MANIFEST_FILE, SIGNATURE_FILE}

    def fail(exc: OSError) -> None:
        raise IntegrityError(f"{manifest.id}: cannot list the bundle folder: {exc}") from exc

    found: list[str] = []
    for folder, dirs, files in os.walk(manifest.root, onerror=fail):
        rel = os.path.relpath(folder, manifest.root)
        for name in dirs:  # os.walk lists symlinked folders here without entering them
            if os.path.islink(os.path.join(folder, name)):
                found.append(os.path.normpath(os.path.join(rel, name)))
        for name in files:
            path = os.path.normpath(os.path.join(rel, name))
            if path not in listed:
                found.append(path)
    return sorted(found)


def check_bundle(model_dir: Path, policy: TrustPolicy) -> Verified:
    """Everything :func:`edgemed.load` checks under ``policy`` before it opens a runtime:
    ManifestError, SignatureError, IntegrityError or RollbackError naming the reason."""
    raw = manifest_bytes(model_dir)
    manifest = parse_manifest(strict_json(raw, str(model_dir / MANIFEST_FILE)), model_dir)
    digest = hashlib.sha256(raw).hexdigest()
    signature = read_signature(model_dir)
    check_signature(signature, manifest, digest, policy)
    extra = unlisted_files(manifest)
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        raise IntegrityError(
            f"{manifest.id}: file(s) the manifest does not list: {shown}; under a trust "
            "policy a bundle holds only its manifest, its signature and its artifacts"
        )
    _verify_artifacts(manifest)
    if policy.rollback_state is not None:
        check_rollback(policy.rollback_state, manifest, signature)
    return Verified(manifest=manifest, manifest_sha256=digest, signature=signature)


def record(policy: TrustPolicy, verified: Verified) -> None:
    """After the bundle served (loaded, golden vectors passed): remember its version."""
    if policy.rollback_state is not None:
        record_served(
            policy.rollback_state, verified.manifest, verified.signature, verified.manifest_sha256
        )
