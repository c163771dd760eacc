"""The bundled clinical text encoder: golden vectors, accuracy claims, provenance, bad input."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import edgemed
from edgemed.hardware import cpu_family
from edgemed.registry import find_model_dir
from edgemed.tasks.text_embedding.postprocess import golden_role
from edgemed.tasks.text_embedding.preprocess import MAX_TEXT_CHARS

MODEL_ID = "clinical-text-minilm"


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.fixture(scope="module", params=["onnxruntime", "openvino"])
def engine(request: pytest.FixtureRequest) -> Iterator[edgemed.Pipeline]:
    """The model on each CPU backend it ships (ONNX Runtime dynamic INT8, OpenVINO static INT8)."""
    with edgemed.load(MODEL_ID, backend=request.param, device="cpu", threads=1) as pipeline:
        yield pipeline


def test_golden_vectors_reproduced(engine: edgemed.Pipeline) -> None:
    m = engine.manifest
    texts = json.loads(m.path("golden_inputs").read_text())
    role = golden_role(m, engine.backend.name, cpu_family())
    # this CPU family's own outputs where the bundle has them, else the engine's
    family = cpu_family().replace("-", "_")
    generic = {"onnxruntime": "golden_outputs", "openvino": "golden_outputs_openvino"}
    assert role in (f"golden_outputs_{engine.backend.name}_{family}", generic[engine.backend.name])
    assert m.has(role)
    expected = np.load(m.path(role))
    got = np.stack([engine(t).embedding for t in texts])
    assert got.shape == expected.shape == (len(texts), 384)
    limits, _ = m.golden.for_platform(engine.backend.name, cpu_family())
    assert np.abs(got - expected).max() <= limits.max_abs_diff
    assert limits.min_cosine is not None and _cos(got, expected).min() >= limits.min_cosine
    assert engine.check_golden() == []


def test_golden_check_tells_the_engines_apart(engine: edgemed.Pipeline) -> None:
    """Each engine's output is closer to its own expected vectors than to the other engine's,
    so per-engine golden files are not interchangeable (the check would notice a swap)."""
    m = engine.manifest
    texts = json.loads(m.path("golden_inputs").read_text())
    got = np.stack([engine(t).embedding for t in texts])
    own = np.load(m.path(golden_role(m, engine.backend.name, cpu_family())))
    other_backend = "openvino" if engine.backend.name == "onnxruntime" else "onnxruntime"
    other = np.load(m.path(golden_role(m, other_backend, cpu_family())))
    assert np.abs(got - own).max() < np.abs(got - other).max()


def test_code_recall_on_shipped_subset_matches_manifest(engine: edgemed.Pipeline) -> None:
    """Recall@10 of the shipped inclusion-term queries through the whole pipeline (tokenizer,
    INT8 engine, int8 index search) reproduces the recipe's figure for that engine."""
    m = engine.manifest
    queries = json.loads(m.path("eval_queries").read_text())
    assert len(queries) == m.metrics["eval_subset_queries"] == 500
    results = engine.batch([q["text"] for q in queries])
    assert all(len(r.nearest) == m.postprocess["top_k"] == 10 for r in results)
    hits = [q["code"] in {n.code for n in r.nearest} for q, r in zip(queries, results, strict=True)]
    recall = sum(hits) / len(hits)
    expected = float(m.metrics[f"eval_subset_recall_at_10_{engine.backend.name}"])
    assert abs(recall - expected) <= 0.015, (recall, expected)  # 7 of 500 queries: other CPUs
    fp32 = float(m.metrics["fp32_recall_at_10"])
    assert recall >= fp32 - 0.05  # the subset is a sample: within its sampling error of FP32


def test_int8_close_to_fp32_reference(engine: edgemed.Pipeline) -> None:
    """Both INT8 engines stay close to FP32 on every golden text, the 256-token note included."""
    m = engine.manifest
    texts = json.loads(m.path("golden_inputs").read_text())
    fp32 = np.load(m.path("golden_reference_fp32"))
    got = np.stack([engine(t).embedding for t in texts])
    assert _cos(got, fp32).min() >= 0.98


def test_model_card_states_use_provenance_licence_and_metrics(encoder: edgemed.Pipeline) -> None:
    m = encoder.manifest
    card = m.path("model_card").read_text()
    for required in ("Not a medical device", "Intended use", "provenance", "Licence", "Metrics"):
        assert required.lower() in card.lower(), required
    assert m.metrics["eval_sentences"] >= 50
    assert float(m.metrics["int8_vs_fp32_cosine_min"]) >= 0.98
    assert float(m.metrics["openvino_int8_vs_fp32_cosine_min"]) >= 0.98
    assert str(m.metrics["int8_vs_fp32_cosine_min"]) in card  # the card shows the measured value
    # Code retrieval: the INT8 engines within 1 point of FP32 (the recipe's release gate).
    fp32 = float(m.metrics["fp32_recall_at_10"])
    for engine in ("onnxruntime_int8", "openvino_int8"):
        assert float(m.metrics[f"{engine}_recall_at_10"]) >= fp32 - 0.01
        assert f"{float(m.metrics[f'{engine}_recall_at_10']):.1%}" in card
    assert m.metrics["recall_gate"] == "pass" and "pass" in card
    assert m.metrics["index_codes"] == 36343


def test_index_is_int8_rows_with_scales_and_no_evaluation_query(
    encoder: edgemed.Pipeline,
) -> None:
    m = encoder.manifest
    index = np.load(m.path("label_index_int8"))
    scales = np.load(m.path("label_index_scales"))
    labels = json.loads(m.path("labels").read_text())
    assert index.dtype == np.int8 and index.shape == (len(labels), 384) == (36343, 384)
    assert scales.dtype == np.float32 and scales.shape == (len(labels),)
    # Rows are unit vectors quantised per row: scale * max|q| = max|x| <= 1, and |x|2 ~ 1.
    assert np.abs(index).max(axis=1).min() == 127
    norms = np.linalg.norm(index.astype(np.float32) * scales[:, None], axis=1)
    assert np.allclose(norms, 1.0, atol=0.01)
    assert (index.nbytes + scales.nbytes) / 1e6 == pytest.approx(m.metrics["index_size_mb"], 0.01)
    # Every shipped query's code is in the index, and no query is its own code's description.
    by_code = {d["code"]: d["text"].lower() for d in labels}
    queries = json.loads(m.path("eval_queries").read_text())
    assert all(q["code"] in by_code for q in queries)
    assert not [q for q in queries if q["text"].lower() == by_code[q["code"]]]


def test_result_has_embedding_codes_and_provenance(encoder: edgemed.Pipeline) -> None:
    result = encoder("chest pain radiating to the left arm")
    assert result.embedding.shape == (384,) and result.embedding.dtype == np.float32
    assert abs(float(np.linalg.norm(result.embedding)) - 1.0) < 1e-5
    assert len(result.nearest) == 10
    assert [n.score for n in result.nearest] == sorted(
        (n.score for n in result.nearest), reverse=True
    )
    # Chest pain (R07.x) first, as a clinician would expect; every suggestion is a leaf code.
    assert result.nearest[0].code.startswith("R07"), result.nearest
    labels = {d["code"]: d["text"] for d in json.loads(encoder.manifest.path("labels").read_text())}
    assert all(labels[n.code] == n.text for n in result.nearest)
    p = result.provenance
    assert (p.model_id, p.backend, p.device, p.precision) == (
        "clinical-text-minilm",
        encoder.manifest.backends[0],
        "cpu",
        "int8",
    )
    assert p.model_sha256 == encoder.manifest.model_sha256
    assert re.fullmatch(r"[0-9a-f]{64}", p.input_sha256)
    assert p.timings.inference_ms > 0 and p.timings.total_ms >= p.timings.inference_ms
    assert p.edgemed_version == edgemed.__version__


def test_respiratory_note_maps_to_respiratory_codes(encoder: edgemed.Pipeline) -> None:
    top3 = encoder("productive cough with fever and crackles at the lung base").nearest[:3]
    assert any(n.code.startswith(("J", "R05")) for n in top3), top3


@pytest.mark.parametrize("bad", ["", "   \n\t ", b"\xff\xfe\xfa", 42, None])
def test_bad_input_is_a_typed_error(encoder: edgemed.Pipeline, bad: object) -> None:
    with pytest.raises(edgemed.InputError):
        encoder(bad)  # type: ignore[arg-type]


def test_utf8_bytes_accepted(encoder: edgemed.Pipeline) -> None:
    text = "Patient febrile, 39 °C — café-au-lait spots"
    a, b = encoder(text), encoder(text.encode())
    assert np.array_equal(a.embedding, b.embedding)


def test_long_text_truncated_by_policy(encoder: edgemed.Pipeline) -> None:
    text = "Observations stable overnight, no new concerns. " * 2100  # ~100 kB
    assert len(text.encode()) > 100_000
    result = encoder(text)
    assert result.truncated and result.n_tokens == encoder.manifest.preprocess["max_tokens"]
    short = encoder("Observations stable overnight.")
    assert not short.truncated and short.n_tokens < 16


def test_oversized_text_refused(encoder: edgemed.Pipeline) -> None:
    with pytest.raises(edgemed.InputError, match="limit"):
        encoder("x" * (MAX_TEXT_CHARS + 1))


def test_batch_matches_single(encoder: edgemed.Pipeline) -> None:
    texts = ["fever", "chest pain radiating to the left arm", "fall at home with hip pain"]
    batched = encoder.batch(texts)
    for text, res in zip(texts, batched, strict=True):
        assert np.array_equal(res.embedding, encoder(text).embedding)
        assert res.provenance.input_sha256 == encoder(text).provenance.input_sha256


def test_concurrent_calls_never_mix_results(encoder: edgemed.Pipeline) -> None:
    texts = [f"note {i}: {'fever' if i % 2 else 'chest pain'} for {i} days" for i in range(16)]
    expected = {t: encoder(t).embedding for t in texts}
    errors: list[str] = []

    def worker(offset: int) -> None:
        for i in range(len(texts)):
            t = texts[(i + offset) % len(texts)]
            got = encoder(t)
            if _cos(got.embedding, expected[t]) < 0.9999:
                errors.append(t)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors


def _copy_bundle(tmp_path: Path, change: Callable[[Path, dict[str, Any]], None]) -> Path:
    """A copy of the bundle with ``change(folder, manifest)`` applied and sha256s refreshed."""
    dst = tmp_path / MODEL_ID
    shutil.copytree(find_model_dir(MODEL_ID), dst)
    data = json.loads((dst / "manifest.json").read_text())
    change(dst, data)
    for art in data["artifacts"].values():
        art["sha256"] = hashlib.sha256((dst / art["path"]).read_bytes()).hexdigest()
    (dst / "manifest.json").write_text(json.dumps(data))
    return dst


def test_float32_label_set_is_still_served(tmp_path: Path, encoder: edgemed.Pipeline) -> None:
    """A small float32 label set (``label_embeddings``) instead of the int8 code index."""
    chapters = [
        {"code": "I00-I99", "text": "Diseases of the circulatory system"},
        {"code": "J00-J99", "text": "Diseases of the respiratory system"},
        {"code": "S00-T88", "text": "Injury, poisoning and certain other consequences"},
    ]

    def change(folder: Path, data: dict[str, Any]) -> None:
        (folder / "labels.json").write_text(json.dumps(chapters))
        emb = np.stack([encoder(c["text"]).embedding for c in chapters])
        np.save(folder / "label_embeddings.npy", emb)
        # The code confidence is fitted to the ICD-10-CM index: it goes with it.
        for role in ("label_index_int8", "label_index_scales", "code_confidence"):
            del data["artifacts"][role]
        data["artifacts"]["label_embeddings"] = {"path": "label_embeddings.npy", "sha256": ""}

    with edgemed.load(_copy_bundle(tmp_path, change), backend="onnxruntime", threads=1) as pipe:
        nearest = pipe("productive cough with fever and crackles at the lung base").nearest
    assert nearest[0].code == "J00-J99" and len(nearest) == 3


def test_bad_index_scales_refused(tmp_path: Path) -> None:
    def change(folder: Path, data: dict[str, Any]) -> None:
        scales = np.load(folder / "label_index_scales.npy")
        np.save(folder / "label_index_scales.npy", scales[:-1])

    with pytest.raises(edgemed.ModelError, match="label_index_scales"):
        edgemed.load(_copy_bundle(tmp_path, change), backend="onnxruntime", golden=False)


def test_openvino_golden_drift_refuses_only_openvino(tmp_path: Path) -> None:
    """Per-backend golden files: drift in the OpenVINO expectation stops OpenVINO, not ORT."""

    def change(folder: Path, data: dict[str, Any]) -> None:
        # the OpenVINO expectation that applies on this CPU family (its own, where shipped)
        family = cpu_family().replace("-", "_")
        role = next(r for r in (f"golden_outputs_openvino_{family}", "golden_outputs_openvino")
                    if r in data["artifacts"])  # fmt: skip
        path = folder / data["artifacts"][role]["path"]
        expected = np.load(path)
        expected[0] = -expected[0]
        np.save(path, expected)

    bundle = _copy_bundle(tmp_path, change)
    with pytest.raises(edgemed.GoldenMismatchError, match="golden_outputs_openvino"):
        edgemed.load(bundle, backend="openvino", threads=1)
    with edgemed.load(bundle, backend="onnxruntime", threads=1) as pipe:
        assert pipe.check_golden() == []
