"""The machine block saved with every result, and its one-line summary for the README."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

# The instruction sets the kernels and runtimes choose code paths by: the rest of
# /proc/cpuinfo's flags say nothing about these figures.
SIMD_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
    "avx512_vnni", "avx512vbmi", "avx512_vbmi2", "avx512_bf16", "avx512_fp16", "amx_tile",
    "amx_int8", "amx_bf16", "sha_ni", "asimd", "asimddp", "sve", "i8mm",
)  # fmt: skip
PACKAGES = (
    "numpy", "scipy", "opencv-python", "opencv-python-headless", "onnxruntime", "openvino",
    "rapidocr-onnxruntime", "edgemed",
)  # fmt: skip


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty off Linux)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def _versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def describe() -> dict[str, Any]:
    """What the figures depend on: CPU model and SIMD flags, cores this process may use,
    last-level cache, virtualisation, the numeric libraries' versions."""
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    return {
        "cpu": info.get("model name") or platform.processor() or platform.machine(),
        "cpu_family_model": f"{info.get('cpu family', '?')}/{info.get('model', '?')}",
        "cache": info.get("cache size"),
        "cores": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "virtual": "hypervisor" in flags,
        "simd_flags": [f for f in SIMD_FLAGS if f in flags],
        "arch": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": _versions(),
    }


def flags_summary(flags: list[str]) -> str:
    """``avx2 avx512f avx512_vnni avx512vbmi amx_tile`` -> ``AVX2, AVX-512 (VNNI, VBMI), AMX``."""
    have = set(flags)
    parts = [name for flag, name in (("avx2", "AVX2"), ("avx_vnni", "AVX-VNNI")) if flag in have]
    if "avx512f" in have:
        subsets = [
            name
            for flag, name in (
                ("avx512_vnni", "VNNI"),
                ("avx512vbmi", "VBMI"),
                ("avx512_bf16", "BF16"),
                ("avx512_fp16", "FP16"),
            )
            if flag in have
        ]
        parts.append("AVX-512" + (f" ({', '.join(subsets)})" if subsets else ""))
    if "amx_tile" in have:
        parts.append("AMX")
    parts += [name for flag, name in (("asimddp", "NEON dot"), ("sve", "SVE")) if flag in have]
    return ", ".join(parts) or "no AVX2"


def summary(machine: dict[str, Any]) -> str:
    """One line: ``Intel(R) Xeon(R) Processor (6/207, 260 MB L3), 2 cores, VM; AVX2, ...``."""
    cpu = machine.get("cpu") or "unknown CPU"
    detail = [machine["cpu_family_model"]] if machine.get("cpu_family_model") else []
    if machine.get("cache"):
        detail.append(f"{machine['cache']} cache")
    usable, cores = machine.get("cpus_usable"), machine.get("cores")
    where = f"{cores} cores" if usable in (None, cores) else f"{usable} of {cores} cores"
    if machine.get("virtual"):
        where += ", VM"
    line = f"{cpu} ({', '.join(detail)}), {where}" if detail else f"{cpu}, {where}"
    return f"{line}; {flags_summary(machine.get('simd_flags', []))}; Python {machine.get('python')}"
