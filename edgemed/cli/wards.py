"""``edgemed fleet ward …``: wards, beds and which device serves which bed, straight in the
fleet's store (``--db``, as ``fleet serve``), and the hospital's time zone; plus ``fleet serve
--timezone``. The same operations as the REST routes (``fleet/wards/routes.py``).

Fleet side only: imports the fleet package and leaves, never a runtime.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import InputError
from .args import Subparsers

__all__ = ["add_ward_commands", "open_serve_store"]


def _registry(args: argparse.Namespace) -> Any:
    from ..fleet.store import open_store
    from ..fleet.wards.registry import WardRegistry

    return WardRegistry(open_store(args.db, schema=args.pg_schema))


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _list(args: argparse.Namespace, reg: Any) -> Any:
    return {"timezone": reg.timezone(), "wards": reg.wards()}


def _show(args: argparse.Namespace, reg: Any) -> Any:
    found = reg.ward(args.ward)
    if found is None:
        raise InputError(f"no ward {args.ward!r} (edgemed fleet ward add {args.ward})")
    return found


def _add(args: argparse.Namespace, reg: Any) -> Any:
    return reg.put_ward(args.ward, name=args.name)


def _remove(args: argparse.Namespace, reg: Any) -> Any:
    if not reg.delete_ward(args.ward):
        raise InputError(f"no ward {args.ward!r}")
    return {"deleted": args.ward}


def _bed(args: argparse.Namespace, reg: Any) -> Any:
    bed = reg.put_bed(args.ward, args.bed, label=args.label, devices=args.device)
    if bed is None:
        raise InputError(f"no ward {args.ward!r} (edgemed fleet ward add {args.ward})")
    return bed


def _remove_bed(args: argparse.Namespace, reg: Any) -> Any:
    if not reg.delete_bed(args.ward, args.bed):
        raise InputError(f"no bed {args.bed!r} in ward {args.ward!r}")
    return {"deleted": f"{args.ward}/{args.bed}"}


def _assign(args: argparse.Namespace, reg: Any) -> Any:
    bed = reg.assign(args.device_id, args.ward, args.bed)
    if bed is None:
        raise InputError(f"no bed {args.bed!r} in ward {args.ward!r}")
    return bed


def _unassign(args: argparse.Namespace, reg: Any) -> Any:
    if not reg.unassign(args.device_id):
        raise InputError(f"device {args.device_id!r} serves no bed")
    return {"unassigned": args.device_id}


def _timezone(args: argparse.Namespace, reg: Any) -> Any:
    return {"timezone": reg.set_timezone(args.zone) if args.zone else reg.timezone()}


def cmd_fleet_ward(args: argparse.Namespace) -> int:
    reg = _registry(args)
    try:
        _print(args.ward_action(args, reg))
    finally:
        reg.store.close()
    return 0


def open_serve_store(args: argparse.Namespace) -> Any:
    """``fleet serve``'s store (``--db``, ``--pg-schema``), with ``--timezone`` applied: the
    ward page's time zone, kept in the store (every process on it shows the same)."""
    from ..fleet.store import open_store

    store = open_store(args.db, schema=args.pg_schema)
    if getattr(args, "timezone", None):
        from ..fleet.wards.registry import WardRegistry

        try:
            WardRegistry(store).set_timezone(args.timezone)
        except BaseException:
            store.close()
            raise
    return store


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", default="edgemed-fleet.sqlite3", help="the fleet's SQLite file or postgresql://…"
    )
    parser.add_argument("--pg-schema", default="edgemed", help="PostgreSQL schema")


def add_ward_commands(fleet_sub: Subparsers, serve: argparse.ArgumentParser) -> None:
    """``edgemed fleet ward …`` under ``fleet``'s subparsers, and ``serve --timezone``."""
    serve.add_argument(
        "--timezone",
        default=None,
        metavar="ZONE",
        help="the hospital's IANA time zone for the ward page (e.g. Europe/London; kept in "
        "the store; default: as set before, else UTC)",
    )
    ward = fleet_sub.add_parser("ward", help="wards, beds and the devices serving each bed")
    actions = ward.add_subparsers(dest="ward_command", required=True)

    def action(name: str, func: Any, help: str, *positional: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help)
        for arg in positional:
            parser.add_argument(arg)
        _store_options(parser)
        parser.set_defaults(func=cmd_fleet_ward, ward_action=func)
        return parser

    action("list", _list, "every ward with its numbers of beds and devices")
    action("show", _show, "a ward's beds and their devices", "ward")
    action("add", _add, "create a ward or rename it", "ward").add_argument("--name")
    action("remove", _remove, "delete a ward that has no beds", "ward")
    bed = action("bed", _bed, "create or relabel a bed (--device: its device list)", "ward", "bed")
    bed.add_argument("--label", help="display label (a place, never a patient)")
    bed.add_argument(
        "--device", action="append", help="a device serving the bed (repeat; moves it here)"
    )
    action("remove-bed", _remove_bed, "delete a bed (its devices are unassigned)", "ward", "bed")
    action("assign", _assign, "a device serves this bed from now on", "device_id", "ward", "bed")
    action("unassign", _unassign, "the device serves no bed", "device_id")
    tz = action("timezone", _timezone, "show or set the hospital's time zone")
    tz.add_argument("zone", nargs="?", help="IANA name, e.g. Europe/London")
