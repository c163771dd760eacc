"""Manifest validation: each kind of damage gets its own typed error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import edgemed
from edgemed.manifest import load_manifest
from edgemed.registry import find_model_dir

MODEL_ID = "clinical-text-minilm"


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    dst = tmp_path / MODEL_ID
    shutil.copytree(find_model_dir(MODEL_ID), dst)
    return dst


def _edit(model_dir: Path, change: Any) -> None:
    path = model_dir / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_bundled_manifest_is_valid_and_complete() -> None:
    m = load_manifest(find_model_dir(MODEL_ID))
    assert m.id == MODEL_ID and m.task == "text-embedding" and m.precision == "int8"
    assert m.medical_device is False
    assert {"model", "tokenizer", "golden_inputs", "golden_outputs", "model_card"} <= set(
        m.artifacts
    )
    assert m.source.recipe == "models/recipes/clinical_text_minilm.py"


def test_bad_json(model_copy: Path) -> None:
    (model_copy / "manifest.json").write_text('{"schema": "edgemed.manifest/1",')
    with pytest.raises(edgemed.ManifestError, match="not valid JSON"):
        edgemed.load(model_copy)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(surprise=1), r"unknown key\(s\) \['surprise'\]"),
        (
            lambda d: d["artifacts"]["model"].update(compression="zip"),
            r"artifacts\.model: unknown key",
        ),
        (lambda d: d["preprocess"].update(lowercase=True), r"preprocess: unknown key"),
        (lambda d: d.pop("license"), r"missing key 'license'"),
        (lambda d: d.update(version=1), r"manifest\.version: expected str"),
        (lambda d: d.update(schema="edgemed.manifest/2"), r"manifest\.schema"),
        (lambda d: d.update(backends=["tensorflow"]), r"manifest\.backends"),
        (lambda d: d["artifacts"].pop("tokenizer"), r"needs artifact\(s\) \['tokenizer'\]"),
        (lambda d: d["artifacts"]["model"].update(sha256="abc"), r"64 lowercase hex"),
        (lambda d: d["artifacts"]["model"].update(path="../../etc/passwd"), r"must be relative"),
        (lambda d: d["inputs"][0].update(dtype="complex64"), r"inputs\[0\]\.dtype"),
        (lambda d: d["preprocess"].update(max_tokens=100000), r"max_tokens"),
        (lambda d: d.update(id="Bad Id!"), r"manifest\.id"),
    ],
)
def test_schema_violations(model_copy: Path, change: Any, message: str) -> None:
    _edit(model_copy, change)
    with pytest.raises(edgemed.ManifestError, match=message):
        edgemed.load(model_copy)


def test_missing_artifact(model_copy: Path) -> None:
    (model_copy / "tokenizer.json").unlink()
    with pytest.raises(edgemed.IntegrityError, match="'tokenizer' missing"):
        edgemed.load(model_copy)


def test_wrong_sha256(model_copy: Path) -> None:
    onnx = model_copy / "model.int8.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte deep inside the weights
    onnx.write_bytes(bytes(data))
    with pytest.raises(edgemed.IntegrityError, match="corrupt or was modified"):
        edgemed.load(model_copy)


def test_unknown_model_id_lists_known_ones() -> None:
    with pytest.raises(edgemed.ModelError, match=MODEL_ID):
        edgemed.load("no-such-model")


def test_list_models() -> None:
    ids = [m.id for m in edgemed.list_models()]
    assert MODEL_ID in ids
