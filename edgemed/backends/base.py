"""The backend protocol: a model runtime reduced to run(inputs) -> outputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ..results.base import ModelUse

__all__ = ["Backend", "ModelUse", "OpenedModel", "Tensors"]

Tensors = Mapping[str, npt.NDArray[np.generic]]


class Backend(Protocol):
    name: str  # "onnxruntime", "openvino"
    device: str  # "cpu", "cuda", "tensorrt", "npu", "gpu"
    input_names: tuple[str, ...]  # the graph's inputs, in its order

    def run(self, inputs: Tensors) -> dict[str, npt.NDArray[np.generic]]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class OpenedModel:
    """A model artifact opened through the backend layer, and what its provenance records."""

    backend: Backend
    use: ModelUse  # role, artifact sha256, the runtime and device it really runs on
    # Why it runs elsewhere than the choice said (an auxiliary model the chosen runtime or
    # device cannot serve falls back to onnxruntime/cpu); None when it runs as chosen.
    fallback: str | None = None
