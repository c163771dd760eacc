"""The text model's embedding alone: ``TextQuery(text, nearest=False)`` skips the label search."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import edgemed
from edgemed.results.base import check_contract

NOTE = "chest pain radiating to the left arm, worse on exertion"


@pytest.fixture(scope="module")
def encoder() -> Iterator[edgemed.Pipeline]:
    with edgemed.load("clinical-text-minilm", backend="onnxruntime", threads=1) as pipe:
        yield pipe


def test_embedding_alone_equals_the_full_call_without_the_search(
    encoder: edgemed.Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = encoder(NOTE)
    from edgemed import kernels

    def no_search(*args: object, **kwargs: object) -> None:
        raise AssertionError("the label search ran")

    monkeypatch.setattr(kernels, "cosine_topk_int8", no_search)
    alone = encoder(edgemed.TextQuery(NOTE, nearest=False))
    assert np.array_equal(alone.embedding, full.embedding)
    assert alone.nearest == () and full.nearest
    assert alone.suggestion is None and alone.assertion is None and not alone.abstained
    assert (alone.n_tokens, alone.truncated) == (full.n_tokens, full.truncated)
    p, q = alone.provenance, full.provenance
    assert p.input_sha256 == q.input_sha256 and p.model_sha256 == q.model_sha256
    body = check_contract(alone)  # the contract still holds, and is still checked
    assert body["nearest"] == [] and "suggestion" not in body


def test_text_query_defaults_to_the_full_call(encoder: edgemed.Pipeline) -> None:
    got, ref = encoder(edgemed.TextQuery(NOTE)), encoder(NOTE)
    assert [n.code for n in got.nearest] == [n.code for n in ref.nearest]
    assert encoder(edgemed.TextQuery(NOTE.encode("utf-8"), nearest=False)).nearest == ()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: edgemed.TextQuery(NOTE, nearest=0), "nearest must be True or False"),  # type: ignore[arg-type]
        (lambda: edgemed.TextQuery("   ", nearest=False), "empty"),
        (lambda: edgemed.TextQuery(42, nearest=False), "expected text"),  # type: ignore[arg-type]
    ],
)
def test_text_query_refuses_bad_input(encoder: edgemed.Pipeline, make: object, match: str) -> None:
    with pytest.raises(edgemed.InputError, match=match):
        encoder(make())  # type: ignore[operator]
