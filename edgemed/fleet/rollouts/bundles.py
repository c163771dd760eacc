"""The fleet's bundle shelf: uploaded archives checked against the fleet's own trust policy,
re-packed canonically and kept by their sha256.

An upload is refused (``ModelError`` subclasses, 422 at the API) unless it is a tar archive
of one bundle folder that passes every check a device under the policy makes before it opens a
runtime (``edgemed.trust.check_bundle``: manifest, signature by a trusted, unrevoked key, no
unlisted file, every artifact's sha256), anti-rollback aside (that is each device's own
state). What is stored is the canonical archive (``delivery.archive``) of what was checked, so
the same bundle always has the same hash, whoever packed the upload.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ...delivery import MAX_BUNDLE_BYTES, pack_bundle, sha256_file, unpack_bundle
from ...errors import IntegrityError, TrustPolicyError
from ...trust import TrustPolicy, check_bundle

__all__ = ["BundleShelf"]


@dataclass(frozen=True, kw_only=True)
class BundleShelf:
    """Where accepted archives live (``folder``/<sha256>.tar) and the policy uploads must
    pass. Without a policy the fleet accepts no bundle (fail closed)."""

    folder: Path
    policy: TrustPolicy | None
    max_bytes: int = MAX_BUNDLE_BYTES

    def path(self, sha256: str) -> Path:
        return self.folder / f"{sha256}.tar"

    def temporary(self) -> Path:
        """A new empty file in the shelf's folder for an upload to stream into."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".upload-", suffix=".tar", dir=self.folder)
        os.close(fd)
        return Path(name)

    def accept(self, upload: Path) -> dict[str, Any]:
        """Check the uploaded archive and keep its canonical form; the bundle's row (sha256,
        model_id, version, size, manifest_sha256, key_id). Removes ``upload`` either way."""
        if self.policy is None:
            raise TrustPolicyError(
                "the fleet has no trust policy (fleet serve --trust FILE): it accepts no bundle"
            )
        policy = replace(self.policy, rollback_state=None)  # anti-rollback is each device's
        work = Path(tempfile.mkdtemp(prefix=".check-", dir=self.folder))
        try:
            unpack_bundle(upload, work / "bundle", max_bytes=self.max_bytes)
            verified = check_bundle(work / "bundle", policy)
            canonical = work / "canonical.tar"
            with canonical.open("wb") as out:
                pack_bundle(work / "bundle", out)
                out.flush()
                os.fsync(out.fileno())
            sha256 = sha256_file(canonical)
            os.replace(canonical, self.path(sha256))
            _fsync_folder(self.folder)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            upload.unlink(missing_ok=True)
        signature = verified.signature
        return {
            "sha256": sha256,
            "model_id": verified.manifest.id,
            "version": verified.manifest.version,
            "size": self.path(sha256).stat().st_size,
            "manifest_sha256": verified.manifest_sha256,
            "key_id": None if signature is None else signature.key_id,
        }

    def recheck(self, sha256: str) -> None:
        """Check a kept archive against the policy as it is now (a key revoked since the
        upload): the ``ModelError`` subclass naming why, if it no longer passes."""
        if self.policy is None:
            raise TrustPolicyError("the fleet has no trust policy (fleet serve --trust FILE)")
        archive = self.check_stored(sha256)
        work = Path(tempfile.mkdtemp(prefix=".check-", dir=self.folder))
        try:
            unpack_bundle(archive, work / "bundle", max_bytes=self.max_bytes)
            check_bundle(work / "bundle", replace(self.policy, rollback_state=None))
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def check_stored(self, sha256: str) -> Path:
        """The archive file of an accepted bundle (IntegrityError if it is gone)."""
        path = self.path(sha256)
        if not path.is_file():
            raise IntegrityError(f"bundle archive {sha256[:12]}… is missing from {self.folder}")
        return path


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
