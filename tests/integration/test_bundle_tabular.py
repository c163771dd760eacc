"""The two tabular bundles rebuilt through the public builder (`edgemed bundle build`) from
their recipe's own ONNX models and scikit-learn's bundled data, compared with what the recipe
(models/recipes/tabular_sklearn.py) shipped.

Equal: the model file, the OpenVINO IR (weights byte for byte; the graph up to the
node names OpenVINO numbers per process), the task and its preprocess and
postprocess sections, the interface, and every output on the recipe's golden rows. Different,
each on purpose:
- golden rows: the builder takes the clearest rows of each label (classification) or rows
  spread over the range of values (regression) from the evaluation file; the recipe chose
  its own real rows;
- golden limits: the recipe measured the drift per platform (``golden.platforms``); the
  builder states a default (FP32: rounding only) and measures none;
- metrics: the recipe's repeated cross-validation with bootstrap intervals; the builder only
  measures what it is given (here the training rows themselves: a build check, not a
  performance claim) and the card says so;
- ``tensorrt_precision``: the builder states "fp32" for an FP32 bundle (TensorRT would
  otherwise default to FP16, which the golden limit of an FP32 build does not allow);
- the model card's text.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import edgemed
from edgemed.registry import find_model_dir

sklearn_datasets = pytest.importorskip("sklearn.datasets")
pytest.importorskip("onnx")


def _write_evaluation(folder: Path, names: list[str], data: Any, truth: str, label: Any) -> None:
    folder.mkdir()
    with (folder / "rows.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow([*names, truth])
        for x, y in zip(data.data, data.target, strict=True):
            out.writerow([repr(float(v)) for v in x] + [label(y)])


def _rebuild(tmp: Path, model_id: str, evaluation: Path, **extra: Any) -> tuple[Path, Path]:
    recipe = find_model_dir(model_id)
    shipped = json.loads((recipe / "manifest.json").read_text())
    keys = ("id", "version", "task", "summary", "license", "preprocess", "postprocess")
    spec = {k: shipped[k] for k in keys} | {"source": {"upstream": shipped["source"]["upstream"]}}
    (tmp / "spec.json").write_text(json.dumps(spec | {"quantization": "none"} | extra))
    proc = subprocess.run(
        [sys.executable, "-m", "edgemed.cli", "bundle", "build", "spec.json", "--onnx",
         str(recipe / "model.fp32.onnx"), "--evaluation", str(evaluation), "--out", "rebuilt"],
        capture_output=True, text=True, timeout=300, cwd=tmp,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return recipe, tmp / "rebuilt"


def _same_as_recipe(recipe: Path, rebuilt: Path) -> None:
    a = json.loads((recipe / "manifest.json").read_text())
    b = json.loads((rebuilt / "manifest.json").read_text())
    for role in ("model", "openvino_weights"):
        assert a["artifacts"][role]["sha256"] == b["artifacts"][role]["sha256"], role
    # The IR graphs are the same up to the names OpenVINO numbers from a process-wide counter
    # (the recipe converted diabetes after wdbc in one process; the builder converts alone).
    ir = [re.sub(r'name="(\w+?)_\d+"', r'name="\1"', (d / "openvino/model.xml").read_text())
          for d in (recipe, rebuilt)]  # fmt: skip
    assert ir[0] == ir[1]
    for key in ("task", "preprocess", "postprocess", "inputs", "outputs", "backends"):
        assert a[key] == b[key], key
    rows = json.loads((recipe / "golden" / "inputs.json").read_text())
    for backend in ("onnxruntime", "openvino"):
        with (
            edgemed.load(recipe, backend=backend) as old,
            edgemed.load(rebuilt, backend=backend) as new,
        ):
            assert [r.body() for r in old.batch(rows)] == [r.body() for r in new.batch(rows)]


def test_wdbc_rebuilt_through_the_builder_equals_the_recipe(tmp_path: Path) -> None:
    names = [f["name"] for f in json.loads(
        (find_model_dir("wdbc-malignancy-mlp") / "manifest.json").read_text())["preprocess"]["features"]]  # fmt: skip
    data = sklearn_datasets.load_breast_cancer()  # target 0 = malignant, 1 = benign
    _write_evaluation(tmp_path / "eval", names, data, "label",
                      lambda y: "benign" if y == 1 else "malignant")  # fmt: skip
    recipe, rebuilt = _rebuild(tmp_path, "wdbc-malignancy-mlp", tmp_path / "eval")
    _same_as_recipe(recipe, rebuilt)
    metrics = json.loads((rebuilt / "manifest.json").read_text())["metrics"]
    assert metrics["shipped_precision"] == "fp32" and metrics["fp32_accuracy"] > 0.95


def test_diabetes_rebuilt_through_the_builder_equals_the_recipe(tmp_path: Path) -> None:
    names = [f["name"] for f in json.loads(
        (find_model_dir("diabetes-progression") / "manifest.json").read_text())["preprocess"]["features"]]  # fmt: skip
    data = sklearn_datasets.load_diabetes(scaled=False)
    _write_evaluation(tmp_path / "eval", names, data, "target", lambda y: repr(float(y)))
    recipe, rebuilt = _rebuild(tmp_path, "diabetes-progression", tmp_path / "eval")
    _same_as_recipe(recipe, rebuilt)
    metrics = json.loads((rebuilt / "manifest.json").read_text())["metrics"]
    assert 0.4 < metrics["fp32_r2"] < 0.7  # a ridge regression on its own training rows


def test_tabular_int8_through_the_gate_and_bad_csv(tmp_path: Path) -> None:
    names = [f["name"] for f in json.loads(
        (find_model_dir("wdbc-malignancy-mlp") / "manifest.json").read_text())["preprocess"]["features"]]  # fmt: skip
    data = sklearn_datasets.load_breast_cancer()
    _write_evaluation(tmp_path / "eval", names, data, "label",
                      lambda y: "benign" if y == 1 else "malignant")  # fmt: skip
    proc_ok = _rebuild(tmp_path, "wdbc-malignancy-mlp", tmp_path / "eval", quantization="none")
    assert proc_ok[1].is_dir()
    bad = tmp_path / "bad"
    bad.mkdir()
    header = ",".join([*names[:-1], "texture_wrost", "label"])
    (bad / "rows.csv").write_text(header + "\n")  # the header alone is already wrong
    proc = subprocess.run(
        [sys.executable, "-m", "edgemed.cli", "bundle", "build", "spec.json", "--onnx",
         str(find_model_dir("wdbc-malignancy-mlp") / "model.fp32.onnx"), "--evaluation", "bad",
         "--out", "x"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 10 and "texture_wrost" in proc.stderr, proc.stderr
