"""Stage 3: inference backends behind one tiny protocol, chosen per model and machine."""

from __future__ import annotations

from pathlib import Path

from ..errors import BackendUnavailableError
from ..hardware import HardwareInfo
from ..manifest import Manifest
from .base import Backend, Tensors
from .select import Choice, candidates, choose

__all__ = ["Backend", "Choice", "Tensors", "candidates", "choose", "create_backend"]


def create_backend(
    manifest: Manifest,
    choice: Choice,
    *,
    hw: HardwareInfo,
    threads: int | None = None,
    cache_dir: Path,
) -> Backend:
    """Open the runtime ``choice`` names on the model's artifact for that runtime."""
    if choice.backend == "onnxruntime":
        from .onnxruntime import OnnxRuntimeBackend, tensorrt_cache_dir

        trt: dict[str, object] | None = None
        if choice.device == "tensorrt":
            engines = tensorrt_cache_dir(cache_dir, manifest.model_sha256, hw.gpu_name or "gpu")
            engines.mkdir(parents=True, exist_ok=True)
            trt = {
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(engines),
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(engines),
                "trt_fp16_enable": manifest.tensorrt_precision in ("fp16", "int8"),
                # INT8 bundles are QDQ graphs: TensorRT takes their scales, no calibration table.
                "trt_int8_enable": manifest.tensorrt_precision == "int8",
            }
        return OnnxRuntimeBackend(
            manifest.path("model"), device=choice.device, threads=threads, tensorrt_options=trt
        )
    from .openvino import OpenVinoBackend

    static = None
    if choice.device == "npu":
        static = {}
        for spec in manifest.inputs:
            shape = spec.static_shape()
            if shape is None:
                raise BackendUnavailableError(
                    f"model {manifest.id}: the NPU needs static shapes but input {spec.name} "
                    f"is declared {list(spec.shape)}"
                )
            static[spec.name] = shape
    return OpenVinoBackend(
        manifest.path("openvino_model"),
        device=choice.device,
        threads=threads,
        static_shapes=static,
        cache_dir=cache_dir / "openvino",
    )
