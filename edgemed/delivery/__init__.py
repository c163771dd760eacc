"""How bundles reach devices: the canonical bundle archive and the rollout messages.

A leaf shared by the fleet (``fleet/rollouts/``: uploads, rollouts, downloads) and the device
(``ota/``: download, verify, install, shadow, switch); it imports only ``errors``.
docs/rollouts.md has the whole path.
"""

from __future__ import annotations

from .archive import MAX_BUNDLE_BYTES, pack_bundle, sha256_file, unpack_bundle
from .messages import (
    COMMAND_SCHEMA,
    FAILED_STATES,
    IN_PROGRESS_STATES,
    REPORT_STATES,
    AbortCommand,
    Criteria,
    InstallCommand,
    RolloutReport,
    decode_command,
    encode_command,
)

__all__ = [
    "COMMAND_SCHEMA",
    "FAILED_STATES",
    "IN_PROGRESS_STATES",
    "MAX_BUNDLE_BYTES",
    "REPORT_STATES",
    "AbortCommand",
    "Criteria",
    "InstallCommand",
    "RolloutReport",
    "decode_command",
    "encode_command",
    "pack_bundle",
    "sha256_file",
    "unpack_bundle",
]
