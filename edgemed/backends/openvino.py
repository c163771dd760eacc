"""OpenVINO backend: Intel NPU, integrated GPU or CPU, with a compiled-model cache.

Everything edgemed knows about OpenVINO lives here: which devices it reports (:func:`probe`,
:func:`usable_devices`), how a manifest's IR opens on one (:func:`open_model`: the IR's
artifact role, static shapes for the NPU, the compiled-model cache, threads, precision) and
what to install when a device is missing (``INSTALL_HINT``).
"""

from __future__ import annotations

import importlib
import queue
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import BackendError, BackendUnavailableError
from ..hardware import HardwareInfo
from ..manifest import Manifest
from .base import Tensors

__all__ = [
    "DEVICES",
    "INSTALL_HINT",
    "NAME",
    "OpenVinoBackend",
    "available_devices",
    "import_openvino",
    "ir_role",
    "open_model",
    "probe",
    "usable_devices",
]

NAME = "openvino"
DEVICES = ("npu", "gpu", "cpu")
INSTALL_HINT = {
    "npu": "install the Intel NPU driver (intel-npu-driver, level-zero) so /dev/accel/accel0 "
    "exists and OpenVINO lists NPU",
    "gpu": "install the Intel compute runtime (intel-opencl-icd / level-zero GPU) so OpenVINO "
    "lists GPU",
    "cpu": "pip install 'edgemed[openvino]'",
}


def import_openvino() -> ModuleType:
    """``import openvino`` without OpenVINO's usage telemetry (ImportError if not installed).

    OpenVINO's package init sends a usage event to Google Analytics on every import (from a
    forked process) and writes a client id under ``$HOME/intel``, unless its user opted out.
    A bedside device reaches nothing but its broker, and a fork from a process whose sync
    threads hold locks is a hazard of its own; so before the first import edgemed makes
    ``openvino_telemetry`` unimportable, and OpenVINO falls back to its own no-op stub. A process
    that imported OpenVINO or its telemetry before edgemed keeps what it chose."""
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    return importlib.import_module("openvino")


def probe() -> tuple[str, ...]:
    """OpenVINO's device names on this machine (``HardwareInfo.openvino_devices``: "CPU",
    "GPU.0", "NPU"...); () when OpenVINO is not installed. Importing OpenVINO costs ~0.3 s:
    ask only when a model ships an IR."""
    try:
        ov = import_openvino()
    except ImportError:
        return ()
    return tuple(ov.Core().available_devices)


def available_devices(ov_devices: tuple[str, ...] | None = None) -> list[str]:
    """edgemed device names OpenVINO can use (``ov_devices`` for probe fixtures)."""
    if ov_devices is None:
        ov_devices = probe()
    # OpenVINO names devices "CPU", "GPU", "GPU.0", "GPU.1", "NPU".
    present = {d.split(".")[0].lower() for d in ov_devices}
    return [d for d in DEVICES if d in present]


def usable_devices(hw: HardwareInfo) -> list[str]:
    """The edgemed devices OpenVINO offers on the machine ``hw`` describes."""
    return available_devices(hw.openvino_devices)


def ir_role(role: str) -> str:
    """The manifest artifact role of the IR (``.xml``) converted from the ONNX artifact
    ``role``: ``openvino_model`` for the main model, ``openvino_recognizer`` for a recogniser;
    its weights (``.bin``) lie beside it."""
    return f"openvino_{role}"


def _static_shapes(manifest: Manifest) -> dict[str, tuple[int, ...]]:
    """The main model's inputs at batch 1: the NPU compiles static shapes only."""
    static = {}
    for spec in manifest.inputs:
        shape = spec.static_shape()
        if shape is None:
            raise BackendUnavailableError(
                f"model {manifest.id}: the NPU needs static shapes but input {spec.name} "
                f"is declared {list(spec.shape)}"
            )
        static[spec.name] = shape
    return static


def open_model(
    manifest: Manifest,
    device: str,
    *,
    hw: HardwareInfo,
    threads: int | None = None,
    cache_dir: Path,
    role: str = "model",
) -> OpenVinoBackend:
    """The IR of the artifact ``role`` compiled for ``device``. BackendUnavailableError when
    the bundle has no IR for ``role``, or on the NPU for an auxiliary model: the manifest
    declares input shapes for its main model only, and the NPU compiles static shapes only.
    ``hw`` is unused (OpenVINO keys its own cache by device); it keeps the runtimes alike."""
    if not manifest.has(ir_role(role)):
        raise BackendUnavailableError(f"model {manifest.id} ships no OpenVINO IR for its {role}")
    static = None
    if device == "npu":
        if role != "model":
            raise BackendUnavailableError(
                f"model {manifest.id}: the NPU needs static shapes and the manifest declares "
                f"them for its main model only, not its {role}"
            )
        static = _static_shapes(manifest)
    return OpenVinoBackend(
        manifest.path(ir_role(role)),
        device=device,
        threads=threads,
        static_shapes=static,
        cache_dir=cache_dir / "openvino",
    )


class OpenVinoBackend:
    """One compiled model; a pool of infer requests so threads never share one."""

    name = NAME

    def __init__(
        self,
        xml_path: Path,
        *,
        device: str = "cpu",
        threads: int | None = None,
        static_shapes: dict[str, tuple[int, ...]] | None = None,
        cache_dir: Path | None = None,
        requests: int = 4,
    ) -> None:
        try:
            ov = import_openvino()
        except ImportError as exc:
            raise BackendUnavailableError(INSTALL_HINT["cpu"]) from exc
        if device not in DEVICES:
            raise BackendUnavailableError(f"openvino: unknown device {device!r}; known: {DEVICES}")
        if device not in available_devices():
            raise BackendUnavailableError(
                f"openvino has no {device.upper()} device here: {INSTALL_HINT[device]}"
            )
        core = ov.Core()
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            config["CACHE_DIR"] = str(cache_dir)
        if device == "cpu":
            # The CPU plugin defaults to bf16 where the CPU has it: golden vectors are f32.
            config["INFERENCE_PRECISION_HINT"] = "f32"
            if threads is not None:
                config["INFERENCE_NUM_THREADS"] = threads
        try:
            model = core.read_model(str(xml_path))
            if static_shapes:  # the NPU compiles static shapes only
                model.reshape({name: ov.PartialShape(list(s)) for name, s in static_shapes.items()})
            self._compiled = core.compile_model(model, device.upper(), config)
        except Exception as exc:  # OpenVINO raises RuntimeError with the plugin's message
            raise BackendError(f"openvino could not compile {xml_path.name}: {exc}") from exc
        self.device = device
        self.input_names = tuple(p.get_any_name() for p in self._compiled.inputs)
        self._output_names = [p.get_any_name() for p in self._compiled.outputs]
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(requests):
            self._requests.put(self._compiled.create_infer_request())

    @contextmanager
    def _request(self) -> Iterator[Any]:
        request = self._requests.get()  # blocks when every request is busy
        try:
            yield request
        finally:
            self._requests.put(request)

    def run(self, inputs: Tensors) -> dict[str, npt.NDArray[np.generic]]:
        with self._request() as request:
            try:
                request.infer(dict(inputs))
                # Copies: the request's buffers are reused by the next call.
                return {
                    name: np.array(request.get_tensor(name).data) for name in self._output_names
                }
            except Exception as exc:
                raise BackendError(f"openvino inference failed: {exc}") from exc

    def raw(self) -> Any:
        """The underlying ``CompiledModel`` (benchmarks compare against it)."""
        return self._compiled

    def close(self) -> None:
        self._compiled = None
