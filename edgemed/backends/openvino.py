"""OpenVINO backend: Intel NPU, integrated GPU or CPU, with a compiled-model cache."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import BackendError, BackendUnavailableError
from .base import Tensors

__all__ = ["DEVICES", "OpenVinoBackend", "available_devices"]

DEVICES = ("npu", "gpu", "cpu")
INSTALL_HINT = {
    "npu": "install the Intel NPU driver (intel-npu-driver, level-zero) so /dev/accel/accel0 "
    "exists and OpenVINO lists NPU",
    "gpu": "install the Intel compute runtime (intel-opencl-icd / level-zero GPU) so OpenVINO "
    "lists GPU",
    "cpu": "pip install openvino",
}


def available_devices(ov_devices: tuple[str, ...] | None = None) -> list[str]:
    """edgemed device names OpenVINO can use (``ov_devices`` for probe fixtures)."""
    if ov_devices is None:
        import openvino as ov

        ov_devices = tuple(ov.Core().available_devices)
    # OpenVINO names devices "CPU", "GPU", "GPU.0", "GPU.1", "NPU".
    present = {d.split(".")[0].lower() for d in ov_devices}
    return [d for d in DEVICES if d in present]


class OpenVinoBackend:
    """One compiled model; a pool of infer requests so threads never share one."""

    name = "openvino"

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
            import openvino as ov
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
