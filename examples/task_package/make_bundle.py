"""Build shock-index-bundle/: a one-node ONNX graph (hr / sbp), golden vectors, manifest.

Needs the ``onnx`` package (``pip install edgemed[build]``). The bundle in the repository was
made with onnx 1.23.2; ``python examples/task_package/make_bundle.py [OUT]`` rewrites it (or
writes OUT) byte for byte the same way (tests/unit/test_task_extension.py checks that).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import onnx
from onnx import TensorProto, helper

BUNDLE = Path(__file__).parent / "shock-index-bundle"
CASES = [{"hr": 72, "sbp": 120}, {"hr": 118, "sbp": 92}, {"hr": 140, "sbp": 70}]


def graph() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Gather", ["vitals", "i0"], ["hr"], axis=1),
        helper.make_node("Gather", ["vitals", "i1"], ["sbp"], axis=1),
        helper.make_node("Div", ["hr", "sbp"], ["shock_index"]),
    ]
    g = helper.make_graph(
        nodes,
        "shock_index",
        [helper.make_tensor_value_info("vitals", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("shock_index", TensorProto.FLOAT, ["batch"])],
        initializer=[
            helper.make_tensor("i0", TensorProto.INT64, [], [0]),
            helper.make_tensor("i1", TensorProto.INT64, [], [1]),
        ],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main(here: Path) -> None:
    here.mkdir(exist_ok=True)
    if here != BUNDLE:
        (here / "MODEL_CARD.md").write_bytes((BUNDLE / "MODEL_CARD.md").read_bytes())
    (here / "model.onnx").write_bytes(graph().SerializeToString())
    (here / "golden_inputs.json").write_text(json.dumps(CASES, indent=1) + "\n")
    expected = [round(c["hr"] / c["sbp"], 4) for c in CASES]
    (here / "golden_outputs.json").write_text(json.dumps(expected, indent=1) + "\n")
    roles = {
        "model": ("model.onnx", "onnx", "fp32"),
        "golden_inputs": ("golden_inputs.json", None, None),
        "golden_outputs": ("golden_outputs.json", None, None),
        "model_card": ("MODEL_CARD.md", None, None),
    }
    artifacts = {}
    for role, (path, fmt, precision) in roles.items():
        entry = {"path": path, "sha256": hashlib.sha256((here / path).read_bytes()).hexdigest()}
        if fmt:
            entry |= {"format": fmt, "precision": precision}
        artifacts[role] = entry
    manifest = {
        "schema": "edgemed.manifest/1",
        "id": "shock-index-example",
        "version": "0.1.0",
        "task": "shock-index",
        "summary": "Shock index (heart rate / systolic pressure): an example of a task package",
        "license": "Apache-2.0",
        "medical_device": False,
        "source": {
            "package": "onnx==1.23.2",
            "upstream": "Allgöwer & Burri 1967 (formula only; no data, no training)",
            "recipe": "examples/task_package/make_bundle.py",
        },
        "backends": ["onnxruntime"],
        "inputs": [{"name": "vitals", "dtype": "float32", "shape": ["batch", 2]}],
        "outputs": [{"name": "shock_index", "dtype": "float32", "shape": ["batch"]}],
        "preprocess": {},
        "postprocess": {"threshold": 0.9},
        "golden": {"max_abs_diff": 0.0001},
        "metrics": {"note": "exact formula: no accuracy to measure"},
        "rows_independent": True,
        "artifacts": artifacts,
    }
    (here / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else BUNDLE)
