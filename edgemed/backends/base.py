"""The backend protocol: a model runtime reduced to run(inputs) -> outputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["Backend", "Tensors"]

Tensors = Mapping[str, npt.NDArray[np.generic]]


class Backend(Protocol):
    name: str  # "onnxruntime", "openvino"
    device: str  # "cpu", "cuda", "tensorrt", "npu", "gpu"

    def run(self, inputs: Tensors) -> dict[str, npt.NDArray[np.generic]]: ...

    def close(self) -> None: ...
