"""Hardware probe fixtures -> the documented backend choices (docs/runtime.md), and errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import edgemed
from edgemed.backends import candidates, choose, probe
from edgemed.hardware import HardwareInfo
from edgemed.manifest import Manifest, load_manifest
from edgemed.registry import find_model_dir

FIXTURES = Path(__file__).parent.parent / "fixtures" / "hardware"


def machine(name: str) -> HardwareInfo:
    """The fixture's files through the real probe, plus what its runtimes report."""
    runtimes = json.loads((FIXTURES / name / "runtimes.json").read_text())
    return dataclasses.replace(
        probe(FIXTURES / name, runtimes=()),
        onnxruntime_providers=tuple(runtimes["onnxruntime_providers"]),
        openvino_devices=tuple(runtimes["openvino_devices"]),
    )


@pytest.fixture(scope="module")
def text_manifest() -> Manifest:
    return load_manifest(find_model_dir("clinical-text-minilm"), verify=False)


def ships(manifest: Manifest, *backends: str) -> Manifest:
    return dataclasses.replace(manifest, backends=backends)  # type: ignore[arg-type]


def test_probe_reads_jetson_orin_nano() -> None:
    hw = probe(FIXTURES / "jetson-orin-nano", runtimes=())
    assert hw.machine == "aarch64"
    assert hw.jetson_model == "NVIDIA Jetson Orin Nano Developer Kit"
    assert hw.gpu_name == hw.jetson_model
    assert hw.l4t_release is not None and hw.l4t_release.startswith("R36 (release), REVISION: 4.0")
    assert "asimddp" in hw.cpu_flags and hw.memory_gb == 7.4
    assert not hw.intel_npu and not hw.intel_igpu


def test_probe_reads_core_ultra_npu_and_igpu() -> None:
    hw = probe(FIXTURES / "intel-core-ultra", runtimes=())
    assert hw.machine == "x86_64" and hw.cpu_model == "Intel(R) Core(TM) Ultra 7 155H"
    assert hw.intel_npu and hw.intel_igpu and hw.jetson_model is None
    assert "avx_vnni" in hw.cpu_flags and "avx512f" not in hw.cpu_flags


def test_probe_reads_discrete_nvidia_gpu_and_plain_cpus() -> None:
    assert probe(FIXTURES / "x86-nvidia-gpu", runtimes=()).gpu_name == "NVIDIA RTX A4000"
    pi = probe(FIXTURES / "aarch64-cpu", runtimes=())
    assert pi.machine == "aarch64" and pi.jetson_model is None and pi.gpu_name is None
    x86 = probe(FIXTURES / "x86-cpu", runtimes=())
    assert x86.cpu_count >= 1 and "avx2" in x86.cpu_flags and not x86.intel_npu


# fixture -> backends the model ships -> (backend, device) chosen. Mirrors docs/runtime.md.
EXPECTED = [
    ("jetson-orin-nano", ("onnxruntime",), ("onnxruntime", "tensorrt")),
    ("jetson-agx-orin", ("onnxruntime", "openvino"), ("onnxruntime", "tensorrt")),
    ("jetson-agx-orin-pypi-ort", ("onnxruntime",), ("onnxruntime", "cpu")),
    ("intel-core-ultra", ("onnxruntime", "openvino"), ("openvino", "npu")),
    ("intel-core-ultra", ("onnxruntime",), ("onnxruntime", "cpu")),
    ("intel-core-ultra-no-npu-driver", ("onnxruntime", "openvino"), ("openvino", "gpu")),
    ("x86-nvidia-gpu", ("onnxruntime", "openvino"), ("onnxruntime", "cuda")),
    ("x86-cpu", ("onnxruntime", "openvino"), ("onnxruntime", "cpu")),
    ("x86-cpu", ("openvino", "onnxruntime"), ("openvino", "cpu")),
    ("aarch64-cpu", ("onnxruntime",), ("onnxruntime", "cpu")),
]


@pytest.mark.parametrize(("fixture", "backends", "expected"), EXPECTED)
def test_documented_choice(
    text_manifest: Manifest, fixture: str, backends: tuple[str, ...], expected: tuple[str, str]
) -> None:
    choice = choose(ships(text_manifest, *backends), machine(fixture))
    assert (choice.backend, choice.device) == expected


def test_documented_table_matches_the_tests() -> None:
    docs = Path(__file__).parents[2] / "docs" / "runtime.md"
    if not docs.is_file():
        pytest.skip("docs/ is not shipped in the wheel; checked in the source tree")
    table = docs.read_text()
    for fixture, backends, (backend, device) in EXPECTED:
        row = f"| `{fixture}` | {', '.join(backends)} | {backend}/{device} |"
        assert row in table, f"docs/runtime.md lacks the row {row}"


def test_jetson_with_pypi_onnxruntime_says_what_to_install(text_manifest: Manifest) -> None:
    usable, skipped = candidates(text_manifest, machine("jetson-agx-orin-pypi-ort"))
    assert [(c.backend, c.device) for c in usable] == [("onnxruntime", "cpu")]
    assert any("tensorrt" in s and "JetPack" in s for s in skipped)
    with pytest.raises(edgemed.BackendUnavailableError, match="not on PyPI"):
        choose(text_manifest, machine("jetson-agx-orin-pypi-ort"), device="cuda")


def test_npu_without_driver_is_explained(text_manifest: Manifest) -> None:
    hw = machine("intel-core-ultra-no-npu-driver")
    _, skipped = candidates(ships(text_manifest, "onnxruntime", "openvino"), hw)
    assert any("npu" in s and "intel-npu-driver" in s for s in skipped)
    with pytest.raises(edgemed.BackendUnavailableError, match="intel-npu-driver"):
        choose(ships(text_manifest, "onnxruntime", "openvino"), hw, device="npu")


def test_fallback_chain_order_on_jetson(text_manifest: Manifest) -> None:
    usable, _ = candidates(text_manifest, machine("jetson-orin-nano"))
    assert [(c.backend, c.device) for c in usable] == [
        ("onnxruntime", "tensorrt"),
        ("onnxruntime", "cuda"),
        ("onnxruntime", "cpu"),
    ]


def test_explicit_overrides_and_their_errors(text_manifest: Manifest) -> None:
    hw = machine("jetson-orin-nano")
    assert choose(text_manifest, hw, device="cpu").device == "cpu"
    assert choose(text_manifest, hw, device="cuda").device == "cuda"
    with pytest.raises(edgemed.BackendUnavailableError, match="ships no artifact for backend"):
        choose(ships(text_manifest, "onnxruntime"), hw, backend="openvino")
    with pytest.raises(edgemed.BackendUnavailableError, match="runs on device 'npu'"):
        choose(ships(text_manifest, "onnxruntime"), hw, device="npu")
    with pytest.raises(edgemed.BackendUnavailableError, match="not available"):
        choose(ships(text_manifest, "onnxruntime", "openvino"), hw, device="npu")


def test_no_runtime_installed_is_an_actionable_error(text_manifest: Manifest) -> None:
    bare = dataclasses.replace(machine("x86-cpu"), onnxruntime_providers=(), openvino_devices=())
    with pytest.raises(
        edgemed.BackendUnavailableError, match=r"pip install .edgemed\[onnxruntime\]."
    ):
        choose(text_manifest, bare)


def test_load_on_this_machine_records_the_choice() -> None:
    with edgemed.load("clinical-text-minilm", device="cpu") as pipeline:
        assert pipeline.choice.device == "cpu" and pipeline.backend.device == "cpu"
        result = pipeline("fever and productive cough")
        assert result.provenance.device == "cpu"
    with pytest.raises(edgemed.BackendUnavailableError, match="onnxruntime-gpu"):
        edgemed.load("clinical-text-minilm", device="cuda")
