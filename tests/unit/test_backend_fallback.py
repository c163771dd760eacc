"""A provider that is compiled in but cannot load (onnxruntime-gpu from PyPI lists TensorRT
without the TensorRT libraries): automatic choice moves on to the next candidate and says why;
a device asked for by name is refused; no result ever claims a device it did not run on."""

from __future__ import annotations

import dataclasses

import onnxruntime as ort
import pytest

import edgemed
from edgemed.backends import probe
from edgemed.backends.onnxruntime import PROVIDERS, provider_fallback, usable_providers
from edgemed.hardware import HardwareInfo
from edgemed.tasks import task_spec

TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"


def test_provider_fallback_names_what_did_not_start() -> None:
    assert provider_fallback(PROVIDERS["tensorrt"], [TRT, CUDA, CPU]) is None
    assert provider_fallback(PROVIDERS["cpu"], [CPU]) is None
    problem = provider_fallback(PROVIDERS["tensorrt"], [CUDA, CPU])
    assert problem is not None and "TensorrtExecutionProvider did not start" in problem
    assert "['CUDAExecutionProvider', 'CPUExecutionProvider']" in problem
    assert provider_fallback(PROVIDERS["cuda"], [CPU]) is not None
    assert provider_fallback(PROVIDERS["cuda"], []) is not None


def gpu_box_without_its_libraries() -> HardwareInfo:
    """This machine, as a probe would see it with onnxruntime-gpu installed but none of the
    GPU providers able to start (the real onnxruntime here has neither)."""
    if CUDA in ort.get_available_providers():
        pytest.skip("this machine's onnxruntime has a CUDA provider that may well start")
    return dataclasses.replace(
        probe(runtimes=("onnxruntime", "openvino")), onnxruntime_providers=(TRT, CUDA, CPU)
    )


def test_auto_moves_on_to_the_first_backend_that_starts() -> None:
    hw = gpu_box_without_its_libraries()
    with edgemed.load("wdbc-malignancy-mlp", hardware=hw) as pipeline:
        assert (pipeline.choice.backend, pipeline.choice.device) == ("onnxruntime", "cpu")
        assert "did not start" in pipeline.choice.reason
        assert "onnxruntime/tensorrt" in pipeline.choice.reason
        assert "onnxruntime/cuda" in pipeline.choice.reason
        features = task_spec(pipeline.manifest).golden_inputs(pipeline.manifest)
        provenance = pipeline(features[0]).provenance
        assert (provenance.backend, provenance.device) == ("onnxruntime", "cpu")


def test_a_device_asked_for_by_name_must_start() -> None:
    hw = gpu_box_without_its_libraries()
    with pytest.raises(edgemed.BackendUnavailableError, match="onnxruntime-gpu"):
        edgemed.load("wdbc-malignancy-mlp", device="cuda", hardware=hw)


def test_the_probe_drops_tensorrt_when_its_libraries_do_not_load() -> None:
    # What onnxruntime-gpu 1.31.1 from PyPI listed on an H200 without TensorRT installed.
    listed = [TRT, CUDA, CPU]
    assert usable_providers(listed, tensorrt_loads=False) == (CUDA, CPU)
    assert usable_providers(listed, tensorrt_loads=True) == (TRT, CUDA, CPU)
    assert usable_providers([CPU], tensorrt_loads=False) == (CPU,)
