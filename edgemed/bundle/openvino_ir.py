"""OpenVINO IR beside the ONNX model, so Intel NPU/iGPU devices run the bundle natively.

The IR is converted from the very ONNX graph that ships (FP32, or INT8 QDQ: OpenVINO reads the
graph's scales and runs INT8 kernels), weights kept as they are (no FP16 compression: the
golden vectors were made with the shipped precision). It ships only if, on the evaluation set,
it agrees with the ONNX Runtime model as much as the gate asks of INT8.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..backends.openvino import import_openvino
from ..errors import BuildError, GoldenMismatchError
from ..pipeline import load

__all__ = ["IR_FILES", "available", "convert", "golden_problems"]

IR_FILES = {"openvino_model": "openvino/model.xml", "openvino_weights": "openvino/model.bin"}


def available() -> bool:
    try:
        import_openvino()
    except ImportError:  # OpenVINO is not a dependency on Linux aarch64
        return False
    return True


# OpenVINO names the nodes it creates from a process-wide counter, so the same graph converted
# after another in one process gets other names in its XML: each conversion runs in a fresh
# interpreter, which makes the IR a function of the ONNX file alone (byte-identical builds).
# Without openvino-telemetry importable, OpenVINO's converter and NNCF send no usage events
# (both send them by default when it is installed, and write a client id under $HOME).
_CONVERT = (
    "import sys; sys.modules['openvino_telemetry'] = None; import openvino as ov; "
    "ov.save_model(ov.convert_model(sys.argv[1]), sys.argv[2], compress_to_fp16=False)"
)


def convert(onnx: Path, stage: Path) -> None:
    xml = stage / IR_FILES["openvino_model"]
    xml.parent.mkdir(exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", _CONVERT, str(onnx), str(xml)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise BuildError(f"OpenVINO could not convert {onnx.name}: {tail}")


def golden_problems(bundle: Path) -> str | None:
    """Why the bundle's golden vectors do not hold on its IR on this machine (None: they do),
    checked as a device loading it on OpenVINO checks them."""
    try:
        load(bundle, backend="openvino", device="cpu", threads=1).close()
    except GoldenMismatchError as exc:
        return str(exc)
    return None
