"""The bundled clinical text encoder: golden vectors, accuracy claims, provenance, bad input."""

from __future__ import annotations

import json
import re
import threading

import numpy as np
import pytest

import edgemed
from edgemed.preprocess.text import MAX_TEXT_CHARS


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_golden_vectors_reproduced(encoder: edgemed.Pipeline) -> None:
    m = encoder.manifest
    texts = json.loads(m.path("golden_inputs").read_text())
    expected = np.load(m.path("golden_outputs"))
    got = np.stack([encoder(t).embedding for t in texts])
    assert got.shape == expected.shape == (len(texts), 384)
    assert np.abs(got - expected).max() <= m.golden.max_abs_diff
    assert _cos(got, expected).min() >= m.golden.min_cosine


def test_int8_close_to_fp32_reference(encoder: edgemed.Pipeline) -> None:
    m = encoder.manifest
    texts = json.loads(m.path("golden_inputs").read_text())
    fp32 = np.load(m.path("golden_reference_fp32"))
    got = np.stack([encoder(t).embedding for t in texts])
    assert _cos(got, fp32).min() >= 0.98


def test_model_card_states_use_provenance_licence_and_metrics(encoder: edgemed.Pipeline) -> None:
    m = encoder.manifest
    card = m.path("model_card").read_text()
    for required in ("Not a medical device", "Intended use", "provenance", "Licence", "Metrics"):
        assert required.lower() in card.lower(), required
    assert m.metrics["eval_sentences"] >= 50
    assert float(m.metrics["int8_vs_fp32_cosine_min"]) >= 0.98
    assert str(m.metrics["int8_vs_fp32_cosine_min"]) in card  # the card shows the measured value


def test_result_has_embedding_labels_and_provenance(encoder: edgemed.Pipeline) -> None:
    result = encoder("chest pain radiating to the left arm")
    assert result.embedding.shape == (384,) and result.embedding.dtype == np.float32
    assert abs(float(np.linalg.norm(result.embedding)) - 1.0) < 1e-5
    assert len(result.nearest) == 3
    assert [n.score for n in result.nearest] == sorted(
        (n.score for n in result.nearest), reverse=True
    )
    codes = {n.code for n in result.nearest}
    assert codes & {"R00-R99", "I00-I99"}  # symptoms or circulatory, as a clinician would expect
    p = result.provenance
    assert (p.model_id, p.backend, p.device, p.precision) == (
        "clinical-text-minilm",
        "onnxruntime",
        "cpu",
        "int8",
    )
    assert p.model_sha256 == encoder.manifest.model_sha256
    assert re.fullmatch(r"[0-9a-f]{64}", p.input_sha256)
    assert p.timings.inference_ms > 0 and p.timings.total_ms >= p.timings.inference_ms
    assert p.edgemed_version == edgemed.__version__


def test_respiratory_note_maps_to_respiratory_chapter(encoder: edgemed.Pipeline) -> None:
    assert (
        encoder("productive cough with fever and crackles at the lung base").nearest[0].code
        == "J00-J99"
    )


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
