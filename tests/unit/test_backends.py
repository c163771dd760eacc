"""Both CPU backends on a real bundle: same outputs, thread safety under load, engine caches."""

from __future__ import annotations

import hashlib
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from drifted_bundles import drifted_on_openvino

import edgemed
from edgemed.backends.onnxruntime import tensorrt_cache_dir
from edgemed.backends.openvino import OpenVinoBackend
from edgemed.manifest import file_sha256
from edgemed.registry import find_model_dir
from edgemed.results import EmbeddingResult

ov = pytest.importorskip("openvino")

NOTES = [
    "chest pain radiating to the left arm",
    "productive cough with fever and crackles at the lung base",
    "fall at home, hip pain, unable to bear weight",
    "new confusion and urinary frequency in an elderly woman",
    "itchy rash on both forearms after gardening",
    "sudden severe headache, worst ever, with neck stiffness",
    "bleeding gums and easy bruising for two weeks",
    "shortness of breath on exertion and ankle swelling",
]


@pytest.fixture(scope="module")
def ov_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The text bundle plus an OpenVINO IR converted from its ONNX (as a recipe would)."""
    folder = tmp_path_factory.mktemp("bundle") / "clinical-text-minilm"
    shutil.copytree(find_model_dir("clinical-text-minilm"), folder)
    (folder / "openvino").mkdir(exist_ok=True)
    model = ov.Core().read_model(str(folder / "model.int8.onnx"))
    ov.save_model(model, str(folder / "openvino" / "model.xml"), compress_to_fp16=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    for role, name in (("openvino_model", "model.xml"), ("openvino_weights", "model.bin")):
        path = folder / "openvino" / name
        manifest["artifacts"][role] = {"path": f"openvino/{name}", "sha256": file_sha256(path)}
    manifest["backends"] = ["openvino", "onnxruntime"]
    # This IR is the ONNX Runtime graph converted, not the shipped static INT8 IR: the shipped
    # IR's own expected outputs do not apply, the ONNX Runtime ones do (within tolerance).
    for role in [r for r in manifest["artifacts"] if r.startswith("golden_outputs_openvino")]:
        manifest["artifacts"].pop(role)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_openvino_matches_onnxruntime_on_the_same_tensors(ov_bundle: Path) -> None:
    with edgemed.load(ov_bundle, backend="onnxruntime") as ort_pipe:
        backend = OpenVinoBackend(ov_bundle / "openvino" / "model.xml", device="cpu", threads=2)
        for note in NOTES:
            tensors = ort_pipe.preprocess(note).tensors
            a = ort_pipe.backend.run(tensors)["embedding"].astype(np.float32)
            b = backend.run(tensors)["embedding"].astype(np.float32)
            assert a.shape == b.shape == (1, 384)
            # Same INT8 graph, two runtimes: their dynamic quantisation rounds differently, and
            # by how much depends on the CPU's int8 kernels (measured on these notes: Intel
            # Xeon with AVX-512 VNNI max |diff| 0.008, cosine > 0.998; AMD EPYC with AVX2
            # only max |diff| 0.028, cosine >= 0.9888).
            assert np.abs(a - b).max() < 0.04
            assert float(a[0] @ b[0]) > 0.985
        backend.close()


def test_manifest_order_picks_openvino_on_cpu_and_golden_holds(ov_bundle: Path) -> None:
    with edgemed.load(ov_bundle) as pipeline:  # golden check ran at load
        assert (pipeline.choice.backend, pipeline.choice.device) == ("openvino", "cpu")
        assert pipeline.check_golden() == []
        result = pipeline(NOTES[0])
        assert result.provenance.backend == "openvino" and result.provenance.device == "cpu"


def test_golden_drift_refuses_to_serve(ov_bundle: Path, tmp_path: Path) -> None:
    drifted = tmp_path / "clinical-text-minilm"
    shutil.copytree(ov_bundle, drifted)
    manifest = json.loads((drifted / "manifest.json").read_text())
    # Every backend's and CPU family's expected outputs: which one a machine checks depends on
    # its CPU (an AVX2 machine has its own, the default is for the others).
    for role, artifact in manifest["artifacts"].items():
        if role.startswith("golden_outputs"):
            path = drifted / artifact["path"]
            expected = np.load(path)
            expected[0] = -expected[0]  # as if the runtime produced garbage for the first input
            np.save(path, expected)
            artifact["sha256"] = file_sha256(path)
    (drifted / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(edgemed.GoldenMismatchError, match="refusing to serve"):
        edgemed.load(drifted)
    assert edgemed.load(drifted, golden=False)(NOTES[0]).kind == "text-embedding"


def test_a_backend_whose_golden_vectors_fail_here_is_passed_over(
    ov_bundle: Path, tmp_path: Path
) -> None:
    drifted = drifted_on_openvino(ov_bundle, tmp_path)
    with edgemed.load(drifted) as pipeline:  # manifest order: openvino first
        assert (pipeline.choice.backend, pipeline.choice.device) == ("onnxruntime", "cpu")
        assert "golden vectors failed here on openvino/cpu" in pipeline.choice.reason
        assert pipeline(NOTES[0]).provenance.backend == "onnxruntime"
    with pytest.raises(edgemed.GoldenMismatchError, match=r"refusing to serve on openvino/cpu"):
        edgemed.load(drifted, backend="openvino")
    with pytest.raises(edgemed.GoldenMismatchError, match=r"refusing to serve on openvino/cpu"):
        edgemed.load(drifted, device="cpu")  # a device named: the first candidate or nothing


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_one_pipeline_from_many_threads_never_mixes_results(ov_bundle: Path, backend: str) -> None:
    with edgemed.load(ov_bundle, backend=backend) as pipeline:
        alone = {note: pipeline(note) for note in NOTES}
        jobs = [NOTES[i % len(NOTES)] for i in range(240)]

        def run(note: str) -> tuple[str, EmbeddingResult]:
            result = pipeline(note)
            assert isinstance(result, EmbeddingResult)
            return note, result

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(run, jobs))
    for note, result in results:
        reference = alone[note]
        assert isinstance(reference, EmbeddingResult)
        assert result.provenance.input_sha256 == hashlib.sha256(note.encode()).hexdigest()
        np.testing.assert_array_equal(result.embedding, reference.embedding)
        assert [n.code for n in result.nearest] == [n.code for n in reference.nearest]


def test_npu_needs_static_shapes(ov_bundle: Path) -> None:
    from edgemed.backends import Choice, create_backend, probe
    from edgemed.manifest import load_manifest

    manifest = load_manifest(ov_bundle)
    npu = Choice(backend="openvino", device="npu", reason="test")
    with pytest.raises(edgemed.BackendUnavailableError, match="static shapes"):
        create_backend(manifest, npu, hw=probe(runtimes=()), cache_dir=ov_bundle)


def test_tensorrt_engine_cache_is_keyed_by_model_gpu_and_version(tmp_path: Path) -> None:
    a = tensorrt_cache_dir(tmp_path, "a" * 64, "NVIDIA Jetson AGX Orin Developer Kit")
    assert a.parent == tmp_path / "tensorrt"
    assert a.name.startswith("aaaaaaaaaaaaaaaa-nvidia-jetson-agx-orin-developer-kit-trt")
    assert tensorrt_cache_dir(tmp_path, "b" * 64, "NVIDIA Jetson AGX Orin Developer Kit") != a
    assert tensorrt_cache_dir(tmp_path, "a" * 64, "NVIDIA Jetson Orin Nano Developer Kit") != a
