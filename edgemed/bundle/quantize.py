"""INT8 from FP32 with ONNX Runtime's quantiser: static QDQ (activations calibrated on the
user's data, per-channel weights) for convolutional graphs, dynamic for transformer-like ones.

Static QDQ is what TensorRT and OpenVINO take as is (their INT8 engines read the graph's
scales); per-channel weights because per-tensor lost accuracy on both networks we bundle.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy.typing as npt

from ..errors import BuildError
from .graph import opset_of

__all__ = ["quantize"]

Feed = dict[str, npt.NDArray[Any]]


PER_CHANNEL_OPSET = 13  # DequantizeLinear's axis attribute (per-channel weights)


def _opset_13(src: Path, work: Path) -> Path:
    """Per-channel weights need opset 13: an older graph is converted (ONNX's own converter;
    the FP32 model that may ship is untouched)."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(src))
    opset = opset_of(model)
    if opset >= PER_CHANNEL_OPSET:
        return src
    try:
        converted = version_converter.convert_version(model, PER_CHANNEL_OPSET)
    except Exception as exc:  # the converter raises bare RuntimeErrors per unsupported op
        raise BuildError(f"{src.name}: cannot convert opset {opset} to 13 for INT8: {exc}") from exc
    out = work / "opset13.onnx"
    onnx.save(converted, str(out))
    return out


def _prepared(src: Path, work: Path) -> Path:
    """ONNX Runtime's recommended pre-pass (shape inference, graph optimisation); a graph it
    cannot handle is quantised as it is (the pass only improves scale placement)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src = _opset_13(src, work)
    out = work / "prepared.onnx"
    try:
        quant_pre_process(str(src), str(out), skip_symbolic_shape=True)
    except Exception as exc:  # the pre-pass is optional: any failure falls back to src
        logging.getLogger(__name__).info("quant_pre_process skipped: %s", exc)
        return src
    return out


def quantize(src: Path, dst: Path, method: str, calibration: Sequence[Feed]) -> None:
    """Write the INT8 graph of ``src`` to ``dst`` (``method``: "static" or "dynamic")."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._feeds: Iterator[Feed] = iter(calibration)

        def get_next(self) -> Feed | None:
            return next(self._feeds, None)

    with tempfile.TemporaryDirectory() as tmp:
        prepared = _prepared(src, Path(tmp))
        try:
            if method == "dynamic":
                # reduce_range: weights in 7 bits. CPUs without VNNI (AVX2, AVX-512 before
                # VNNI) saturate 8-bit products in ONNX Runtime's kernels; a bundle built on a
                # VNNI machine runs on such devices too. Measured here (AMD EPYC 25/1, AVX2):
                # without it, small classifiers' INT8 failed the gate and a tiny encoder's
                # dynamic INT8 missed its golden tolerance.
                quantize_dynamic(
                    str(prepared),
                    str(dst),
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    reduce_range=True,
                )
            else:
                quantize_static(
                    str(prepared),
                    str(dst),
                    Reader(),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    reduce_range=True,
                )
        except Exception as exc:  # ORT's quantiser raises bare Exceptions on graphs it cannot do
            raise BuildError(f"{src.name}: {method} INT8 quantisation failed: {exc}") from exc
