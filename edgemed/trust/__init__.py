"""Signed bundles on the device: trust policies, signature checks, anti-rollback.

A leaf (imports only ``errors`` and ``manifest``), cheap to import: ``cryptography`` loads only
when a signature is checked. :func:`edgemed.load` applies a policy given as ``trust=`` or named
by ``$EDGEMED_TRUST``; without one, bundles load exactly as before (unsigned ones too).
Signing (a private key) is ``edgemed.bundle.signing``'s; docs/signing.md has the formats, the
rules and key rotation.
"""

from __future__ import annotations

from .check import Verified, check_bundle, check_signature, record, unlisted_files
from .policy import POLICY_SCHEMA, TRUST_ENV, TrustPolicy, resolve_policy
from .rollback import STATE_SCHEMA, check_rollback, read_state, record_served
from .signature import (
    ALGORITHM,
    SIGNATURE_FILE,
    SIGNATURE_SCHEMA,
    Signature,
    key_id,
    parse_signature,
    read_signature,
    verify_signature,
)
from .versions import version_key

__all__ = [
    "ALGORITHM",
    "POLICY_SCHEMA",
    "SIGNATURE_FILE",
    "SIGNATURE_SCHEMA",
    "STATE_SCHEMA",
    "TRUST_ENV",
    "Signature",
    "TrustPolicy",
    "Verified",
    "check_bundle",
    "check_rollback",
    "check_signature",
    "key_id",
    "parse_signature",
    "read_signature",
    "read_state",
    "record",
    "record_served",
    "resolve_policy",
    "unlisted_files",
    "verify_signature",
    "version_key",
]
