"""Is this ONNX file a model edgemed can bundle? Its opset, inputs, outputs and dynamic axes.

Checked before anything is built, so that a wrong file fails with one clear line instead of
deep inside quantisation: not a file, not an ONNX model, a graph the ONNX checker refuses, an
opset outside what the bundle's runtimes run, a tensor type manifests cannot declare, or a
graph ONNX Runtime cannot open.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BuildError

__all__ = ["MAX_OPSET", "MIN_OPSET", "GraphInfo", "TensorInfo", "check_graph", "opset_of"]

# QDQ needs QuantizeLinear (opset 10; ONNX Runtime's quantiser raises a graph to 13 itself for
# per-channel weights); 21 is the newest opset ONNX Runtime (>= 1.17) and OpenVINO
# (>= 2024.0) both read.
MIN_OPSET, MAX_OPSET = 10, 21
_DTYPES = {1: "float32", 10: "float16", 7: "int64", 6: "int32", 2: "uint8", 3: "int8"}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int | str, ...]  # a name where the axis is dynamic

    def manifest(self) -> dict[str, object]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class GraphInfo:
    opset: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    @property
    def dynamic_axes(self) -> list[str]:
        return [
            f"{t.name}[{i}]={d}"
            for t in (*self.inputs, *self.outputs)
            for i, d in enumerate(t.shape)
            if isinstance(d, str)
        ]


def _tensor(value: object, where: str) -> TensorInfo:
    kind = value.type.tensor_type  # type: ignore[attr-defined]
    dtype = _DTYPES.get(kind.elem_type)
    if dtype is None:
        raise BuildError(
            f"{where} {value.name!r}: element type {kind.elem_type} is not one of "  # type: ignore[attr-defined]
            f"{sorted(_DTYPES.values())}"
        )
    shape: list[int | str] = []
    for i, dim in enumerate(kind.shape.dim):
        if dim.HasField("dim_value") and dim.dim_value > 0:
            shape.append(int(dim.dim_value))
        else:
            shape.append(dim.dim_param or ("batch" if i == 0 else f"d{i}"))
    return TensorInfo(value.name, dtype, tuple(shape))  # type: ignore[attr-defined]


def opset_of(model: Any) -> int:
    """The default-domain opset an ``onnx.ModelProto`` imports (0 when it names none)."""
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def check_graph(path: Path) -> GraphInfo:
    """The graph's interface, or BuildError saying why this file cannot be bundled."""
    import onnx  # the `build` extra: only building needs it

    if not path.is_file():
        raise BuildError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf DecodeError, ValidationError...: all mean "not usable"
        raise BuildError(f"{path}: not a valid ONNX model ({type(exc).__name__}: {exc})") from exc
    opset = opset_of(model)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise BuildError(
            f"{path}: opset {opset} is outside {MIN_OPSET}-{MAX_OPSET}; convert it first, e.g. "
            f"onnx.version_converter.convert_version(model, {MAX_OPSET if opset > MAX_OPSET else MIN_OPSET})"
        )
    initializers = {i.name for i in model.graph.initializer}
    inputs = tuple(_tensor(v, "input") for v in model.graph.input if v.name not in initializers)
    outputs = tuple(_tensor(v, "output") for v in model.graph.output)
    if not inputs or not outputs:
        raise BuildError(f"{path}: the graph needs at least one input and one output")
    _opens(path)
    return GraphInfo(opset, inputs, outputs)


def _opens(path: Path) -> None:
    import onnxruntime as ort

    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own types (Fail, InvalidGraph, NotImplemented)
        raise BuildError(f"{path}: ONNX Runtime cannot open it: {exc}") from exc
