"""A bundle as one file: the canonical tar archive the fleet stores (by its sha256) and serves,
and devices download, resume and unpack.

Canonical: plain ustar, members sorted by path, folders before their files, every mtime 0,
uid/gid 0, modes 0755 (folders) and 0644 (files), no owner names. Packing the same folder twice
gives the same bytes, so the same bundle uploaded twice has one hash.

Unpacking is strict (IntegrityError naming the member): only plain files and folders, relative
paths without ``..``, no member twice, at most ``MAX_MEMBERS`` members and ``max_bytes`` in
all. Links, devices and FIFOs are refused rather than skipped: a bundle has none, so one in an
archive means the archive is not a bundle. The trust checks (``edgemed.trust.check_bundle``)
then run on the unpacked folder.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ..errors import IntegrityError

__all__ = ["MAX_BUNDLE_BYTES", "MAX_MEMBERS", "pack_bundle", "sha256_file", "unpack_bundle"]

MAX_BUNDLE_BYTES = 2 << 30  # 2 GiB: the largest bundled model is 64 MB
MAX_MEMBERS = 10_000
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _members(folder: Path) -> list[tuple[str, Path]]:
    """(archive path, file) of every folder and plain file below ``folder``, sorted."""
    found: list[tuple[str, Path]] = []
    for where, dirs, files in os.walk(folder):
        dirs.sort()
        for name in [*dirs, *files]:
            path = Path(where) / name
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                raise IntegrityError(f"{path}: not a plain file or folder: cannot pack it")
            found.append((path.relative_to(folder).as_posix(), path))
    return sorted(found)


def pack_bundle(folder: Path, out: BinaryIO) -> None:
    """Write the canonical archive of the bundle ``folder`` to ``out``."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, path in _members(folder):
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            info.mode, info.size = 0o644, path.stat().st_size
            with path.open("rb") as fh:
                tar.addfile(info, fh)


def _checked_name(member: tarfile.TarInfo, seen: set[str]) -> str:
    name = member.name
    parts = PurePosixPath(name).parts
    if (
        not name
        or name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or any(p in ("..", ".") for p in parts)
        or len(name) > 1024
    ):
        raise IntegrityError(f"bundle archive: member {name[:80]!r} is not a plain relative path")
    clean = "/".join(parts)
    if clean in seen:
        raise IntegrityError(f"bundle archive: member {clean[:80]!r} appears twice")
    seen.add(clean)
    return clean


def unpack_bundle(archive: Path, dest: Path, *, max_bytes: int = MAX_BUNDLE_BYTES) -> int:
    """Unpack ``archive`` into the new folder ``dest`` (its parent must exist), fsync every
    file; returns the number of files. IntegrityError if the archive is not a plain bundle."""
    seen: set[str] = set()
    total = files = 0
    dest.mkdir()
    try:
        tar = tarfile.open(archive, mode="r:")  # noqa: SIM115 (closed by the with below)
    except (tarfile.TarError, OSError) as exc:
        raise IntegrityError(f"bundle archive: not a tar archive ({exc})") from exc
    with tar:
        try:
            for member in tar:
                name = _checked_name(member, seen)
                if len(seen) > MAX_MEMBERS:
                    raise IntegrityError(f"bundle archive: over {MAX_MEMBERS} members")
                target = dest / name
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isreg():
                    raise IntegrityError(
                        f"bundle archive: member {name[:80]!r} is not a plain file or folder"
                    )
                total += member.size
                if total > max_bytes:
                    raise IntegrityError(f"bundle archive: over {max_bytes} bytes unpacked")
                _extract(tar, member, target)
                files += 1
        except (tarfile.TarError, OSError) as exc:  # OSError: a file where a folder must go
            raise IntegrityError(f"bundle archive: damaged ({exc})") from exc
    return files


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(member)
    if source is None:
        raise IntegrityError(f"bundle archive: member {member.name[:80]!r} has no data")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(_CHUNK):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
