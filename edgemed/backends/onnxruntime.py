"""ONNX Runtime backend: CPU anywhere; CUDA and TensorRT where the GPU build is installed.

Everything edgemed knows about ONNX Runtime lives here: which providers a machine really has
(:func:`probe`), which edgemed devices they make (:func:`usable_devices`), how a manifest's
artifact opens on one of them (:func:`open_model`: threads, TensorRT engine cache and
precision) and what to install when one is missing (``INSTALL_HINT``).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import BackendError, BackendUnavailableError
from ..hardware import HardwareInfo
from ..manifest import Manifest
from .base import Tensors

# ONNX Runtime 1.29+ uploads usage telemetry from Linux too: a ProcessInfo event (CPU model,
# memory, process name, a device id it keeps under ~/.cache/Microsoft/DeveloperTools) and usage
# events, to mobile.events.data.microsoft.com. A bedside device talks to its broker and nothing
# else, so it is off unless the process chose otherwise (ORT_DISABLE_TELEMETRY=0). Set when this
# module loads, before edgemed imports ONNX Runtime (the runtime reads it when it starts).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__all__ = [
    "DEVICES",
    "INSTALL_HINT",
    "NAME",
    "PROVIDERS",
    "OnnxRuntimeBackend",
    "available_devices",
    "open_model",
    "probe",
    "provider_fallback",
    "tensorrt_cache_dir",
    "tensorrt_options",
    "usable_devices",
    "usable_providers",
]

NAME = "onnxruntime"
# edgemed device name -> ONNX Runtime provider chain (nodes a provider cannot run fall right).
PROVIDERS: dict[str, list[str]] = {
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "cpu": ["CPUExecutionProvider"],
}
DEVICES = tuple(PROVIDERS)
INSTALL_HINT = {
    "tensorrt": "install onnxruntime-gpu built with TensorRT (on Jetson: the JetPack "
    "onnxruntime-gpu wheel from NVIDIA's Jetson AI Lab index, which is not on PyPI) and TensorRT",
    "cuda": "install onnxruntime-gpu (on Jetson: NVIDIA's JetPack onnxruntime-gpu wheel, "
    "which is not on PyPI)",
    "cpu": "pip install 'edgemed[onnxruntime]'",
}
_TRT = "TensorrtExecutionProvider"


# -- probing ---------------------------------------------------------------------------------


def usable_providers(listed: Collection[str], tensorrt_loads: bool) -> tuple[str, ...]:
    """ONNX Runtime's providers less TensorRT when TensorRT itself cannot load: the PyPI
    onnxruntime-gpu lists it without shipping the TensorRT libraries (seen on an H200 with
    onnxruntime-gpu 1.31.1), and its sessions then quietly run on CUDA instead."""
    return tuple(p for p in listed if tensorrt_loads or p != _TRT)


@functools.cache
def _tensorrt_loads() -> bool:
    """Whether TensorRT's runtime library loads the way ONNX Runtime's TensorRT provider loads
    it (the dynamic loader's search path). Asked only where a GPU build of ONNX Runtime is."""
    for name in ("libnvinfer.so.10", "libnvinfer.so.8", "nvinfer_10.dll", "nvinfer.dll"):
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False


def probe() -> tuple[str, ...]:
    """The providers this machine's ONNX Runtime can use (``HardwareInfo.onnxruntime_providers``);
    () when ONNX Runtime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return ()
    listed = ort.get_available_providers()
    return usable_providers(listed, _TRT in listed and _tensorrt_loads())


def available_devices(providers: tuple[str, ...] | None = None) -> list[str]:
    """Devices whose first provider ONNX Runtime offers (``providers`` for probe fixtures)."""
    if providers is None:
        import onnxruntime as ort

        providers = tuple(ort.get_available_providers())
    return [dev for dev, chain in PROVIDERS.items() if chain[0] in providers]


def usable_devices(hw: HardwareInfo) -> list[str]:
    """The edgemed devices ONNX Runtime offers on the machine ``hw`` describes."""
    return available_devices(hw.onnxruntime_providers)


def provider_fallback(requested: list[str], started: list[str]) -> str | None:
    """Why a session did not start on the provider asked for, or None if it did.

    ``get_available_providers`` lists what the build was compiled with, not what can load: the
    PyPI onnxruntime-gpu lists TensorRT without the TensorRT libraries, and a CUDA provider
    whose cuDNN is missing fails to load. ONNX Runtime then carries on with the next provider
    (logging it, or retrying in Python), and a result would claim a device it never ran on."""
    if started and started[0] == requested[0]:
        return None
    return (
        f"{requested[0]} did not start (its libraries could not be loaded); the session fell "
        f"back to {started or 'nothing'}"
    )


# -- opening a manifest's model ----------------------------------------------------------------


def _tensorrt_version() -> str:
    for dist in ("tensorrt", "tensorrt-libs", "tensorrt_libs"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "system"  # JetPack installs TensorRT as Debian packages, not a Python dist


def tensorrt_cache_dir(cache_root: Path, model_sha256: str, device_name: str) -> Path:
    """One engine folder per model sha256 x GPU x TensorRT version: an engine built for one
    combination is invalid on any other, and a stale engine must never be picked up."""
    slug = re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-") or "gpu"
    return cache_root / "tensorrt" / f"{model_sha256[:16]}-{slug}-trt{_tensorrt_version()}"


def tensorrt_options(
    manifest: Manifest, *, role: str = "model", hw: HardwareInfo, cache_dir: Path
) -> dict[str, Any]:
    """TensorRT provider options for the artifact ``role``: its engine and timing caches (made
    here), and its precision. The main model's is the manifest's ``tensorrt_precision``; an
    auxiliary model's is its artifact's own precision (fp32 when unstated), never lowered."""
    artifact = manifest.artifacts[role]
    engines = tensorrt_cache_dir(cache_dir, artifact.sha256, hw.gpu_name or "gpu")
    engines.mkdir(parents=True, exist_ok=True)
    precision = manifest.tensorrt_precision if role == "model" else artifact.precision or "fp32"
    return {
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(engines),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(engines),
        "trt_fp16_enable": precision in ("fp16", "int8"),
        # INT8 bundles are QDQ graphs: TensorRT takes their scales, no calibration table.
        "trt_int8_enable": precision == "int8",
    }


def open_model(
    manifest: Manifest,
    device: str,
    *,
    hw: HardwareInfo,
    threads: int | None = None,
    cache_dir: Path,
    role: str = "model",
) -> OnnxRuntimeBackend:
    """A session on the ONNX artifact ``role`` of ``manifest`` (ManifestError if it has none)."""
    path = manifest.path(role)
    trt = None
    if device == "tensorrt":
        trt = tensorrt_options(manifest, role=role, hw=hw, cache_dir=cache_dir)
    return OnnxRuntimeBackend(path, device=device, threads=threads, tensorrt_options=trt)


class OnnxRuntimeBackend:
    """``InferenceSession.run`` is thread-safe, so one session serves every thread."""

    name = NAME

    def __init__(
        self,
        model_path: Path,
        *,
        device: str = "cpu",
        threads: int | None = None,
        tensorrt_options: dict[str, Any] | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailableError(INSTALL_HINT["cpu"]) from exc
        if device not in PROVIDERS:
            raise BackendUnavailableError(
                f"onnxruntime: unknown device {device!r}; known: {list(PROVIDERS)}"
            )
        if device not in available_devices():
            raise BackendUnavailableError(
                f"onnxruntime has no {device} provider here: {INSTALL_HINT[device]}"
            )
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # graph optimiser warnings are not the user's concern
        providers: list[Any] = list(PROVIDERS[device])
        if device == "tensorrt":
            providers[0] = (_TRT, tensorrt_options or {})
        try:
            self._session = ort.InferenceSession(str(model_path), opts, providers=providers)
        except Exception as exc:  # ORT raises its own untyped exceptions
            raise BackendError(f"onnxruntime could not load {model_path.name}: {exc}") from exc
        started = self._session.get_providers()
        problem = provider_fallback(PROVIDERS[device], started)
        if problem is not None:
            self._session = None
            raise BackendUnavailableError(f"onnxruntime: {problem}; {INSTALL_HINT[device]}")
        self.device = device
        self.input_names = tuple(i.name for i in self._session.get_inputs())
        self._output_names = [o.name for o in self._session.get_outputs()]

    def run(self, inputs: Tensors) -> dict[str, npt.NDArray[np.generic]]:
        try:
            outputs = self._session.run(self._output_names, dict(inputs))
        except Exception as exc:
            raise BackendError(f"onnxruntime inference failed: {exc}") from exc
        return dict(zip(self._output_names, outputs, strict=True))

    def raw(self) -> Any:
        """The underlying ``InferenceSession`` (benchmarks compare against it)."""
        return self._session

    def close(self) -> None:
        self._session = None
