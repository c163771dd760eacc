"""The rollout messages on the wire (docs/rollouts.md), shared by the fleet and the device.

- fleet -> device, retained, QoS1, on ``edgemed/v1/{device_id}/cmd``: a command (schema
  ``edgemed.command/1``, ``edgemed/schemas/command-1.json``): ``install`` a bundle (which
  archive, where to download it, with which download token, and the rollout's success
  criteria) or ``abort`` a rollout. Retained: a device that was offline gets its command when it
  connects; each command names its rollout, so a repeat is recognised and ignored.
- device -> fleet: the ``rollout`` field of the device's retained status (``edgemed.status/1``),
  published at every step and with every heartbeat, so the fleet always holds the latest
  state even across its own restarts. ``seq`` grows on the device across boots: older reports
  are ignored.

Decoding is strict (PayloadError naming the field): a device acts on nothing it cannot read.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from ..errors import PayloadError

__all__ = [
    "COMMAND_SCHEMA",
    "FAILED_STATES",
    "IN_PROGRESS_STATES",
    "REPORT_STATES",
    "AbortCommand",
    "Criteria",
    "InstallCommand",
    "RolloutReport",
    "decode_command",
    "encode_command",
]

COMMAND_SCHEMA = "edgemed.command/1"
ReportState = Literal[
    "downloading", "verifying", "golden", "shadow", "switching",
    "switched", "failed", "rolled-back", "aborted",
]  # fmt: skip
REPORT_STATES: tuple[str, ...] = get_args(ReportState)
IN_PROGRESS_STATES = frozenset({"downloading", "verifying", "golden", "shadow", "switching"})
FAILED_STATES = frozenset({"failed", "rolled-back"})
_SHA = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_VERSION = re.compile(r"^[0-9A-Za-z.+-]{1,64}$")
_MODEL = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_PATH = re.compile(r"^/[A-Za-z0-9/._-]{1,255}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
MAX_REASON = 500


@dataclass(frozen=True, kw_only=True)
class Criteria:
    """When a new version may serve: over ``shadow_results`` live inputs run beside the serving
    version, at least ``min_agreement`` of them agree (every number within ``abs_tolerance``
    + ``rel_tolerance`` x |serving value|, everything else equal)."""

    shadow_results: int = 20
    min_agreement: float = 0.95
    abs_tolerance: float = 1e-3
    rel_tolerance: float = 1e-3

    def __post_init__(self) -> None:
        if not 1 <= self.shadow_results <= 100_000:
            raise PayloadError("criteria.shadow_results: expected 1 ... 100000")
        for name in ("min_agreement", "abs_tolerance", "rel_tolerance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PayloadError(f"criteria.{name}: expected a number")
            if not math.isfinite(value) or value < 0 or (name == "min_agreement" and value > 1):
                raise PayloadError(f"criteria.{name}: out of range")


@dataclass(frozen=True, kw_only=True)
class InstallCommand:
    """Download, verify, install, shadow-test and switch to one bundle archive."""

    rollout_id: str
    model_id: str
    version: str
    sha256: str  # of the canonical archive (delivery.archive), the download's name
    size: int
    path: str  # download path on the fleet's API, joined to the device's configured fleet URL
    token: str  # download token of this rollout (never the fleet's API token)
    criteria: Criteria


@dataclass(frozen=True, kw_only=True)
class AbortCommand:
    """Stop the rollout: discard its candidate, keep serving what serves now."""

    rollout_id: str


def encode_command(command: InstallCommand | AbortCommand) -> bytes:
    body: dict[str, Any] = {"schema": COMMAND_SCHEMA, "rollout_id": command.rollout_id}
    if isinstance(command, AbortCommand):
        body["command"] = "abort"
    else:
        body.update(asdict(command), command="install")
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _text(data: dict[str, Any], key: str, pattern: re.Pattern[str]) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not pattern.match(value):
        raise PayloadError(f"command.{key}: missing or malformed")
    return value


def _criteria(data: Any) -> Criteria:
    if not isinstance(data, dict) or not set(data) <= set(Criteria.__dataclass_fields__):
        raise PayloadError("command.criteria: expected an object of known criteria")
    shadow = data.get("shadow_results", 20)
    if isinstance(shadow, bool) or not isinstance(shadow, int):
        raise PayloadError("criteria.shadow_results: expected an integer")
    return Criteria(**data)


def decode_command(raw: bytes) -> InstallCommand | AbortCommand:
    """A command from the cmd topic; PayloadError unless it is a well-formed one."""
    if len(raw) > 16 * 1024:
        raise PayloadError("command: over 16 KiB")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise PayloadError(f"command: not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != COMMAND_SCHEMA:
        raise PayloadError(f"command: expected schema {COMMAND_SCHEMA!r}")
    rollout_id = _text(data, "rollout_id", _ID)
    if data.get("command") == "abort":
        return AbortCommand(rollout_id=rollout_id)
    if data.get("command") != "install":
        raise PayloadError("command.command: expected 'install' or 'abort'")
    size = data.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= 1 << 40:
        raise PayloadError("command.size: expected a positive integer")
    return InstallCommand(
        rollout_id=rollout_id,
        model_id=_text(data, "model_id", _MODEL),
        version=_text(data, "version", _VERSION),
        sha256=_text(data, "sha256", _SHA),
        size=size,
        path=_text(data, "path", _PATH),
        token=_text(data, "token", _TOKEN),
        criteria=_criteria(data.get("criteria", {})),
    )


@dataclass(frozen=True, kw_only=True)
class RolloutReport:
    """Where one device stands in one rollout: the ``rollout`` field of its status."""

    rollout_id: str
    state: ReportState
    seq: int  # grows on the device across boots
    at: float
    model_id: str
    version: str
    serving: str | None  # "model_id@version" serving now
    reason: str | None = None  # why it failed, rolled back or was aborted
    downloaded: int = 0
    size: int = 0
    shadow_done: int = 0
    shadow_agree: int = 0
    shadow_needed: int = 0

    def body(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_body(cls, data: Any) -> RolloutReport:
        """The field as the fleet received it (already checked by status-1.json)."""
        if not isinstance(data, dict) or not set(data) <= set(cls.__dataclass_fields__):
            raise PayloadError("status.rollout: expected an object of known fields")
        if data.get("state") not in REPORT_STATES:
            raise PayloadError("status.rollout.state: unknown state")
        try:
            return cls(**data)
        except TypeError as exc:
            raise PayloadError(f"status.rollout: {exc}") from None
