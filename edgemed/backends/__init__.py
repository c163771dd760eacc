"""Stage 3: inference backends behind one tiny protocol, chosen per model and machine."""

from __future__ import annotations

from ..errors import BackendUnavailableError
from ..manifest import Manifest
from .base import Backend, Tensors

__all__ = ["Backend", "Tensors", "create_backend", "select_device"]


def select_device(backend: str, device: str) -> str:
    """Resolve ``device="auto"``: the first accelerator the backend can use, else the CPU."""
    if device != "auto":
        return device
    if backend == "onnxruntime":
        from .onnxruntime import available_devices

        devices = available_devices()
        return "cuda" if "cuda" in devices else "cpu"
    return "cpu"


def create_backend(
    manifest: Manifest, *, backend: str = "auto", device: str = "auto", threads: int | None = None
) -> Backend:
    if backend == "auto":
        backend = manifest.backends[0]
    if backend not in manifest.backends:
        raise BackendUnavailableError(
            f"model {manifest.id} ships no artifact for backend {backend!r}; it supports "
            f"{list(manifest.backends)}"
        )
    if backend == "onnxruntime":
        from .onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(
            manifest.path("model"), device=select_device(backend, device), threads=threads
        )
    raise BackendUnavailableError(f"backend {backend!r} is not implemented yet")
