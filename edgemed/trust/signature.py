"""``signature.json`` (schema ``edgemed.signature/1``): a detached Ed25519 signature over one
bundle's exact manifest.json bytes, bound to its model id and version.

The signed message is ``b"edgemed.signature/1\\n"`` followed by the canonical JSON (sorted
keys, no spaces, ASCII) of every field but ``signature``: the schema, the algorithm, the key
id, the sha256 of manifest.json, ``model`` {id, version} and ``rollback`` (null, or
{"from": VERSION}: this version may be served on a device that has served versions up to
VERSION). The manifest pins every artifact's sha256, so the signature covers the whole bundle.
``cryptography`` is imported only when a signature is checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SignatureError
from ..manifest import read_bundle_file, strict_json

__all__ = [
    "ALGORITHM",
    "SIGNATURE_FILE",
    "SIGNATURE_SCHEMA",
    "Signature",
    "key_id",
    "parse_signature",
    "read_signature",
    "verify_signature",
]

SIGNATURE_FILE = "signature.json"
SIGNATURE_SCHEMA = "edgemed.signature/1"
ALGORITHM = "ed25519"
MAX_SIGNATURE_BYTES = 64 * 1024
_DOMAIN = SIGNATURE_SCHEMA.encode() + b"\n"  # a signature over anything else never verifies here
_KEY_ID_RE = re.compile(r"^[0-9a-f]{16}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_KEYS = {"schema", "algorithm", "key_id", "manifest_sha256", "model", "rollback", "signature"}


def key_id(public_key: bytes) -> str:
    """The id of a raw 32-byte Ed25519 public key: the first 16 hex digits of its sha256."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def b64decode(text: object, where: str, error: type[Exception], size: int) -> bytes:
    """Strict base64 of exactly ``size`` bytes."""
    try:
        raw = base64.b64decode(text, validate=True) if isinstance(text, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise error(f"{where}: expected the base64 of {size} bytes")
    return raw


@dataclass(frozen=True, kw_only=True)
class Signature:
    key_id: str
    manifest_sha256: str
    model_id: str
    model_version: str
    rollback_from: str | None  # signed permission: may replace versions up to this one
    signature: bytes = b""

    def payload(self) -> dict[str, Any]:
        return {
            "schema": SIGNATURE_SCHEMA,
            "algorithm": ALGORITHM,
            "key_id": self.key_id,
            "manifest_sha256": self.manifest_sha256,
            "model": {"id": self.model_id, "version": self.model_version},
            "rollback": None if self.rollback_from is None else {"from": self.rollback_from},
        }

    def message(self) -> bytes:
        """The exact bytes the Ed25519 signature is over."""
        canonical = json.dumps(
            self.payload(), sort_keys=True, separators=(",", ":"), ensure_ascii=True
        )
        return _DOMAIN + canonical.encode("ascii")

    def to_json(self) -> dict[str, Any]:
        return {**self.payload(), "signature": base64.b64encode(self.signature).decode("ascii")}


def _field(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise SignatureError(f"{where}.{key}: expected a non-empty string")
    return value


def parse_signature(data: Any, where: str) -> Signature:
    """A decoded signature.json, strictly (SignatureError naming the field)."""
    if not isinstance(data, dict):
        raise SignatureError(f"{where}: expected a JSON object")
    unknown = sorted(set(data) - _KEYS)
    if unknown:  # nothing may ride along unsigned
        raise SignatureError(f"{where}: unknown key(s) {unknown}")
    if data.get("schema") != SIGNATURE_SCHEMA:
        raise SignatureError(f"{where}.schema: expected {SIGNATURE_SCHEMA!r}")
    if data.get("algorithm") != ALGORITHM:
        raise SignatureError(f"{where}.algorithm: expected {ALGORITHM!r}")
    kid, sha = _field(data, "key_id", where), _field(data, "manifest_sha256", where)
    if not _KEY_ID_RE.match(kid) or not _SHA_RE.match(sha):
        raise SignatureError(f"{where}: key_id needs 16 and manifest_sha256 64 lowercase hex")
    model = data.get("model")
    if not isinstance(model, dict) or set(model) != {"id", "version"}:
        raise SignatureError(f"{where}.model: expected {{'id', 'version'}}")
    rollback = data.get("rollback")
    if rollback is not None and (not isinstance(rollback, dict) or set(rollback) != {"from"}):
        raise SignatureError(f"{where}.rollback: expected null or {{'from': VERSION}}")
    return Signature(
        key_id=kid,
        manifest_sha256=sha,
        model_id=_field(model, "id", f"{where}.model"),
        model_version=_field(model, "version", f"{where}.model"),
        rollback_from=None if rollback is None else _field(rollback, "from", f"{where}.rollback"),
        signature=b64decode(data.get("signature"), f"{where}.signature", SignatureError, 64),
    )


def read_signature(bundle: Path) -> Signature | None:
    """The bundle's signature.json parsed (None if there is none)."""
    path = bundle / SIGNATURE_FILE
    raw = read_bundle_file(path, MAX_SIGNATURE_BYTES, SignatureError)
    if raw is None:
        return None
    return parse_signature(strict_json(raw, str(path), SignatureError), str(path))


def verify_signature(signature: Signature, public_key: bytes) -> bool:
    """Whether ``signature`` verifies under the raw Ed25519 ``public_key``."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError as exc:  # a core dependency: only a --no-deps install lacks it
        raise ImportError(
            "checking bundle signatures needs the 'cryptography' package: pip install cryptography"
        ) from exc
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            signature.signature, signature.message()
        )
    except InvalidSignature:
        return False
    return True
