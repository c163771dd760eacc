"""`edgemed bundle build` for the generic task ``text-embedding``, through the command line.

Always: a small encoder written here with ONNX's helpers (token and segment embeddings, one
dense layer with tanh: the [batch, tokens, dim] output of a plain transformer export, no
pooling in the graph) with the real all-MiniLM-L6-v2 ``tokenizer.json`` the bundled model
ships. Its embeddings are checked against the same arithmetic done here in NumPy for every
pooling the manifest can declare.

With ``EDGEMED_MINILM_RAW`` naming the output of models/recipes/minilm_raw_onnx.py (needs
torch): all-MiniLM-L6-v2 exported plainly, built with ``"pooling": "mean"``, against the
bundled clinical-text-minilm (pooling built into its graph by its own recipe).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tokenizers import Tokenizer

import edgemed
from edgemed.errors import InputError, IntegrityError

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "models" / "clinical-text-minilm"
DIM = 16
GROUPS = {
    "cardiac": ["chest pain radiating to the left arm", "crushing chest pressure",
                "palpitations and chest tightness", "angina on exertion"],
    "respiratory": ["shortness of breath and cough", "wheezing and dyspnoea",
                    "productive cough with fever", "low oxygen saturation on room air"],
    "renal": ["reduced urine output", "rising creatinine", "flank pain and haematuria",
              "acute kidney injury"],
}  # fmt: skip
SPEC: dict[str, Any] = {
    "id": "tiny-encoder",
    "version": "1.0.0",
    "task": "text-embedding",
    "summary": "A small encoder written by the test",
    "license": "MIT (test)",
    "source": {"upstream": "tests/integration/test_bundle_text.py"},
    "preprocess": {"max_tokens": 32},
    "postprocess": {"pooling": "mean"},
    "quantization": "dynamic",
    "gate": {"min_agreement": 0.9, "max_metric_drop": 0.5},
    "golden_count": 4,
    "files": {"tokenizer": "tokenizer.json"},
}


def weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    vocab = Tokenizer.from_file(str(BUNDLED / "tokenizer.json")).get_vocab_size()
    return {
        "words": rng.normal(0, 1, (vocab, DIM)).astype(np.float32),
        "segments": rng.normal(0, 1, (2, DIM)).astype(np.float32),
        "dense": rng.normal(0, 0.5, (DIM, DIM)).astype(np.float32),
    }


def write_encoder(path: Path, inputs: tuple[str, ...] = ("input_ids", "attention_mask",
                  "token_type_ids")) -> None:  # fmt: skip
    """hidden = tanh((words[ids] + segments[types]) @ dense) * mask; the mask enters the
    graph as a real transformer's does (a padded token contributes nothing)."""
    w = weights()
    axes = ["batch", "tokens"]
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["words", "input_ids"], ["w"]),
            helper.make_node("Gather", ["segments", "token_type_ids"], ["s"]),
            helper.make_node("Add", ["w", "s"], ["ws"]),
            helper.make_node("MatMul", ["ws", "dense"], ["d"]),
            helper.make_node("Tanh", ["d"], ["t"]),
            helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["m", "last"], ["m3"]),
            helper.make_node("Mul", ["t", "m3"], ["last_hidden_state"]),
        ],
        "tiny_encoder",
        [helper.make_tensor_value_info(n, TensorProto.INT64, axes) for n in inputs],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [*axes, DIM])],
        [numpy_helper.from_array(v, k) for k, v in w.items()]
        + [numpy_helper.from_array(np.array([-1], np.int64), "last")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def expected(text: str, pooling: str) -> np.ndarray:
    """The encoder's arithmetic in NumPy, then the pooling and the unit length."""
    tok = Tokenizer.from_file(str(BUNDLED / "tokenizer.json"))
    tok.enable_truncation(max_length=32)
    tok.no_padding()  # this tokenizer.json pads to 128; one text needs no padding
    ids = np.array(tok.encode(text).ids)
    w = weights()
    hidden = np.tanh((w["words"][ids] + w["segments"][0]) @ w["dense"])
    row = {"mean": hidden.mean(0), "cls": hidden[0], "last": hidden[-1]}[pooling]
    return np.asarray(row / np.linalg.norm(row))


def edgemed_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgemed.cli", *map(str, args)],
        capture_output=True, text=True, timeout=600, cwd=cwd, env=dict(os.environ),
    )  # fmt: skip


def prepare(work: Path, spec: dict[str, Any] = SPEC, **change: Any) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    (work / "tokenizer.json").write_bytes((BUNDLED / "tokenizer.json").read_bytes())
    if not (work / "model.onnx").exists():
        write_encoder(work / "model.onnx")
    (work / "eval").mkdir(exist_ok=True)
    for name, texts in GROUPS.items():
        (work / "eval" / f"{name}.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    (work / "spec.json").write_text(json.dumps(spec | change), encoding="utf-8")
    return work


def build(work: Path, out: str = "bundle") -> subprocess.CompletedProcess[str]:
    return edgemed_cli(
        "bundle", "build", "spec.json", "--onnx", "model.onnx", "--evaluation", "eval",
        "--out", out, "--force", cwd=work,
    )  # fmt: skip


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare(tmp_path_factory.mktemp("text-build"))


@pytest.mark.parametrize("pooling", ["mean", "cls", "last"])
def test_each_pooling_gives_the_graphs_arithmetic(tmp_path: Path, pooling: str) -> None:
    work = prepare(tmp_path, quantization="none", postprocess={"pooling": pooling})
    proc = build(work)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((work / "bundle" / "manifest.json").read_text())
    assert manifest["artifacts"]["tokenizer"]["path"] == "tokenizer.json"
    assert manifest["postprocess"]["pooling"] == pooling
    with edgemed.load(work / "bundle", threads=1) as encoder:
        for text in [t for texts in GROUPS.values() for t in texts][:5]:
            got = encoder(text).embedding
            np.testing.assert_allclose(got, expected(text, pooling), atol=2e-6)
        assert encoder("any note").nearest == ()  # no label set: no search
        with pytest.raises(InputError, match="empty"):
            encoder("   ")


def test_position_ids_are_filled_when_the_graph_takes_them(tmp_path: Path) -> None:
    """An export that takes position_ids (an unused input here) builds, and gets 0..n-1."""
    work = tmp_path
    work.mkdir(exist_ok=True)
    names = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
    write_encoder(work / "model.onnx", inputs=names)
    prepare(work, quantization="none")
    assert build(work).returncode == 0
    with edgemed.load(work / "bundle", threads=1) as encoder:
        prepared = encoder.preprocess("chest pain").tensors
        np.testing.assert_array_equal(prepared["position_ids"], [np.arange(4)])
        np.testing.assert_allclose(
            encoder("chest pain").embedding, expected("chest pain", "mean"), atol=2e-6
        )


def test_dynamic_int8_builds_gates_and_loads(work: Path) -> None:
    proc = build(work)
    assert proc.returncode == 0, proc.stderr
    bundle = work / "bundle"
    metrics = json.loads((bundle / "manifest.json").read_text())["metrics"]
    assert metrics["shipped_precision"] == "int8"
    assert metrics["int8_cosine_min"] > 0.98 and 0 <= metrics["fp32_neighbour_accuracy"] <= 1
    verified = edgemed_cli("bundle", "verify", bundle, cwd=work)
    assert verified.returncode == 0, verified.stderr
    with edgemed.load(bundle, threads=1) as encoder:
        got = encoder("chest pain radiating to the left arm").embedding
    assert float(got @ expected("chest pain radiating to the left arm", "mean")) > 0.98
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "neighbour_accuracy" in card and "not a medical device" in card.lower()
    assert "INT8 embedding cosine with FP32: min" in card
    assert "none (quantization dynamic" in card


def test_the_same_inputs_give_a_byte_identical_bundle(work: Path) -> None:
    for out in ("again-1", "again-2"):
        assert build(work, out).returncode == 0
    first, second = (sorted((work / o).rglob("*")) for o in ("again-1", "again-2"))
    assert [p.relative_to(work / "again-1") for p in first] == [
        p.relative_to(work / "again-2") for p in second
    ]
    for a, b in zip(first, second, strict=True):
        assert a.is_dir() or a.read_bytes() == b.read_bytes(), a


def test_a_changed_tokenizer_is_refused_at_load(work: Path, tmp_path: Path) -> None:
    assert build(work, "tamper").returncode == 0
    tokenizer = work / "tamper" / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text().replace('"[UNK]"', '"[UNKNOWN]"', 1))
    with pytest.raises(IntegrityError, match="tokenizer"):
        edgemed.load(work / "tamper")


@pytest.mark.parametrize(
    ("change", "msg"),
    [
        ({"files": {}}, "needs the file(s) ['tokenizer']"),
        ({"files": {"tokenizer": "missing.json"}}, "missing.json is not a file"),
        ({"files": {"model": "tokenizer.json"}}, "not one the builder writes"),
        ({"postprocess": {"pooling": "sum"}}, "pooling: 'sum'"),
        ({"postprocess": {"pooling": "none"}}, "reads a rank-2 output"),
        ({"postprocess": {"pooling": "mean", "output": "logits"}}, "'logits' is not among"),
        ({"preprocess": {"max_tokens": 100_000}}, "max_tokens: must be in [8, 8192]"),
    ],
)
def test_bad_specs_exit_10_saying_why(tmp_path: Path, change: dict[str, Any], msg: str) -> None:
    proc = build(prepare(tmp_path, **change))
    assert proc.returncode == 10, proc.stderr
    assert msg in proc.stderr


def test_bad_models_and_folders_exit_10_saying_why(tmp_path: Path) -> None:
    work = prepare(tmp_path)
    names = ("input_ids", "attention_mask", "token_type_ids", "pixel_values")
    write_encoder(work / "model.onnx", inputs=names)  # an input no text gives
    proc = build(work)
    assert proc.returncode == 10 and f"takes {list(names)}" in proc.stderr, proc.stderr
    write_encoder(work / "model.onnx")
    (work / "eval" / "renal.txt").write_text("only one text\n")
    proc = build(work)
    assert proc.returncode == 10 and "['renal'] hold fewer than two texts" in proc.stderr
    (work / "eval" / "renal.txt").write_bytes(b"\xff\xfe not utf-8\nsecond\n")
    proc = build(work)
    assert proc.returncode == 10 and "not a readable UTF-8 text file" in proc.stderr
    for name in ("cardiac", "respiratory", "renal"):
        (work / "eval" / f"{name}.txt").unlink()
    (work / "eval" / "all.txt").write_text("one\ntwo\n")
    proc = build(work)
    assert proc.returncode == 10 and "needs at least two .txt files" in proc.stderr


MINILM_RAW = os.environ.get("EDGEMED_MINILM_RAW")


@pytest.mark.skipif(not MINILM_RAW, reason="EDGEMED_MINILM_RAW: models/recipes/minilm_raw_onnx.py")
@pytest.mark.parametrize("quantization", ["none", "dynamic"])
def test_real_minilm_matches_the_bundled_encoder(tmp_path: Path, quantization: str) -> None:
    """The plain export built with declared mean pooling computes what the bundled model's
    recipe computes with pooling in its graph: FP32 to rounding, INT8 as close as INT8 is."""
    raw = Path(str(MINILM_RAW))
    spec = json.loads((raw / "spec.json").read_text()) | {"quantization": quantization}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "tokenizer.json").write_bytes((raw / "tokenizer.json").read_bytes())
    proc = edgemed_cli(
        "bundle", "build", tmp_path / "spec.json", "--onnx", raw / "model.onnx",
        "--evaluation", raw / "eval", "--out", tmp_path / "bundle", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    texts = json.loads((BUNDLED / "golden" / "inputs.json").read_text())
    reference = np.load(BUNDLED / "golden" / "fp32_embeddings.npy")
    with edgemed.load(tmp_path / "bundle", backend="onnxruntime", threads=1) as encoder:
        got = np.stack([encoder(t).embedding for t in texts])
    cosine = np.sum(got * reference, axis=1)
    if quantization == "none":
        assert float(np.abs(got - reference).max()) < 1e-5
    else:
        assert float(cosine.min()) > 0.98
