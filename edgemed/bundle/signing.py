"""``edgemed bundle keygen | sign``: Ed25519 keys and detached bundle signatures.

The private key stays with whoever releases bundles (a PEM file, mode 0600, never on a
device); devices hold only public keys, in their trust policy (``edgemed.trust``). Signing
checks the bundle as a device under a policy would (every sha256, no unlisted file, a
semantic version) so that a bundle is never signed in a state devices refuse.
docs/signing.md has the formats and key rotation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import InputError, IntegrityError
from ..manifest import MANIFEST_FILE, manifest_bytes, parse_manifest, strict_json, verify_artifacts
from ..trust import SIGNATURE_FILE, Signature, key_id, unlisted_files, version_key
from ..trust.rollback import write_file_atomically

__all__ = ["generate_key", "public_key_of", "sign_bundle"]


def _ed25519() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519


def generate_key(out: Path) -> dict[str, str]:
    """A new Ed25519 key: the private key as PKCS#8 PEM in ``out`` (created 0600, never
    overwritten) and its public half as ``<out>.pub.json`` ({key_id, public_key, algorithm},
    ready for a trust policy's ``keys``). Returns the public half."""
    from cryptography.hazmat.primitives import serialization

    private = _ed25519().Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = _public_json(private.public_key().public_bytes_raw())
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # FileExistsError: kept
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    Path(f"{out}.pub.json").write_text(json.dumps(public, indent=2) + "\n", encoding="utf-8")
    return public


def _public_json(raw: bytes) -> dict[str, str]:
    return {
        "key_id": key_id(raw),
        "public_key": base64.b64encode(raw).decode("ascii"),
        "algorithm": "ed25519",
    }


def _private_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:  # not PEM, encrypted, or unsupported
        raise InputError(f"{path}: not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, _ed25519().Ed25519PrivateKey):
        raise InputError(f"{path}: not an Ed25519 private key (edgemed bundle keygen makes one)")
    return key


def public_key_of(key_file: Path) -> dict[str, str]:
    """The public half of a private key file, as ``generate_key`` returns it."""
    return _public_json(_private_key(key_file).public_key().public_bytes_raw())


def sign_bundle(bundle: Path, key_file: Path, *, rollback_from: str | None = None) -> Signature:
    """Write ``bundle/signature.json``: the key's Ed25519 signature over the exact
    manifest.json bytes, the model id and version, and (``rollback_from``) a signed permission
    to serve this version on devices that have served versions up to ``rollback_from``.
    Refuses a bundle a device would refuse (IntegrityError, ManifestError, RollbackError)."""
    key = _private_key(key_file)
    raw = manifest_bytes(bundle)
    manifest = parse_manifest(strict_json(raw, str(bundle / MANIFEST_FILE)), bundle)
    version_key(manifest.version, f"{manifest.id} version")
    if rollback_from is not None:
        version_key(rollback_from, "--rollback-from version")
    extra = unlisted_files(manifest)
    if extra:
        raise IntegrityError(
            f"{bundle}: file(s) the manifest does not list: {', '.join(extra)}; devices with "
            "a trust policy refuse them: remove them before signing"
        )
    verify_artifacts(manifest)
    unsigned = Signature(
        key_id=key_id(key.public_key().public_bytes_raw()),
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
        model_id=manifest.id,
        model_version=manifest.version,
        rollback_from=rollback_from,
    )
    signed = replace(unsigned, signature=key.sign(unsigned.message()))
    write_file_atomically(
        bundle / SIGNATURE_FILE, (json.dumps(signed.to_json(), indent=2) + "\n").encode()
    )
    return signed
