"""A device's trust policy (schema ``edgemed.trust/1``): which Ed25519 keys may sign the
bundles it serves, which are revoked, whether unsigned bundles may serve at all, and where it
records the versions it has served (anti-rollback).

::

    {"schema": "edgemed.trust/1",
     "keys": {"<key id>": {"public_key": "<base64 of the 32-byte key>", "name": "release-2026"}},
     "revoked": ["<key id>"],
     "allow_unsigned": false,
     "rollback_state": "/var/lib/edgemed/rollback-state.json"}

``rollback_state`` must be given: a path (relative to the policy file's folder) or null, which
turns anti-rollback off on purpose. Every key id must be the id of its key
(:func:`~edgemed.trust.signature.key_id`), so a policy cannot be mislabelled.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import TrustPolicyError
from ..manifest import strict_json
from .signature import b64decode, key_id

__all__ = ["POLICY_SCHEMA", "TRUST_ENV", "TrustPolicy", "resolve_policy"]

POLICY_SCHEMA = "edgemed.trust/1"
TRUST_ENV = "EDGEMED_TRUST"  # path of the policy edgemed.load applies when given none
_MAX_POLICY_BYTES = 1 << 20
_TOP_KEYS = {"schema", "keys", "revoked", "allow_unsigned", "rollback_state"}


@dataclass(frozen=True, kw_only=True)
class TrustPolicy:
    """What a device trusts. ``keys`` maps key id -> raw 32-byte Ed25519 public key;
    ``rollback_state`` is the anti-rollback state file (None: anti-rollback off)."""

    rollback_state: Path | None
    keys: Mapping[str, bytes] = field(default_factory=dict)
    revoked: frozenset[str] = frozenset()
    allow_unsigned: bool = False
    names: Mapping[str, str] = field(default_factory=dict)  # key id -> a human name
    source: str = "trust policy"  # where it came from, for messages

    def __post_init__(self) -> None:
        for kid, raw in self.keys.items():
            if len(raw) != 32 or key_id(raw) != kid:
                raise TrustPolicyError(
                    f"{self.source}: key {kid!r} is not the id of its 32-byte Ed25519 key "
                    f"(that key's id is {key_id(raw)!r})"
                )
        object.__setattr__(self, "revoked", frozenset(self.revoked))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TrustPolicy:
        """Read a policy file (TrustPolicyError naming what is wrong; fail closed)."""
        where = Path(path)
        try:  # symlinks are followed: a device's configuration may be managed elsewhere
            if where.stat().st_size > _MAX_POLICY_BYTES:
                raise TrustPolicyError(f"trust policy {where}: over {_MAX_POLICY_BYTES} bytes")
            raw = where.read_bytes()
        except FileNotFoundError:
            raise TrustPolicyError(f"trust policy {where}: no such file") from None
        except OSError as exc:
            raise TrustPolicyError(f"trust policy {where}: {exc}") from exc
        data = strict_json(raw, f"trust policy {where}", TrustPolicyError)
        return cls.from_json(data, base=where.parent, source=f"trust policy {where}")

    @classmethod
    def from_json(cls, data: Any, *, base: Path, source: str = "trust policy") -> TrustPolicy:
        """A decoded policy; a relative ``rollback_state`` is taken from ``base``."""
        if not isinstance(data, dict):
            raise TrustPolicyError(f"{source}: expected a JSON object")
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise TrustPolicyError(f"{source}: unknown key(s) {unknown}")
        if data.get("schema") != POLICY_SCHEMA:
            raise TrustPolicyError(f"{source}.schema: expected {POLICY_SCHEMA!r}")
        if "rollback_state" not in data:
            raise TrustPolicyError(
                f"{source}: missing key 'rollback_state' (a state file path, or null to turn "
                "anti-rollback off on purpose)"
            )
        state = data["rollback_state"]
        if state is not None and (not isinstance(state, str) or not state):
            raise TrustPolicyError(f"{source}.rollback_state: expected a path or null")
        allow = data.get("allow_unsigned", False)
        revoked = data.get("revoked", [])
        if not isinstance(allow, bool):
            raise TrustPolicyError(f"{source}.allow_unsigned: expected true or false")
        if not isinstance(revoked, list) or not all(isinstance(k, str) for k in revoked):
            raise TrustPolicyError(f"{source}.revoked: expected a list of key ids")
        keys, names = _keys(data.get("keys", {}), source)
        return cls(
            keys=keys,
            names=names,
            revoked=frozenset(revoked),
            allow_unsigned=allow,
            rollback_state=None if state is None else base / state,
            source=source,
        )

    def to_json(self) -> dict[str, Any]:
        """The policy as its file holds it (``rollback_state`` as an absolute path)."""
        import base64

        return {
            "schema": POLICY_SCHEMA,
            "keys": {
                kid: {
                    "public_key": base64.b64encode(raw).decode("ascii"),
                    **({"name": self.names[kid]} if kid in self.names else {}),
                }
                for kid, raw in sorted(self.keys.items())
            },
            "revoked": sorted(self.revoked),
            "allow_unsigned": self.allow_unsigned,
            "rollback_state": None if self.rollback_state is None else str(self.rollback_state),
        }


def _keys(data: Any, source: str) -> tuple[dict[str, bytes], dict[str, str]]:
    if not isinstance(data, dict):
        raise TrustPolicyError(f"{source}.keys: expected an object of key id -> key")
    keys: dict[str, bytes] = {}
    names: dict[str, str] = {}
    for kid, entry in data.items():
        where = f"{source}.keys.{kid}"
        if not isinstance(entry, dict) or not set(entry) <= {"public_key", "name"}:
            raise TrustPolicyError(f"{where}: expected {{'public_key', 'name'}}")
        keys[kid] = b64decode(entry.get("public_key"), f"{where}.public_key", TrustPolicyError, 32)
        if "name" in entry:
            if not isinstance(entry["name"], str):
                raise TrustPolicyError(f"{where}.name: expected a string")
            names[kid] = entry["name"]
    return keys, names


def resolve_policy(trust: TrustPolicy | str | os.PathLike[str] | None) -> TrustPolicy | None:
    """The policy to apply: ``trust`` itself, the file it names, else the file named by
    ``$EDGEMED_TRUST``; None (no policy: unsigned bundles load as before) when neither is set."""
    if isinstance(trust, TrustPolicy):
        return trust
    if trust is None:
        env = os.environ.get(TRUST_ENV, "")
        return TrustPolicy.from_file(env) if env else None
    return TrustPolicy.from_file(trust)
