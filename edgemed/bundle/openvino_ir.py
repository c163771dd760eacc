"""OpenVINO IR beside the ONNX model, so Intel NPU/iGPU devices run the bundle natively.

The IR is converted from the very ONNX graph that ships (FP32, or INT8 QDQ: OpenVINO reads the
graph's scales and runs INT8 kernels), weights kept as they are (no FP16 compression: the
golden vectors were made with the shipped precision). It ships only if, on the evaluation set,
it agrees with the ONNX Runtime model as much as the gate asks of INT8.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["IR_FILES", "available", "convert"]

IR_FILES = {"openvino_model": "openvino/model.xml", "openvino_weights": "openvino/model.bin"}


def available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:  # OpenVINO is not a dependency on Linux aarch64
        return False
    return True


def convert(onnx: Path, stage: Path) -> None:
    import openvino as ov

    xml = stage / IR_FILES["openvino_model"]
    xml.parent.mkdir(exist_ok=True)
    ov.save_model(ov.convert_model(str(onnx)), str(xml), compress_to_fp16=False)
