"""A bundle's further models (a monitor reader's recogniser) open through the backend layer
with the main model's choice; where that runtime or device cannot serve them they run on
onnxruntime/cpu and say why; each opened model names its role, sha256, runtime and device."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgemed
from edgemed.backends import Choice, ModelUse, create_backend, open_model, probe
from edgemed.backends.onnxruntime import tensorrt_options
from edgemed.manifest import Artifact, Manifest, load_manifest
from edgemed.registry import find_model_dir

CPU = Choice(backend="onnxruntime", device="cpu", reason="test")


@pytest.fixture(scope="module")
def monitor() -> Manifest:
    return load_manifest(find_model_dir("monitor-reader"))


def test_a_further_model_opens_with_the_choice_and_names_itself(monitor: Manifest) -> None:
    opened = open_model(monitor, CPU, hw=probe(runtimes=()), threads=1, role="recognizer")
    assert opened.fallback is None
    assert opened.use == ModelUse(
        role="recognizer",
        sha256=monitor.artifacts["recognizer"].sha256,
        backend="onnxruntime",
        device="cpu",
    )
    assert opened.use.body() == {
        "role": "recognizer",
        "sha256": monitor.artifacts["recognizer"].sha256,
        "backend": "onnxruntime",
        "device": "cpu",
    }
    name = opened.backend.input_names[0]
    outputs = opened.backend.run({name: np.zeros((1, 3, 48, 64), dtype=np.float32)})
    assert len(outputs) == 1
    opened.backend.close()
    main = open_model(monitor, CPU, hw=probe(runtimes=()), threads=1)
    assert main.use.role == "model" and main.use.sha256 == monitor.model_sha256
    main.backend.close()


def test_openvino_without_an_ir_for_the_role_falls_back_to_onnxruntime_cpu(
    monitor: Manifest,
) -> None:
    for device in ("cpu", "gpu", "npu"):
        choice = Choice(backend="openvino", device=device, reason="test")
        opened = open_model(monitor, choice, hw=probe(runtimes=()), role="recognizer")
        assert (opened.use.backend, opened.use.device) == ("onnxruntime", "cpu")
        assert opened.fallback is not None
        assert f"not openvino/{device}" in opened.fallback
        assert "ships no OpenVINO IR for its recognizer" in opened.fallback
        opened.backend.close()


def test_the_npu_serves_no_further_model_its_manifest_gives_no_shapes_for(
    monitor: Manifest,
) -> None:
    ir = Artifact(path="openvino/rec.xml", sha256="0" * 64, format="openvino")
    with_ir = dataclasses.replace(
        monitor, artifacts={**monitor.artifacts, "openvino_recognizer": ir}
    )
    npu = Choice(backend="openvino", device="npu", reason="test")
    opened = open_model(with_ir, npu, hw=probe(runtimes=()), role="recognizer")
    assert opened.use.backend == "onnxruntime" and opened.fallback is not None
    assert "static shapes" in opened.fallback
    opened.backend.close()


def test_the_main_model_never_falls_back_and_roles_must_exist(monitor: Manifest) -> None:
    ov = Choice(backend="openvino", device="cpu", reason="test")
    with pytest.raises(edgemed.BackendUnavailableError, match="no OpenVINO IR for its model"):
        open_model(monitor, ov, hw=probe(runtimes=()))
    with pytest.raises(edgemed.ManifestError, match="no artifact 'detector2'"):
        open_model(monitor, CPU, hw=probe(runtimes=()), role="detector2")
    backend = create_backend(monitor, CPU, hw=probe(runtimes=()), threads=1, role="recognizer")
    assert (backend.name, backend.device) == ("onnxruntime", "cpu")
    backend.close()


def test_tensorrt_options_follow_the_artifact_they_open(monitor: Manifest, tmp_path: Path) -> None:
    hw = probe(
        Path(__file__).parent.parent / "fixtures" / "hardware" / "jetson-orin-nano", runtimes=()
    )
    main = tensorrt_options(monitor, hw=hw, cache_dir=tmp_path)
    rec = tensorrt_options(monitor, role="recognizer", hw=hw, cache_dir=tmp_path)
    assert Path(main["trt_engine_cache_path"]).name.startswith(monitor.model_sha256[:16])
    assert Path(rec["trt_engine_cache_path"]).name.startswith(
        monitor.artifacts["recognizer"].sha256[:16]
    )
    assert Path(rec["trt_engine_cache_path"]).is_dir()
    # the detector: the manifest's TensorRT precision; the INT8 (QDQ) recogniser: its own
    assert main["trt_fp16_enable"] == (monitor.tensorrt_precision in ("fp16", "int8"))
    assert rec["trt_int8_enable"] and rec["trt_fp16_enable"]


def test_importing_the_hardware_probe_loads_no_runtime() -> None:
    code = (
        "import sys, edgemed.hardware as h; h.read_machine();"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('onnxruntime', 'openvino')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_loaded_pipeline_names_its_further_models_and_says_where_they_fell_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Provenance lists the recogniser (and the detector's second session); a fallback of it
    shows in the pipeline's choice."""
    import edgemed.backends.start as start_module  # where a pipeline opens its further models

    real = start_module.open_model

    def falling_back(*args: object, **kwargs: object) -> object:
        opened = real(*args, **kwargs)  # type: ignore[arg-type]
        return dataclasses.replace(opened, fallback="recognizer runs on onnxruntime/cpu: test")

    monkeypatch.setattr(start_module, "open_model", falling_back)
    with edgemed.load("monitor-reader", threads=1, golden=False) as pipe:
        assert "recognizer runs on onnxruntime/cpu: test" in pipe.choice.reason
        frame = np.full((240, 320, 3), 255, np.uint8)
        components = pipe(frame).provenance.components
    artifacts = load_manifest(find_model_dir("monitor-reader")).artifacts
    # The detector is opened again for the closer look at small labels (closer_look.py).
    assert [(c.role, c.sha256, c.backend) for c in components] == [
        ("recognizer", artifacts["recognizer"].sha256, "onnxruntime"),
        ("model", artifacts["model"].sha256, "onnxruntime"),
    ]
