"""A text bundle whose OpenVINO golden outputs its IR does not compute (as on aarch64, where the
static-INT8 text IR measured cosine 0.908 to the x86 outputs); ONNX Runtime's still hold. For
the tests of what selection does with a backend that fails its golden vectors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from edgemed.manifest import file_sha256

__all__ = ["drifted_on_openvino"]


def drifted_on_openvino(source: Path, dest: Path) -> Path:
    """A copy of the text bundle ``source`` in ``dest``, listing OpenVINO first."""
    folder = dest / "clinical-text-minilm"
    shutil.copytree(source, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["backends"] = ["openvino", "onnxruntime"]
    for role in [r for r in manifest["artifacts"] if r.startswith("golden_outputs_openvino")]:
        manifest["artifacts"].pop(role)
    expected = np.load(folder / "golden" / "int8_embeddings.npy")
    expected[0] = -expected[0]
    np.save(folder / "golden" / "openvino_wrong.npy", expected)
    manifest["artifacts"]["golden_outputs_openvino"] = {
        "path": "golden/openvino_wrong.npy",
        "sha256": file_sha256(folder / "golden" / "openvino_wrong.npy"),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder
