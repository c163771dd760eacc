"""What this machine offers for inference: Jetson, Intel NPU/iGPU, CUDA, CPU features.

Everything is read below ``root`` (default ``/``) so tests can present a Jetson Orin or an Intel
Core Ultra from fixture folders. Runtime devices (ONNX Runtime providers, OpenVINO devices) are
asked of the installed runtimes.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["HardwareInfo", "probe"]

_INTERESTING_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "asimd",
    "asimddp",
)


@dataclass(frozen=True, kw_only=True)
class HardwareInfo:
    machine: str
    cpu_model: str
    cpu_count: int
    cpu_flags: tuple[str, ...]
    memory_gb: float | None
    jetson_model: str | None  # e.g. "NVIDIA Jetson AGX Orin Developer Kit"
    l4t_release: str | None  # e.g. "R36 (release), REVISION: 3.0"
    intel_npu: bool  # /dev/accel/accel* present (intel_vpu driver)
    onnxruntime_providers: tuple[str, ...] = field(default=())
    openvino_devices: tuple[str, ...] = field(default=())


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").replace("\x00", "").strip()
    except OSError:
        return None


def _cpuinfo(root: Path) -> tuple[str, tuple[str, ...]]:
    text = _read(root / "proc/cpuinfo") or ""
    model, flags = platform.processor() or platform.machine(), set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and value.strip():
            model = value.strip()
        elif key in ("flags", "Features"):
            flags.update(value.split())
    return model, tuple(f for f in _INTERESTING_FLAGS if f in flags)


def _memory_gb(root: Path) -> float | None:
    for line in (_read(root / "proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024**2, 1)
    return None


def _runtime_devices() -> tuple[tuple[str, ...], tuple[str, ...]]:
    providers: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    try:
        import onnxruntime as ort

        providers = tuple(ort.get_available_providers())
    except ImportError:
        pass
    try:
        import openvino as ov

        devices = tuple(ov.Core().available_devices)
    except ImportError:
        pass
    return providers, devices


def probe(root: Path | str = "/", *, runtimes: bool = True) -> HardwareInfo:
    root = Path(root)
    model, flags = _cpuinfo(root)
    jetson = _read(root / "proc/device-tree/model")
    release = _read(root / "etc/nv_tegra_release")
    accel = root / "dev/accel"
    providers, devices = _runtime_devices() if runtimes else ((), ())
    return HardwareInfo(
        machine=platform.machine(),
        cpu_model=model,
        cpu_count=os.cpu_count() or 1,
        cpu_flags=flags,
        memory_gb=_memory_gb(root),
        jetson_model=jetson if jetson and "jetson" in jetson.lower() else None,
        l4t_release=release.splitlines()[0].lstrip("# ").strip() if release else None,
        intel_npu=accel.is_dir() and any(p.name.startswith("accel") for p in accel.iterdir()),
        onnxruntime_providers=providers,
        openvino_devices=devices,
    )
