"""The steps of an install, each one call (``agent.py`` orders them and reports them): every
check is ``edgemed.trust``'s and every load ``edgemed.load``'s, never a second copy."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..delivery import InstallCommand, unpack_bundle
from ..errors import IntegrityError, ModelError
from ..pipeline import Pipeline, load
from ..trust import Verified, check_bundle, record
from .config import OtaConfig
from .layout import Layout, Pointer

__all__ = ["Steps"]


class Steps:
    def __init__(self, config: OtaConfig, layout: Layout) -> None:
        self.config = config
        self.layout = layout
        self.policy = config.trust
        # Loading a version that is not (yet) serving: every check but the anti-rollback
        # record, which only the switch makes.
        self._checking = replace(config.trust, rollback_state=None)

    def install_initial(self) -> Pointer:
        """First start: install ``initial_bundle`` as the serving version."""
        source = self.config.initial_bundle
        if source is None:
            raise ModelError(
                f"{self.layout.root}: no version installed and no initial bundle given"
            )
        staged = Path(tempfile.mkdtemp(dir=self.layout.staging)) / "bundle"
        shutil.copytree(source, staged, symlinks=True)
        verified = check_bundle(staged, self._checking)
        m = verified.manifest
        path = self.layout.install(staged, f"{m.id}@{m.version}-initial")
        pointer = Pointer(path=path, model_id=m.id, version=m.version)
        self.layout.set_pointer(pointer)
        return pointer

    def load_serving(self, pointer: Pointer) -> Pipeline:
        """The serving version, loaded under the full policy (a restart records nothing new)."""
        return load(self.layout.folder(pointer), trust=self.policy, threads=self.config.threads)

    def download(
        self, command: InstallCommand, stop: threading.Event, progress: Callable[[int], None]
    ) -> Path:
        return self.config.downloader().fetch(
            command, self.layout.downloads, stop=stop, progress=progress
        )

    def verify_and_install(self, command: InstallCommand, archive: Path) -> tuple[Path, Verified]:
        """Unpack into staging, check as ``load`` would under the policy (anti-rollback too),
        check it is what the command named, then move it into versions/."""
        work = Path(tempfile.mkdtemp(dir=self.layout.staging))
        staged = work / "bundle"
        unpack_bundle(archive, staged)
        verified = check_bundle(staged, self.policy)
        m = verified.manifest
        if (m.id, m.version) != (command.model_id, command.version):
            raise IntegrityError(
                f"the archive holds {m.id}@{m.version}, the rollout announced "
                f"{command.model_id}@{command.version}"
            )
        name = f"{m.id}@{m.version}-{command.sha256[:12]}"
        if self._in_use(f"versions/{name}"):
            raise IntegrityError(f"{name} is already installed and in use on this device")
        path = self.layout.install(staged, name)
        os.rmdir(work)
        return self.layout.root / path, verified

    def _in_use(self, path: str) -> bool:
        pointer = self.layout.pointer()
        return pointer is not None and path in (
            pointer.path,
            pointer.previous.path if pointer.previous else None,
        )

    def load_candidate(self, folder: Path) -> tuple[Pipeline, Verified]:
        """A version beside the serving one: checked (anti-rollback included), loaded, its
        golden vectors run (GoldenMismatchError), not yet recorded as served."""
        verified = check_bundle(folder, self.policy)
        return load(folder, trust=self._checking, threads=self.config.threads), verified

    def record(self, verified: Verified) -> None:
        record(self.policy, verified)

    def tidy(self, pointer: Pointer) -> None:
        """Keep the serving version and the one before it; delete older ones."""
        keep = {pointer.path} | ({pointer.previous.path} if pointer.previous else set())
        self.layout.prune(keep)

    def discard(self, command: InstallCommand, serving: Pointer | None) -> None:
        """After a failed or aborted rollout: its archive and installed folder go (unless,
        somehow, it is what serves)."""
        self.forget_archive(command)
        if serving is not None:
            self.tidy(serving)

    def forget_archive(self, command: InstallCommand) -> None:
        for suffix in (".tar", ".part"):
            (self.layout.downloads / f"{command.sha256}{suffix}").unlink(missing_ok=True)
