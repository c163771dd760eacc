"""Stage 3: inference backends behind one tiny protocol, chosen per model and machine.

Every model call goes through here: a task's main model and its further models (a monitor
reader's recogniser) alike. Each runtime module (``onnxruntime``, ``openvino``) owns what it
takes to open its runtime; this module only dispatches to the one a :class:`Choice` names.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from pathlib import Path

from .. import config
from ..errors import BackendUnavailableError, ManifestError
from ..hardware import HardwareInfo, read_machine
from ..manifest import Manifest
from .base import Backend, ModelUse, OpenedModel, Tensors
from .runtimes import RUNTIMES
from .select import Choice, candidates, choose

__all__ = [
    "Backend",
    "Choice",
    "ModelUse",
    "OpenedModel",
    "Tensors",
    "candidates",
    "choose",
    "create_backend",
    "open_model",
    "probe",
]


def open_model(
    manifest: Manifest,
    choice: Choice,
    *,
    hw: HardwareInfo,
    threads: int | None = None,
    cache_dir: Path | None = None,
    role: str = "model",
) -> OpenedModel:
    """Open the artifact ``role`` of ``manifest`` on the runtime and device ``choice`` names.

    ``role="model"`` is the main model (the choice must start, or BackendUnavailableError).
    Any other role is a further model of the bundle (``"recognizer"``), opened with the main
    model's choice; where that runtime cannot serve it (no OpenVINO IR for the role, an NPU
    that needs shapes the manifest does not declare, a provider that does not start) it
    runs on onnxruntime/cpu instead, and ``fallback`` says why. ``cache_dir``: compiled
    engines (default :func:`edgemed.config.cache_dir`)."""
    cache = config.cache_dir() if cache_dir is None else cache_dir
    if not manifest.has(role):
        raise ManifestError(f"{manifest.id}: manifest has no artifact {role!r}")
    try:
        runtime = RUNTIMES[choice.backend].open_model(
            manifest, choice.device, hw=hw, threads=threads, cache_dir=cache, role=role
        )
        fallback = None
    except BackendUnavailableError as exc:
        if role == "model" or (choice.backend, choice.device) == ("onnxruntime", "cpu"):
            raise
        fallback = f"{role} runs on onnxruntime/cpu, not {choice.backend}/{choice.device}: {exc}"
        runtime = RUNTIMES["onnxruntime"].open_model(
            manifest, "cpu", hw=hw, threads=threads, cache_dir=cache, role=role
        )
    use = ModelUse(
        role=role,
        sha256=manifest.artifacts[role].sha256,
        backend=runtime.name,
        device=runtime.device,
    )
    return OpenedModel(backend=runtime, use=use, fallback=fallback)


def create_backend(
    manifest: Manifest,
    choice: Choice,
    *,
    hw: HardwareInfo,
    threads: int | None = None,
    cache_dir: Path | None = None,
    role: str = "model",
) -> Backend:
    """The backend of :func:`open_model` alone (the main model's caller has its provenance)."""
    return open_model(
        manifest, choice, hw=hw, threads=threads, cache_dir=cache_dir, role=role
    ).backend


def probe(
    root: Path | str = "/", *, runtimes: Collection[str] = ("onnxruntime", "openvino")
) -> HardwareInfo:
    """The machine below ``root`` and the devices the installed ``runtimes`` can use, each
    asked through its backend module (``runtimes=()`` for fixtures, which state their own).
    A runtime not asked for is never imported (OpenVINO costs ~0.3 s)."""
    hw = read_machine(root)
    asked = {name: RUNTIMES[name].probe() for name in runtimes if name in RUNTIMES}
    return replace(
        hw,
        onnxruntime_providers=asked.get("onnxruntime", hw.onnxruntime_providers),
        openvino_devices=asked.get("openvino", hw.openvino_devices),
    )
