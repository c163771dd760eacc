"""What a device keeps on disk for rollouts, under its OTA folder (``OtaConfig.root``)::

    current.json          the pointer: which installed version serves (and the one before)
    state.json            the rollout in progress or last finished, and the report counter
    versions/<name>/      installed bundle folders, each beside the others, never modified
    downloads/<sha256>.part, <sha256>.tar   archives being downloaded / downloaded
    staging/              archives being unpacked (emptied at every start)

Both JSON files are replaced atomically (temporary file, fsync, rename, fsync of the folder:
``trust.rollback.write_file_atomically``), so a power cut leaves the old file or the new one.
A version folder appears by one rename of a fully written, fsync'd staging folder. The
pointer is the switch: one atomic write moves serving from one version to the other.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import TrustPolicyError
from ..manifest import strict_json
from ..trust.rollback import write_file_atomically

__all__ = ["Layout", "Pointer", "RolloutState"]

POINTER_SCHEMA = "edgemed.ota-pointer/1"
STATE_SCHEMA = "edgemed.ota-state/1"


@dataclass(frozen=True, kw_only=True)
class Pointer:
    """The serving version (``path``: a folder under versions/) and the one it replaced.
    ``confirmed`` is false from the switch until the new version has loaded and passed its
    golden vectors after it; a start that finds it false loads it again (or rolls back)."""

    path: str
    model_id: str
    version: str
    confirmed: bool = True
    previous: Pointer | None = None

    def body(self) -> dict[str, Any]:
        return {"schema": POINTER_SCHEMA, **asdict(self)}

    @classmethod
    def from_body(cls, data: dict[str, Any]) -> Pointer:
        previous = data.get("previous")
        fields = {k: v for k, v in data.items() if k not in ("schema", "previous")}
        return cls(**fields, previous=None if previous is None else cls.from_body(previous))


@dataclass(kw_only=True)
class RolloutState:
    """The device's rollout bookkeeping (state.json)."""

    report_seq: int = 0  # grows with every report, across boots
    command: dict[str, Any] | None = None  # the install command being or last carried out
    phase: str | None = None  # a delivery.REPORT_STATES value
    reason: str | None = None
    attempts: int = 0  # starts of this rollout (a restart mid-rollout counts one more)
    downloaded: int = 0
    shadow: dict[str, int] = field(default_factory=dict)  # done, agree, needed


class Layout:
    """Paths and atomic reads/writes under the OTA folder."""

    def __init__(self, root: Path, *, prepare: bool = True) -> None:
        """``prepare``: make the folders and empty staging (the agent, at start); False only
        reads (``edgemed ota status`` beside a running agent)."""
        self.root = root
        self.versions = root / "versions"
        self.downloads = root / "downloads"
        self.staging = root / "staging"
        if not prepare:
            return
        for folder in (self.versions, self.downloads, self.staging):
            folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.staging, ignore_errors=True)  # half-unpacked archives of a crash
        self.staging.mkdir()

    def _read(self, name: str, schema: str) -> dict[str, Any] | None:
        path = self.root / name
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        data = strict_json(raw, str(path), TrustPolicyError)
        if not isinstance(data, dict) or data.get("schema") != schema:
            raise TrustPolicyError(f"{path}: not an {schema} file")
        return data

    def _write(self, name: str, body: dict[str, Any]) -> None:
        text = json.dumps(body, indent=2, sort_keys=True) + "\n"
        write_file_atomically(self.root / name, text.encode())

    def pointer(self) -> Pointer | None:
        data = self._read("current.json", POINTER_SCHEMA)
        try:
            return None if data is None else Pointer.from_body(data)
        except TypeError as exc:
            raise TrustPolicyError(f"{self.root / 'current.json'}: damaged ({exc})") from None

    def set_pointer(self, pointer: Pointer) -> None:
        self._write("current.json", pointer.body())

    def state(self) -> RolloutState:
        data = self._read("state.json", STATE_SCHEMA)
        if data is None:
            return RolloutState()
        data.pop("schema")
        try:
            return RolloutState(**data)
        except TypeError as exc:
            raise TrustPolicyError(f"{self.root / 'state.json'}: damaged ({exc})") from None

    def save_state(self, state: RolloutState) -> None:
        self._write("state.json", {"schema": STATE_SCHEMA, **asdict(state)})

    def folder(self, pointer: Pointer) -> Path:
        return self.root / pointer.path

    def install(self, staged: Path, name: str) -> str:
        """Move a checked staging folder into versions/ (one rename); its pointer path."""
        target = self.versions / name
        if target.exists():  # left by an earlier try of the same archive: replace it
            shutil.rmtree(target)
        _fsync_tree(staged)
        os.replace(staged, target)
        _fsync(self.versions)
        return str(target.relative_to(self.root))

    def prune(self, keep: set[str]) -> None:
        """Delete installed versions and downloads the pointer no longer names."""
        for entry in self.versions.iterdir():
            if str(entry.relative_to(self.root)) not in keep:
                shutil.rmtree(entry, ignore_errors=True)


def _fsync(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """Every folder below ``folder`` (the files were fsync'd as they were written)."""
    for where, _dirs, _files in os.walk(folder):
        _fsync(Path(where))
