"""Anti-rollback: the device's state file records, per model id, the highest version it has
served; a lower version serves only if its signature grants a rollback from at least that
version. Schema ``edgemed.rollback-state/1``::

    {"schema": "edgemed.rollback-state/1",
     "models": {"<id>": {"highest": "1.2.0", "rolled_back": false, "serving": "1.2.0",
                         "manifest_sha256": "...", "key_id": "..." or null, "updated_at": 0.0}}}

``rolled_back`` is set once a signed rollback has served: the version rolled back from is
then withdrawn too (it needs a rollback permission of its own), so only a higher version moves
the device forward again. Writes are atomic (temporary file, fsync, rename, fsync of the
folder) under an exclusive lock, so a power cut leaves the old state or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import RollbackError, TrustPolicyError
from ..manifest import Manifest, read_bundle_file, strict_json
from .signature import Signature
from .versions import version_key

__all__ = ["STATE_SCHEMA", "check_rollback", "read_state", "record_served", "write_file_atomically"]

STATE_SCHEMA = "edgemed.rollback-state/1"
_MAX_STATE_BYTES = 16 << 20


def read_state(path: Path) -> dict[str, dict[str, Any]]:
    """Model id -> its entry; {} for a device that has served nothing yet. A state file that
    cannot be read or parsed is TrustPolicyError: nothing serves until it is repaired."""
    if not path.parent.is_dir():
        raise TrustPolicyError(f"rollback state {path}: folder {path.parent} does not exist")
    try:
        raw = read_bundle_file(path, _MAX_STATE_BYTES, TrustPolicyError)
    except OSError as exc:
        raise TrustPolicyError(f"rollback state {path}: {exc}") from exc
    if raw is None:
        return {}
    data = strict_json(raw, f"rollback state {path}", TrustPolicyError)
    models = data.get("models") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or data.get("schema") != STATE_SCHEMA
        or not isinstance(models, dict)
    ):
        raise TrustPolicyError(f"rollback state {path}: not an {STATE_SCHEMA} file")
    for model_id, entry in models.items():
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("highest"), str)
            or not isinstance(entry.get("rolled_back"), bool)
        ):
            raise TrustPolicyError(f"rollback state {path}: entry {model_id!r} is damaged")
    return models


def check_rollback(path: Path, manifest: Manifest, signature: Signature | None) -> None:
    """RollbackError unless this device may serve ``manifest``'s version now."""
    what = f"{manifest.id} version"
    version = version_key(manifest.version, what)
    entry = read_state(path).get(manifest.id)
    if entry is None:
        return
    highest = entry["highest"]
    top = version_key(highest, f"{manifest.id}: rollback state's highest served version")
    if version > top or (version == top and not entry["rolled_back"]):
        return
    why = (
        f"{manifest.id} {manifest.version} is older than {highest}, which this device has served"
        if version < top
        else f"{manifest.id} {highest} was rolled back from on this device"
    )
    granted = signature.rollback_from if signature is not None else None
    if granted is None:
        raise RollbackError(
            f"{why}, and its signature grants no rollback (anti-rollback, {path}): sign it with "
            f"`edgemed bundle sign --rollback-from {highest}` to roll back on purpose"
        )
    if version_key(granted, f"{manifest.id}: signed rollback 'from' version") < top:
        raise RollbackError(
            f"{why}; its signature grants a rollback from versions up to {granted} only"
        )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside the state file, across processes (POSIX; none elsewhere)."""
    try:
        import fcntl
    except ImportError:  # Windows: one edgemed process per device is assumed
        yield
        return
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_file_atomically(path: Path, body: bytes) -> None:
    """``path`` holds ``body`` whole or its old content, even across a power cut (temporary
    file, fsync, rename, fsync of the folder)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a power cut
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    write_file_atomically(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def record_served(
    path: Path, manifest: Manifest, signature: Signature | None, manifest_sha256: str
) -> None:
    """Record that this device now serves ``manifest`` (TrustPolicyError if it cannot: a
    device that cannot remember what it served cannot refuse a rollback)."""
    version = version_key(manifest.version, f"{manifest.id} version")
    try:
        with _locked(path):
            models = read_state(path)
            old = models.get(manifest.id)
            entry = dict(old or {})
            if old is None or version > version_key(old["highest"], f"{manifest.id} highest"):
                entry.update(highest=manifest.version, rolled_back=False)
            elif version < version_key(old["highest"], f"{manifest.id} highest"):
                entry["rolled_back"] = True
            entry.update(
                serving=manifest.version,
                manifest_sha256=manifest_sha256,
                key_id=None if signature is None else signature.key_id,
            )
            unchanged = old is not None and {**old, "updated_at": None} == {
                **entry,
                "updated_at": None,
            }
            if unchanged:  # a restart on the same bundle: no write, no flash wear
                return
            models[manifest.id] = {**entry, "updated_at": round(time.time(), 3)}
            _write_atomically(path, {"schema": STATE_SCHEMA, "models": models})
    except OSError as exc:
        raise TrustPolicyError(
            f"rollback state {path}: cannot record {manifest.id}: {exc}"
        ) from exc
