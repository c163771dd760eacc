"""``edgemed fleet users …`` and ``edgemed fleet tokens …``: accounts of the fleet's API and
dashboard, managed on the fleet host against its store (the API offers the same to
administrators). Every change is written to the audit trail as ``cli:<OS user>``.

Passwords are read from a prompt or, for scripts, one line of standard input
(``--password-stdin``): never from the command line, where other local users can see them.
Also ``fleet serve``'s HTTPS and session options (``add_api_security_options``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from .args import Subparsers

__all__ = ["add_api_security_options", "add_user_commands", "api_security_from_args"]


def add_api_security_options(serve: argparse.ArgumentParser) -> None:
    group = serve.add_argument_group("API security (docs/security.md)")
    group.add_argument("--api-cert", metavar="FILE", type=Path, default=None,
                       help="serve the API and dashboard over HTTPS with this certificate "
                       "chain (PEM); with --api-key")  # fmt: skip
    group.add_argument("--api-key", metavar="FILE", type=Path, default=None,
                       help="the certificate's private key (PEM)")  # fmt: skip
    group.add_argument("--session-hours", type=float, default=12.0,
                       help="a dashboard login lasts at most this long (default 12)")  # fmt: skip
    group.add_argument("--idle-minutes", type=float, default=30.0,
                       help="and ends after this long without a request (default 30)")  # fmt: skip


def api_security_from_args(args: argparse.Namespace) -> tuple[Any, Any]:
    """(HttpsFiles or None, SessionPolicy) from ``fleet serve``'s options, checked."""
    from ..errors import InputError
    from ..fleet.auth.guard import SessionPolicy
    from ..fleet.auth.headers import HttpsFiles

    if (args.api_cert is None) != (args.api_key is None):
        raise InputError("--api-cert and --api-key go together")
    if not (0 < args.session_hours <= 24 * 31 and 0 < args.idle_minutes <= 24 * 60):
        raise InputError("--session-hours is in (0, 744] and --idle-minutes in (0, 1440]")
    https = HttpsFiles(args.api_cert, args.api_key) if args.api_cert else None
    if https is not None:
        https.check()
    return https, SessionPolicy(args.session_hours * 3600.0, args.idle_minutes * 60.0)


def add_user_commands(fleet_sub: Subparsers) -> None:
    users = fleet_sub.add_parser("users", help="named users of the API and dashboard")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", help="add a user (password from a prompt or stdin)")
    add.add_argument("username")
    add.add_argument("--role", required=True,
                     help="administrator, clinician, biomedical-engineer or integration-client")  # fmt: skip
    change = users_sub.add_parser("set", help="change a user's role, state or password")
    change.add_argument("username")
    change.add_argument("--role", default=None)
    state = change.add_mutually_exclusive_group()
    state.add_argument("--disable", dest="disabled", action="store_true", default=None)
    state.add_argument("--enable", dest="disabled", action="store_false")
    change.add_argument("--new-password", action="store_true", help="ask for a new password")
    users_sub.add_parser("list", help="users and their roles")
    revoke = users_sub.add_parser("logout", help="end every session of a user")
    revoke.add_argument("username")
    tokens = fleet_sub.add_parser("tokens", help="API tokens of hospital systems")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True)
    create = tokens_sub.add_parser("create", help="a new token (printed once)")
    create.add_argument("name")
    create.add_argument("--scope", action="append", required=True, dest="scopes",
                        help="a permission, e.g. results:read (repeat for more)")  # fmt: skip
    create.add_argument("--role", default="integration-client")
    create.add_argument("--expires-days", type=float, default=90.0)
    tokens_sub.add_parser("list", help="tokens (never their secrets)")
    drop = tokens_sub.add_parser("revoke", help="revoke a token by id")
    drop.add_argument("token_id")
    for parser in (add, change, revoke, create, drop, *_lists(users_sub, tokens_sub)):
        parser.add_argument("--db", default="edgemed-fleet.sqlite3",
                            help="the fleet's store: SQLite file or postgresql://…")  # fmt: skip
        parser.add_argument("--pg-schema", default="edgemed")
        parser.add_argument("--password-stdin", action="store_true",
                            help="read the password from one line of standard input")  # fmt: skip
        parser.set_defaults(func=cmd_accounts)


def _lists(*subs: Subparsers) -> list[argparse.ArgumentParser]:
    return [sub.choices["list"] for sub in subs]


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("fleet: the passwords differ")
    return first


def cmd_accounts(args: argparse.Namespace) -> int:
    from ..fleet.store import open_store

    store = open_store(args.db, schema=args.pg_schema)
    actor = f"cli:{getpass.getuser()}"
    try:
        action, target, detail, out = _apply(args, store)
        if action:
            store.audit(actor=actor, actor_kind="cli", action=action, outcome="ok",
                        target=target, detail=detail)  # fmt: skip
        print(out if isinstance(out, str) else json.dumps(out, indent=2, default=str))
    finally:
        store.close()
    return 0


def _apply(args: argparse.Namespace, store: Any) -> tuple[str | None, str | None, Any, Any]:
    """(audit action, target, detail, what to print) of one accounts command."""
    command = getattr(args, "users_command", None) or f"token-{args.tokens_command}"
    if command == "add":
        store.add_user(args.username, args.role, _password(args))
        return "user.create", args.username, {"role": args.role}, f"user {args.username} added"
    if command == "set":
        password = _password(args) if args.new_password else None
        if not store.update_user(args.username, role=args.role, disabled=args.disabled,
                                 password=password):  # fmt: skip
            raise SystemExit(f"fleet: no user {args.username!r}")
        change = {"role": args.role, "disabled": args.disabled, "password": bool(password)}
        return "user.change", args.username, change, f"user {args.username} changed"
    if command == "logout":
        n = store.revoke_sessions(args.username)
        return "user.sessions.revoke", args.username, {"revoked": n}, f"{n} sessions ended"
    if command == "list":
        return None, None, None, store.users()
    if command == "token-create":
        token_id, token = store.create_token(
            args.name, role=args.role, scopes=args.scopes,
            ttl_s=args.expires_days * 86400.0, created_by=f"cli:{getpass.getuser()}",
        )  # fmt: skip
        detail = {"name": args.name, "scopes": args.scopes}
        return "token.create", token_id, detail, f"token {token_id}: {token}"
    if command == "token-revoke":
        if not store.revoke_token(args.token_id):
            raise SystemExit(f"fleet: no live token {args.token_id!r}")
        return "token.revoke", args.token_id, None, f"token {args.token_id} revoked"
    return None, None, None, store.tokens()
