"""The runtimes a model can run on: one module each, owning that runtime's knowledge.

A runtime module (``onnxruntime``, ``openvino``) says how its runtime is probed, which edgemed
devices it offers, how a manifest's artifact opens on one of them (threads, caches, shapes,
precision) and what to install when a device is missing. Selection (``select``), dispatch
(``create_backend``) and the hardware probe ask them through :data:`RUNTIMES` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ..hardware import HardwareInfo
from ..manifest import Manifest
from . import onnxruntime, openvino
from .base import Backend

__all__ = ["RUNTIMES", "Runtime"]


class Runtime(Protocol):
    """What a runtime module offers (a module satisfies this protocol)."""

    @property
    def DEVICES(self) -> tuple[str, ...]: ...  # a module constant

    @property
    def INSTALL_HINT(self) -> dict[str, str]: ...  # a module constant

    def probe(self) -> tuple[str, ...]: ...

    def usable_devices(self, hw: HardwareInfo) -> list[str]: ...

    def open_model(
        self,
        manifest: Manifest,
        device: str,
        *,
        hw: HardwareInfo,
        threads: int | None = None,
        cache_dir: Path,
        role: str = "model",
    ) -> Backend: ...


RUNTIMES: dict[str, Runtime] = {"onnxruntime": onnxruntime, "openvino": openvino}
