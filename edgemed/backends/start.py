"""Opening a model's backends for a pipeline: the main model on the first candidate that
really starts, and the bundle's further models with the main model's choice."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import replace

from ..config import cache_dir
from ..errors import BackendUnavailableError
from ..hardware import HardwareInfo
from ..manifest import Manifest
from . import create_backend, open_model
from .base import Backend, ModelUse
from .select import Choice, candidates, choose

__all__ = ["FurtherModels", "open_first"]


def open_first(
    manifest: Manifest,
    hw: HardwareInfo,
    backend: str,
    device: str,
    threads: int | None,
    skip: Set[tuple[str, str]],
) -> tuple[Choice, Backend]:
    """The first candidate that really starts. The probe sees what runtimes were built with;
    whether an accelerator's libraries load shows only when a session opens (onnxruntime-gpu
    from PyPI lists TensorRT without the TensorRT libraries). With ``device="auto"`` the next
    candidate serves and the choice's reason says why; a device asked for by name must start."""
    first = choose(manifest, hw, backend=backend, device=device)  # raises if none is usable
    if device != "auto":
        return first, create_backend(manifest, first, hw=hw, threads=threads, cache_dir=cache_dir())
    usable, _ = candidates(manifest, hw)
    tried: list[str] = []
    for choice in usable:  # the first that matches ``backend`` is ``first``
        if backend not in ("auto", choice.backend) or (choice.backend, choice.device) in skip:
            continue
        try:
            runtime = create_backend(
                manifest, choice, hw=hw, threads=threads, cache_dir=cache_dir()
            )
        except BackendUnavailableError as exc:
            tried.append(f"{choice.backend}/{choice.device}: {exc}")
            continue
        if tried:
            choice = replace(choice, reason=f"{choice.reason} (did not start: {'; '.join(tried)})")
        return choice, runtime
    raise BackendUnavailableError(f"no backend of model {manifest.id} started: {'; '.join(tried)}")


class FurtherModels:
    """The bundle's models beyond its main one, opened for its task through the backend layer
    with the main model's choice, and remembered for every result's provenance."""

    def __init__(
        self, manifest: Manifest, choice: Choice, hw: HardwareInfo, threads: int | None
    ) -> None:
        self._manifest, self._choice, self._hw, self._threads = manifest, choice, hw, threads
        self._opened: list[Backend] = []
        self.used: tuple[ModelUse, ...] = ()
        self.fallbacks: tuple[str, ...] = ()  # why a further model runs elsewhere than chosen

    def open(self, role: str) -> Backend:
        opened = open_model(
            self._manifest,
            self._choice,
            hw=self._hw,
            threads=self._threads,
            cache_dir=cache_dir(),
            role=role,
        )
        self._opened.append(opened.backend)
        self.used = (*self.used, opened.use)
        if opened.fallback:
            self.fallbacks = (*self.fallbacks, opened.fallback)
        return opened.backend

    def close(self) -> None:
        for backend in self._opened:
            backend.close()
