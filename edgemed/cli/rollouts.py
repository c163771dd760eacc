"""``edgemed fleet bundles …`` and ``edgemed fleet rollouts …``: upload signed bundles and run
rollouts through a running fleet's REST API (``--fleet URL``, default ``$EDGEMED_FLEET_URL``
or http://127.0.0.1:8080; token from ``$EDGEMED_FLEET_TOKEN``); plus ``fleet serve``'s
``--bundle-dir`` and ``--trust``. docs/rollouts.md.

Fleet side only: imports the fleet package and leaves, never a runtime.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InputError, SyncError
from .args import Subparsers, positive_int

__all__ = ["add_rollout_commands", "bundle_shelf"]


def bundle_shelf(args: argparse.Namespace) -> Any:
    """``fleet serve``'s bundle shelf: --bundle-dir (default beside a SQLite store) and the
    trust policy uploads must pass (--trust; without one the fleet accepts no bundle)."""
    from ..fleet.rollouts.bundles import BundleShelf
    from ..trust import TrustPolicy

    folder = args.bundle_dir
    if folder is None:
        db = str(args.db)
        folder = Path("edgemed-bundles") if db.startswith("postgres") else Path(f"{db}.bundles")
    policy = TrustPolicy.from_file(args.trust) if args.trust else None
    return BundleShelf(folder=Path(folder), policy=policy)


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None,
          data: Any = None, headers: dict[str, str] | None = None) -> Any:  # fmt: skip
    token = os.environ.get("EDGEMED_FLEET_TOKEN", "")
    if not token:
        raise InputError("set $EDGEMED_FLEET_TOKEN to the fleet's API token")
    sent = {"Authorization": f"Bearer {token}", **(headers or {})}
    if body is not None:
        data, sent["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(
        args.fleet.rstrip("/") + path, data=data, headers=sent, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:2000].decode("utf-8", "replace")
        raise SyncError(f"fleet answered {exc.code} to {method} {path}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise SyncError(f"cannot reach the fleet at {args.fleet}: {exc}") from None


def _upload(args: argparse.Namespace) -> Any:
    from ..delivery import pack_bundle

    folder = Path(args.dir)
    if not (folder / "manifest.json").is_file():
        raise InputError(f"{folder}: not a bundle folder (no manifest.json)")
    with tempfile.TemporaryFile() as archive:
        pack_bundle(folder, archive)
        size = archive.tell()
        archive.seek(0)
        headers = {"Content-Type": "application/x-tar", "Content-Length": str(size)}
        return _call(args, "POST", "/api/bundles", data=archive, headers=headers)


def _create(args: argparse.Namespace) -> Any:
    body = {
        "bundle_sha256": args.bundle,
        "devices": args.device or [],
        "groups": args.group or [],
        "wards": args.ward or [],
        "canary": args.canary,
        "waves": args.waves,
        "max_failures": args.max_failures,
        "wave_timeout_s": args.wave_timeout,
        "criteria": {
            "shadow_results": args.shadow_results,
            "min_agreement": args.min_agreement,
            "abs_tolerance": args.abs_tolerance,
            "rel_tolerance": args.rel_tolerance,
        },
    }
    return _call(args, "POST", "/api/rollouts", body)


def _run(args: argparse.Namespace) -> int:
    actions: dict[str, Callable[[argparse.Namespace], Any]] = {
        "upload": _upload,
        "bundles-list": lambda a: _call(a, "GET", "/api/bundles"),
        "create": _create,
        "list": lambda a: _call(a, "GET", "/api/rollouts"),
        "show": lambda a: _call(a, "GET", f"/api/rollouts/{a.id}"),
        "group": lambda a: _call(a, "PUT", f"/api/device-groups/{a.name}", {"devices": a.device}),
    }
    action = args.rollout_action
    if action in ("pause", "resume", "abort"):
        result = _call(args, "POST", f"/api/rollouts/{args.id}/{action}")
    else:
        result = actions[action](args)
    print(json.dumps(result, indent=2, default=str))
    return 0


def _client(parser: argparse.ArgumentParser, action: str) -> argparse.ArgumentParser:
    parser.add_argument(
        "--fleet",
        default=os.environ.get("EDGEMED_FLEET_URL", "http://127.0.0.1:8080"),
        help="the fleet's URL (default $EDGEMED_FLEET_URL or http://127.0.0.1:8080); the "
        "API token comes from $EDGEMED_FLEET_TOKEN",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")
    parser.set_defaults(func=_run, rollout_action=action)
    return parser


def add_rollout_commands(fleet_sub: Subparsers, serve: argparse.ArgumentParser) -> None:
    """``fleet bundles``, ``fleet rollouts`` and ``fleet serve --bundle-dir/--trust``."""
    serve.add_argument(
        "--bundle-dir", type=Path, default=None,
        help="where uploaded bundle archives are kept (default: <--db>.bundles beside a SQLite "
        "store, ./edgemed-bundles with PostgreSQL)",
    )  # fmt: skip
    serve.add_argument(
        "--trust", default=None, metavar="FILE",
        help="trust policy (edgemed.trust/1) every uploaded bundle must pass; without one the "
        "fleet accepts no bundle",
    )  # fmt: skip
    bundles = fleet_sub.add_parser("bundles", help="signed bundles on the fleet")
    bundles_sub = bundles.add_subparsers(dest="bundles_command", required=True)
    up = _client(bundles_sub.add_parser("upload", help="upload a signed bundle folder"), "upload")
    up.add_argument("dir", type=Path, help="the bundle folder (signed: bundle sign)")
    _client(bundles_sub.add_parser("list", help="bundles the fleet holds"), "bundles-list")
    rollouts = fleet_sub.add_parser("rollouts", help="roll a bundle out to devices in waves")
    sub = rollouts.add_subparsers(dest="rollouts_command", required=True)
    create = _client(sub.add_parser("create", help="start a rollout"), "create")
    create.add_argument("bundle", help="the bundle's sha256 (from bundles upload)")
    create.add_argument("--device", action="append", help="a target device id (repeatable)")
    create.add_argument("--group", action="append", help="a device group (repeatable)")
    create.add_argument("--ward", action="append", help="every device of a ward (repeatable)")
    create.add_argument("--canary", type=int, default=1, help="canary devices (default 1)")
    create.add_argument("--waves", type=positive_int, default=2, help="waves after the canary")
    create.add_argument("--max-failures", type=int, default=0, help="halt past this many")
    create.add_argument("--wave-timeout", type=float, default=3600.0, help="seconds per device")
    create.add_argument("--shadow-results", type=positive_int, default=20)
    create.add_argument("--min-agreement", type=float, default=0.95)
    create.add_argument("--abs-tolerance", type=float, default=1e-3)
    create.add_argument("--rel-tolerance", type=float, default=1e-3)
    _client(sub.add_parser("list", help="rollouts, newest first"), "list")
    for action in ("show", "pause", "resume", "abort"):
        parser = _client(sub.add_parser(action, help=f"{action} a rollout"), action)
        parser.add_argument("id", type=positive_int, help="the rollout's id")
    group = _client(sub.add_parser("group", help="set a device group's members"), "group")
    group.add_argument("name")
    group.add_argument("--device", action="append", default=[], help="a member (repeatable)")
