"""The public API is pinned: changing it must be a deliberate edit of this test."""

from __future__ import annotations

import ast
from pathlib import Path

import edgemed
from edgemed import _kernels

PUBLIC = {
    "BackendError",
    "BackendUnavailableError",
    "BridgeError",
    "EdgemedError",
    "EcgRecording",
    "EmbeddingResult",
    "FrameError",
    "GoldenMismatchError",
    "ImageClassification",
    "ImageSegmentation",
    "InputError",
    "IntegrityError",
    "LabelScore",
    "Manifest",
    "ManifestError",
    "MissingDependencyError",
    "ModelError",
    "MonitorFrame",
    "MonitorReading",
    "ObjectDetection",
    "OutboxFullError",
    "PayloadError",
    "Pipeline",
    "Provenance",
    "Result",
    "RollbackError",
    "SignalClassification",
    "SignatureError",
    "SignalWindow",
    "SeizureProbability",
    "SleepStages",
    "TabularClassification",
    "TabularClassificationTable",
    "TabularRegression",
    "TabularRegressionTable",
    "SyncError",
    "TextQuery",
    "Timings",
    "TrustPolicy",
    "TrustPolicyError",
    "__version__",
    "list_models",
    "load",
}


def test_all_is_pinned_and_resolvable() -> None:
    assert set(edgemed.__all__) == PUBLIC
    for name in edgemed.__all__:
        assert hasattr(edgemed, name), name


def test_error_tree() -> None:
    assert issubclass(edgemed.InputError, ValueError)
    assert issubclass(edgemed.PayloadError, edgemed.InputError)
    for cls in (edgemed.ManifestError, edgemed.IntegrityError):
        assert issubclass(cls, edgemed.ModelError)
    for cls in (edgemed.SignatureError, edgemed.RollbackError, edgemed.TrustPolicyError):
        assert issubclass(cls, edgemed.IntegrityError)
    assert issubclass(edgemed.BackendUnavailableError, edgemed.BackendError)
    assert issubclass(edgemed.OutboxFullError, edgemed.SyncError)
    assert issubclass(edgemed.FrameError, edgemed.BridgeError)
    for name in PUBLIC:
        obj = getattr(edgemed, name)
        if isinstance(obj, type) and name.endswith("Error"):
            assert issubclass(obj, edgemed.EdgemedError)


def test_kernel_stub_matches_native_module() -> None:
    stub = Path(edgemed.__file__).with_name("_kernels.pyi")
    assert stub.is_file(), "the _kernels stub must be installed with the package"
    declared = {n.name for n in ast.parse(stub.read_text()).body if isinstance(n, ast.FunctionDef)}
    native = {n for n in dir(_kernels) if not n.startswith("_")}
    assert declared == native


def test_py_typed_marker_installed() -> None:
    assert Path(edgemed.__file__).with_name("py.typed").is_file()


def test_kernels_reexports_every_concept_module() -> None:
    from edgemed import kernels
    from edgemed.kernels import image, ocr, post, rows, search, signal, values, vitals

    modules = (image, ocr, post, rows, search, signal, values, vitals)
    assert set(kernels.__all__) == {name for m in modules for name in m.__all__}
