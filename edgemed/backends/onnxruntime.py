"""ONNX Runtime backend (CPU here; CUDA/TensorRT providers where the GPU build is installed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..errors import BackendError, BackendUnavailableError
from .base import Tensors

__all__ = ["PROVIDERS", "OnnxRuntimeBackend"]

# edgemed device name -> ONNX Runtime provider chain (falls back left to right).
PROVIDERS: dict[str, list[str]] = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
}
_INSTALL_HINT = {
    "cuda": "install onnxruntime-gpu (on Jetson: NVIDIA's JetPack onnxruntime-gpu wheel, "
    "which is not on PyPI)",
}


def available_devices() -> list[str]:
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    return [dev for dev, chain in PROVIDERS.items() if chain[0] in have]


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(
        self, model_path: Path, *, device: str = "cpu", threads: int | None = None
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailableError(
                "onnxruntime is not installed: pip install onnxruntime"
            ) from exc
        if device not in PROVIDERS:
            raise BackendUnavailableError(
                f"onnxruntime: unknown device {device!r}; known: {list(PROVIDERS)}"
            )
        if device not in available_devices():
            raise BackendUnavailableError(
                f"onnxruntime has no {device} provider: {_INSTALL_HINT[device]}"
            )
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # warnings from graph optimisers are not the user's concern
        try:
            self._session = ort.InferenceSession(str(model_path), opts, providers=PROVIDERS[device])
        except Exception as exc:  # ORT raises its own untyped exceptions
            raise BackendError(f"onnxruntime could not load {model_path.name}: {exc}") from exc
        self.device = device
        self._output_names = [o.name for o in self._session.get_outputs()]

    def run(self, inputs: Tensors) -> dict[str, npt.NDArray[np.generic]]:
        try:
            outputs = self._session.run(self._output_names, dict(inputs))
        except Exception as exc:
            raise BackendError(f"onnxruntime inference failed: {exc}") from exc
        return dict(zip(self._output_names, outputs, strict=True))

    def close(self) -> None:
        del self._session
