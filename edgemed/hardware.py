"""What this machine offers for inference: Jetson, Intel NPU/iGPU, CUDA, CPU features.

Everything is read below ``root`` (default ``/``) so tests can present a Jetson Orin or an Intel
Core Ultra from fixture folders. Runtime devices (ONNX Runtime providers, OpenVINO devices) are
the backends' to say (``edgemed.backends.probe`` adds them): this module imports no runtime.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["HardwareInfo", "cpu_family", "cpu_family_of", "read_machine"]

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
    intel_igpu: bool  # a DRM card with PCI vendor 0x8086
    gpu_name: str | None  # Jetson model or discrete NVIDIA GPU (keys TensorRT engine caches)
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


def cpu_family_of(machine: str, flags: tuple[str, ...]) -> str:
    """The CPU family whose numerics a golden tolerance is measured for: INT8 kernels take
    different instruction paths (and round differently) on AMX, AVX-512 VNNI and AVX2."""
    if machine in ("x86_64", "AMD64", "amd64"):
        for flag, family in (("amx_int8", "amx"), ("avx512_vnni", "avx512vnni"),
                             ("avx_vnni", "avxvnni"), ("avx2", "avx2")):  # fmt: skip
            if flag in flags:
                return f"x86_64-{family}"
        return "x86_64"
    if machine in ("aarch64", "arm64"):
        return "aarch64-dotprod" if "asimddp" in flags else "aarch64"
    return machine


@functools.cache
def cpu_family() -> str:
    """This machine's CPU family (cpu_family_of), read once per process."""
    _, flags = _cpuinfo(Path("/"))
    return cpu_family_of(platform.machine(), flags)


def _memory_gb(root: Path) -> float | None:
    for line in (_read(root / "proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024**2, 1)
    return None


def _nvidia_gpu(root: Path) -> str | None:
    """Model of the first NVIDIA GPU the kernel driver reports (discrete GPUs only)."""
    gpus = root / "proc/driver/nvidia/gpus"
    if not gpus.is_dir():
        return None
    for info in sorted(gpus.glob("*/information")):
        for line in (_read(info) or "").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model" and value.strip():
                return value.strip()
    return None


def _intel_igpu(root: Path) -> bool:
    vendors = (root / "sys/class/drm").glob("card*/device/vendor")
    return any((_read(v) or "").lower() == "0x8086" for v in vendors)


def read_machine(root: Path | str = "/") -> HardwareInfo:
    """The machine below ``root`` (``/``, or a fixture folder): CPU, memory, GPU, NPU. Which
    devices the installed runtimes can use is theirs to say: :func:`edgemed.backends.probe`."""
    root = Path(root)
    model, flags = _cpuinfo(root)
    jetson = _read(root / "proc/device-tree/model")
    release = _read(root / "etc/nv_tegra_release")
    accel = root / "dev/accel"
    jetson_model = jetson if jetson and "jetson" in jetson.lower() else None
    return HardwareInfo(
        # /proc/sys/kernel/arch (Linux >= 6.1) lets fixtures present another architecture.
        machine=_read(root / "proc/sys/kernel/arch") or platform.machine(),
        cpu_model=model,
        cpu_count=os.cpu_count() or 1,
        cpu_flags=flags,
        memory_gb=_memory_gb(root),
        jetson_model=jetson_model,
        l4t_release=release.splitlines()[0].lstrip("# ").strip() if release else None,
        intel_npu=accel.is_dir() and any(p.name.startswith("accel") for p in accel.iterdir()),
        intel_igpu=_intel_igpu(root),
        gpu_name=jetson_model or _nvidia_gpu(root),
    )
