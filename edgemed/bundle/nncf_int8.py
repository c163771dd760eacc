"""OpenVINO's own INT8 IR: NNCF post-training quantisation of the FP32 graph, calibrated on the
very tensors ONNX Runtime's static INT8 was calibrated on.

NNCF places its quantisers for OpenVINO's CPU kernels (performance preset: symmetric
activations, per-channel weights, fast bias correction), where the IR converted from ONNX
Runtime's QDQ graph keeps ONNX Runtime's placement. The builder gates the result as it gates
INT8 and falls back to the converted QDQ graph when it fails (edgemed/bundle/build.py).

Each quantisation runs in a fresh interpreter pinned to one CPU: OpenVINO names the nodes it
creates from a process-wide counter (openvino_ir.py), and NNCF collects its statistics with
OpenVINO inference on every core unless told otherwise; alone and on one core, the IR is a
function of the FP32 graph and the calibration tensors (byte-identical builds).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..backends.openvino import import_openvino
from ..errors import BuildError
from .files import npz_bytes
from .openvino_ir import IR_FILES

__all__ = ["available", "quantize_ir"]

Feed = dict[str, npt.NDArray[Any]]


def available() -> bool:
    """Whether NNCF is installed (the ``build`` extra), without importing it (~1 s)."""
    try:
        return find_spec("nncf") is not None
    except (ImportError, ValueError):  # a broken package, or one blocked in sys.modules
        return False


def _save_feeds(feeds: Sequence[Feed], path: Path) -> None:
    # Input names may hold any character; the archive's keys are positions, the names a list.
    names = sorted(feeds[0])
    arrays = {f"{i}_{j}": f[name] for i, f in enumerate(feeds) for j, name in enumerate(names)}
    path.write_bytes(
        npz_bytes(arrays | {"names": np.array(names), "count": np.array([len(feeds)])})
    )


def _load_feeds(path: Path) -> list[Feed]:
    with np.load(path) as npz:
        names = [str(n) for n in npz["names"]]
        return [
            {name: npz[f"{i}_{j}"] for j, name in enumerate(names)}
            for i in range(int(npz["count"][0]))
        ]


def quantize_ir(fp32_onnx: Path, feeds: Sequence[Feed], stage: Path) -> None:
    """Write NNCF's INT8 IR of ``fp32_onnx`` to the stage's ``openvino/`` folder."""
    if not feeds:
        raise BuildError("NNCF needs calibration tensors (static INT8)")
    xml = stage / IR_FILES["openvino_model"]
    xml.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tensors = Path(tmp) / "feeds.npz"
        _save_feeds(feeds, tensors)
        proc = subprocess.run(
            [sys.executable, "-m", __name__, str(fp32_onnx), str(tensors), str(xml)],
            capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise BuildError(f"NNCF could not quantise {fp32_onnx.name}: {tail}")


def _main(fp32_onnx: str, tensors: str, xml: str) -> None:
    """The child's work: FP32 ONNX -> OpenVINO model -> NNCF INT8 -> IR (weights as they are)."""
    # One core before OpenVINO starts its thread pool: statistics summed in one order.
    if hasattr(os, "sched_setaffinity"):  # Linux; elsewhere OpenVINO's default threads
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    ov = import_openvino()  # first: with OpenVINO's telemetry unimportable, NNCF sends none
    import nncf  # type: ignore[import-untyped]  # the `build` extra (untyped)
    from nncf.quantization.advanced_parameters import (  # type: ignore[import-untyped]
        AdvancedQuantizationParameters,
        OverflowFix,
    )

    feeds = _load_feeds(Path(tensors))
    quantized = nncf.quantize(
        ov.convert_model(fp32_onnx),
        nncf.Dataset(feeds),
        preset=nncf.QuantizationPreset.PERFORMANCE,
        subset_size=len(feeds),  # every calibration tensor, as ONNX Runtime used them
        # Weights in 7 bits in every layer (NNCF's default: the first only), as ONNX Runtime's
        # reduce_range (quantize.py): CPUs without VNNI saturate 8-bit products, and a bundle
        # is built once for devices of either kind.
        advanced_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE),
    )
    ov.save_model(quantized, xml, compress_to_fp16=False)


if __name__ == "__main__":
    _main(*sys.argv[1:4])
