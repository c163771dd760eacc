"""Users, sessions and API tokens in the fleet store (mixed into ``SqlStore``, which supplies the
hooks). Tables of schema version 9 (``AUTH_DDL``); the audit trail is ``audit.py``.

- ``users``: a name, one role (``policy.ROLES``), an argon2id password hash (argon2-cffi's
  defaults), disabled or not. Disabling a user revokes their sessions and tokens at once.
- ``sessions``: a dashboard login. The cookie holds a random secret; the table holds only its
  sha256 (a stolen database opens no session), the CSRF secret's sha256, an absolute expiry and
  an idle expiry; logout and an administrator revoke one server-side, checked on every request.
- ``api_tokens``: for hospital systems (``Authorization: Bearer emt_<id>_<secret>``): a role
  ceiling, scopes within it, an expiry, revocable; the secret is kept as its sha256.

Random 256-bit secrets need no slow hash (they cannot be guessed); passwords do.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ...errors import AccountError
from ..store_hooks import StoreHooks
from .policy import PERMISSIONS, ROLES

__all__ = ["AUTH_DDL", "TOKEN_PREFIX", "USERNAME", "AccountStore", "Principal"]

AUTH_DDL = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    password_changed_at DOUBLE PRECISION NOT NULL,
    disabled_at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    csrf_sha256 TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION,
    remote TEXT
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(username);
CREATE TABLE IF NOT EXISTS api_tokens (
    id TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION,
    last_used_at DOUBLE PRECISION
)
"""
USERNAME = r"^[a-z0-9][a-z0-9._@-]{1,63}$"
TOKEN_PREFIX = "emt_"
# The session "user" of a service-token login (no users row; administrator, audited as such).
SERVICE_USER = "service-token"
MIN_PASSWORD = 12
_TOKEN = re.compile(r"^emt_([a-f0-9]{16})_([A-Za-z0-9_-]{43})$")
_hasher = PasswordHasher()  # argon2id, the library's (RFC 9106 low-memory) defaults


@functools.cache
def _dummy_hash() -> str:
    """Compared against when the user does not exist, so that a wrong name costs what a wrong
    password costs (no user enumeration by timing). Made on the first login, not at import:
    an argon2 hash takes ~100 ms and every fleet process and command imports this module."""
    return _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a user (session), an API token, or the fleet's service token."""

    name: str  # a username, "token:<name>", or "service-token"
    kind: str  # "user" | "token" | "service"
    role: str
    permissions: frozenset[str]
    session_id: str | None = None  # the session row (cookie logins): CSRF is checked
    csrf_sha256: str | None = None

    def may(self, permission: str) -> bool:
        return permission == "self" or permission in self.permissions


# The fleet's service token (administrator; audited as such), and its dashboard sessions.
SERVICE = Principal(SERVICE_USER, "service", "administrator", PERMISSIONS)


def sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= 256:
        raise AccountError(f"a password has {MIN_PASSWORD} to 256 characters")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: one of {', '.join(sorted(ROLES))}")


class AccountStore(StoreHooks):
    """Users, sessions and tokens (mixed into ``SqlStore``, which supplies the hooks)."""

    # -- users ----------------------------------------------------------------------------
    def add_user(self, username: str, role: str, password: str) -> None:
        if not re.match(USERNAME, username):
            raise AccountError("a username is 2-64 of a-z 0-9 . _ @ - (lower case)")
        if username == SERVICE_USER:
            raise AccountError(f"{SERVICE_USER!r} is reserved for the fleet's service token")
        _check_role(role)
        check_password(password)
        now = time.time()
        with self._lock, self._transaction():
            if self._run("SELECT 1 FROM users WHERE username=?", (username,)).fetchone():
                raise AccountError(f"user {username!r} exists")
            self._run(
                "INSERT INTO users(username, role, password_hash, created_at, "
                "password_changed_at) VALUES (?,?,?,?,?)",
                (username, role, _hasher.hash(password), now, now),
            )

    def users(self) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT username, role, created_at, password_changed_at, disabled_at "
            "FROM users ORDER BY username"
        )

    def update_user(
        self, username: str, *, role: str | None = None, disabled: bool | None = None,
        password: str | None = None,
    ) -> bool:  # fmt: skip
        """Change a user; any change of role, password or state revokes their sessions at
        once (the next request logs in again). False: no such user."""
        if role is not None:
            _check_role(role)
        if password is not None:
            check_password(password)
        now = time.time()
        with self._lock, self._transaction():
            if not self._run("SELECT 1 FROM users WHERE username=?", (username,)).fetchone():
                return False
            if role is not None:
                self._run("UPDATE users SET role=? WHERE username=?", (role, username))
            if disabled is not None:
                self._run(
                    "UPDATE users SET disabled_at=? WHERE username=?",
                    (now if disabled else None, username),
                )
            if password is not None:
                self._run(
                    "UPDATE users SET password_hash=?, password_changed_at=? WHERE username=?",
                    (_hasher.hash(password), now, username),
                )
            if disabled or password is not None or role is not None:
                self._revoke_sessions(username, now)
        return True

    def verify_password(self, username: str, password: str) -> str | None:
        """The user's role when the password is right and the user enabled, else None."""
        with self._lock, self._transaction():
            row = self._run(
                "SELECT password_hash, role, disabled_at FROM users WHERE username=?", (username,)
            ).fetchone()
        stored = row[0] if row else _dummy_hash()
        try:
            _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        return str(row[1]) if row and row[2] is None else None

    # -- sessions -------------------------------------------------------------------------
    def open_session(self, username: str, *, ttl_s: float, remote: str | None) -> tuple[str, str]:
        """A new session: (cookie secret, CSRF secret). Only their hashes are stored."""
        secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = time.time()
        with self._lock, self._transaction():
            self._run(
                "INSERT INTO sessions(id, username, csrf_sha256, created_at, expires_at, "
                "last_seen, remote) VALUES (?,?,?,?,?,?,?)",
                (sha256(secret), username, sha256(csrf), now, now + ttl_s, now, remote),
            )
        return secret, csrf

    def session_principal(self, secret: str, *, idle_s: float) -> Principal | None:
        """The user of a live session (not revoked, expired or idle, user enabled)."""
        now, key = time.time(), sha256(secret)
        with self._lock, self._transaction():
            row = self._run(
                "SELECT s.username, u.role, s.csrf_sha256, s.last_seen FROM sessions s "
                "LEFT JOIN users u ON u.username=s.username WHERE s.id=? "
                "AND s.revoked_at IS NULL AND s.expires_at>? AND s.last_seen>? "
                "AND u.disabled_at IS NULL",
                (key, now, now - idle_s),
            ).fetchone()
            if row is None or (row[1] is None and row[0] != SERVICE_USER):
                return None
            if now - float(row[3]) > 30.0:  # idle clock: one write a half minute at most
                self._run("UPDATE sessions SET last_seen=? WHERE id=?", (now, key))
        if row[1] is None:  # a service-token session
            return dataclasses.replace(SERVICE, session_id=key, csrf_sha256=str(row[2]))
        role = str(row[1])
        return Principal(str(row[0]), "user", role, ROLES.get(role, frozenset()), key, str(row[2]))

    def revoke_session(self, session_id: str) -> None:
        with self._lock, self._transaction():
            self._run(
                "UPDATE sessions SET revoked_at=? WHERE id=? AND revoked_at IS NULL",
                (time.time(), session_id),
            )

    def revoke_sessions(self, username: str) -> int:
        with self._lock, self._transaction():
            return self._revoke_sessions(username, time.time())

    def _revoke_sessions(self, username: str, now: float) -> int:
        cursor = self._run(
            "UPDATE sessions SET revoked_at=? WHERE username=? AND revoked_at IS NULL",
            (now, username),
        )
        return int(cursor.rowcount or 0)

    # -- API tokens -----------------------------------------------------------------------
    def create_token(
        self, name: str, *, role: str, scopes: list[str], ttl_s: float, created_by: str
    ) -> tuple[str, str]:
        """A new API token: (its id, the token, shown once). Scopes within the role."""
        _check_role(role)
        unknown = sorted(set(scopes) - PERMISSIONS)
        if unknown:
            raise AccountError(f"unknown scopes {unknown}: scopes are {sorted(PERMISSIONS)}")
        beyond = sorted(set(scopes) - ROLES[role])
        if beyond or not scopes:
            raise AccountError(f"scopes {beyond or '(none)'} are not within role {role!r}")
        if not 60.0 <= ttl_s <= 2 * 366 * 86400.0:
            raise AccountError("a token expires in 1 minute to 2 years")
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        now = time.time()
        with self._lock, self._transaction():
            self._run(
                "INSERT INTO api_tokens(id, secret_sha256, name, role, scopes, created_by, "
                "created_at, expires_at) VALUES (?,?,?,?,?,?,?,?)",
                (token_id, sha256(secret), name, role, " ".join(sorted(set(scopes))),
                 created_by, now, now + ttl_s),
            )  # fmt: skip
        return token_id, f"{TOKEN_PREFIX}{token_id}_{secret}"

    def token_principal(self, token: str) -> Principal | None:
        match = _TOKEN.match(token)
        if match is None:
            return None
        token_id, secret = match.groups()
        now = time.time()
        with self._lock, self._transaction():
            row = self._run(
                "SELECT secret_sha256, name, role, scopes, last_used_at FROM api_tokens "
                "WHERE id=? AND revoked_at IS NULL AND expires_at>?",
                (token_id, now),
            ).fetchone()
            if row is None or not hmac.compare_digest(str(row[0]), sha256(secret)):
                return None
            if row[4] is None or now - float(row[4]) > 60.0:
                self._run("UPDATE api_tokens SET last_used_at=? WHERE id=?", (now, token_id))
        role = str(row[2])
        scopes = frozenset(str(row[3]).split()) & ROLES.get(role, frozenset())
        return Principal(f"token:{row[1]}", "token", role, scopes)

    def tokens(self) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT id, name, role, scopes, created_by, created_at, expires_at, revoked_at, "
            "last_used_at FROM api_tokens ORDER BY created_at DESC"
        )

    def revoke_token(self, token_id: str) -> bool:
        with self._lock, self._transaction():
            cursor = self._run(
                "UPDATE api_tokens SET revoked_at=? WHERE id=? AND revoked_at IS NULL",
                (time.time(), token_id),
            )
            return bool(cursor.rowcount)
