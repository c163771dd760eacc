"""Semantic-version ordering (semver.org 2.0.0) for anti-rollback: a device must be able to say
which of two versions is older, so a version it cannot order is refused, never guessed."""

from __future__ import annotations

import re

from ..errors import RollbackError

__all__ = ["VersionKey", "version_key"]

_NUM = r"0|[1-9]\d*"
_PRE_ID = rf"(?:{_NUM}|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = re.compile(
    rf"^({_NUM})\.({_NUM})\.({_NUM})"
    rf"(?:-({_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?$"
)
_MAX_LENGTH = 128

# (major, minor, patch, release-or-prerelease): a release sorts above its pre-releases, which
# compare identifier by identifier (numbers numerically and below words; a prefix is lower).
VersionKey = tuple[int, int, int, tuple[object, ...]]


def version_key(text: str, what: str) -> VersionKey:
    """The precedence key of ``text`` (build metadata ignored, as semver says); RollbackError
    naming ``what`` if it is not a semantic version."""
    match = _SEMVER.match(text) if len(text) <= _MAX_LENGTH else None
    if match is None:
        raise RollbackError(
            f"{what} {text!r} is not a semantic version (MAJOR.MINOR.PATCH[-pre][+build], "
            "semver.org): anti-rollback cannot order it, so it is refused"
        )
    major, minor, patch, pre = match.groups()
    if pre is None:
        rank: tuple[object, ...] = (1,)
    else:
        ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
        rank = (0, ids)
    return int(major), int(minor), int(patch), rank
