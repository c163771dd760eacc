"""Which runtime and device serve a model on this machine, and why.

The decision is a pure function of the manifest and a :class:`~edgemed.hardware.HardwareInfo`
so that probe fixtures (a Jetson Orin, a Core Ultra with NPU, a plain CPU) test it exactly.

Order of preference, first usable wins:

* Jetson, or any NVIDIA GPU: ONNX Runtime TensorRT, then CUDA (needs the GPU build).
* Intel NPU / integrated GPU: OpenVINO NPU, then GPU (needs an OpenVINO IR in the bundle).
* Otherwise the CPU, with the backends in the order the manifest lists them: the recipe lists
  the one it measured fastest for that model first.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BackendUnavailableError
from ..hardware import HardwareInfo
from ..manifest import Manifest
from .runtimes import RUNTIMES

__all__ = ["Choice", "candidates", "choose"]


@dataclass(frozen=True, kw_only=True)
class Choice:
    backend: str  # "onnxruntime" | "openvino"
    device: str  # "tensorrt" | "cuda" | "npu" | "gpu" | "cpu"
    reason: str


def _usable(hw: HardwareInfo, backend: str) -> list[str]:
    return RUNTIMES[backend].usable_devices(hw)


def _hint(backend: str, device: str) -> str:
    return RUNTIMES[backend].INSTALL_HINT.get(device, "")


def candidates(manifest: Manifest, hw: HardwareInfo) -> tuple[list[Choice], list[str]]:
    """Usable (backend, device) pairs in preference order, and notes on what was skipped."""
    usable: list[Choice] = []
    skipped: list[str] = []
    ships = set(manifest.backends)
    nvidia = hw.jetson_model is not None or "CUDAExecutionProvider" in hw.onnxruntime_providers
    intel_accel = hw.intel_npu or any(d.startswith(("NPU", "GPU")) for d in hw.openvino_devices)
    where = hw.jetson_model or "NVIDIA GPU"
    if nvidia and "onnxruntime" in ships:
        have = _usable(hw, "onnxruntime")
        for device in ("tensorrt", "cuda"):
            if device in have:
                usable.append(Choice(backend="onnxruntime", device=device, reason=f"{where}"))
            else:
                skipped.append(
                    f"onnxruntime/{device} on {where}: provider missing, {_hint('onnxruntime', device)}"
                )
    elif nvidia:
        skipped.append(f"{where}: model ships no ONNX artifact")
    if intel_accel and "openvino" in ships:
        have = _usable(hw, "openvino")
        for device in ("npu", "gpu"):
            if device in have:
                what = "Intel NPU" if device == "npu" else "Intel integrated GPU"
                usable.append(Choice(backend="openvino", device=device, reason=what))
            elif device == "npu" and hw.intel_npu:
                skipped.append(f"openvino/npu: /dev/accel present but {_hint('openvino', 'npu')}")
    elif intel_accel:
        skipped.append("Intel accelerator present but the model ships no OpenVINO IR")
    for backend in manifest.backends:
        if "cpu" in _usable(hw, backend):
            first = backend == manifest.backends[0]
            usable.append(
                Choice(
                    backend=backend,
                    device="cpu",
                    reason="CPU; "
                    + ("fastest CPU backend per the recipe" if first else "fallback"),
                )
            )
        else:
            skipped.append(f"{backend}/cpu: {backend} not installed ({_hint(backend, 'cpu')})")
    return usable, skipped


def choose(
    manifest: Manifest, hw: HardwareInfo, *, backend: str = "auto", device: str = "auto"
) -> Choice:
    """The first usable candidate matching the explicit ``backend``/``device``, if any."""
    if backend != "auto" and backend not in manifest.backends:
        raise BackendUnavailableError(
            f"model {manifest.id} ships no artifact for backend {backend!r}; "
            f"it supports {list(manifest.backends)}"
        )
    usable, skipped = candidates(manifest, hw)
    for choice in usable:
        if backend in ("auto", choice.backend) and device in ("auto", choice.device):
            return choice
    if device != "auto":
        runtimes = [backend] if backend != "auto" else list(manifest.backends)
        known = {b: RUNTIMES[b].DEVICES for b in runtimes}
        hints = [_hint(b, device) for b in runtimes if device in known[b]]
        if not hints:
            raise BackendUnavailableError(
                f"no backend of model {manifest.id} runs on device {device!r}; devices: "
                + ", ".join(f"{b}: {list(known[b])}" for b in runtimes)
            )
        raise BackendUnavailableError(
            f"device {device!r} is not available for model {manifest.id} here: " + "; ".join(hints)
        )
    raise BackendUnavailableError(
        f"no usable backend for model {manifest.id}: " + ("; ".join(skipped) or "none installed")
    )
