"""``edgemed ota status --root DIR``: what a device's rollout agent has on disk (docs/rollouts.md):
the serving version and the one before it, whether the last switch was confirmed, and where
the latest rollout stands and why. Reads the files only; starts nothing."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import InputError
from .args import Subparsers

__all__ = ["add_ota_commands"]


def _status(args: argparse.Namespace) -> int:
    from ..ota.layout import Layout

    root = Path(args.root)
    if not (root / "current.json").is_file():
        raise InputError(f"{root}: no OTA folder (no current.json): nothing installed there")
    layout = Layout(root, prepare=False)  # never touches a running agent's files
    pointer, state = layout.pointer(), layout.state()
    assert pointer is not None
    command = state.command or {}
    body: dict[str, Any] = {
        "serving": f"{pointer.model_id}@{pointer.version}",
        "confirmed": pointer.confirmed,
        "previous": None if pointer.previous is None else pointer.previous.version,
        "rollout": None
        if not command
        else {
            "rollout_id": command.get("rollout_id"),
            "version": command.get("version"),
            "state": state.phase,
            "reason": state.reason,
            "starts": state.attempts,
            "shadow": state.shadow,
        },
        "installed": sorted(p.name for p in layout.versions.glob("*")),
    }
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    print(f"serving {body['serving']}{'' if pointer.confirmed else ' (switch not confirmed)'}")
    print(f"previous {body['previous'] or '-'}; installed {', '.join(body['installed'])}")
    rollout = body["rollout"]
    if rollout:
        why = f": {rollout['reason']}" if rollout["reason"] else ""
        print(f"rollout {rollout['rollout_id']} to {rollout['version']}: {rollout['state']}{why}")
    return 0


def add_ota_commands(sub: Subparsers) -> None:
    ota = sub.add_parser("ota", help="the device's model rollouts (edgemed.ota)")
    ota_sub = ota.add_subparsers(dest="ota_command", required=True)
    status = ota_sub.add_parser(
        "status", help="serving version, previous version, latest rollout and why it ended"
    )
    status.add_argument("--root", type=Path, required=True, help="the agent's OtaConfig.root")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=_status)
