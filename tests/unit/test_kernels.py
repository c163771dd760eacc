"""Native kernels against NumPy references, layouts, errors and threaded use."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import edgemed
from edgemed import kernels


def _np_topk(q: np.ndarray, m: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    q64, m64 = q.astype(np.float64), m.astype(np.float64)
    sims = (q64 @ m64.T) / np.outer(np.linalg.norm(q64, axis=1), np.linalg.norm(m64, axis=1))
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]  # stable: ties keep lower index
    return order, np.take_along_axis(sims, order, axis=1)


@pytest.mark.parametrize(
    ("nq", "rows", "dim", "k"), [(1, 22, 384, 3), (7, 500, 64, 10), (3, 5, 1, 5)]
)
def test_cosine_topk_matches_numpy(nq: int, rows: int, dim: int, k: int) -> None:
    rng = np.random.default_rng(nq * 1000 + rows)
    q = rng.standard_normal((nq, dim)).astype(np.float32)
    m = rng.standard_normal((rows, dim)).astype(np.float32)
    idx, score = kernels.cosine_topk(q, m, k)
    ref_idx, ref_score = _np_topk(q, m, k)
    assert idx.dtype == np.int64 and score.dtype == np.float32 and idx.shape == (nq, k)
    np.testing.assert_allclose(score, ref_score, rtol=0, atol=1e-6)
    assert np.array_equal(idx, ref_idx)


def test_cosine_topk_ties_and_zero_rows() -> None:
    m = np.array([[1, 0], [0, 0], [1, 0], [-1, 0]], dtype=np.float32)
    idx, score = kernels.cosine_topk(np.array([2, 0], dtype=np.float32), m, 4)
    assert idx.tolist() == [[0, 2, 1, 3]]
    assert score.tolist() == [[1.0, 1.0, 0.0, -1.0]]


def test_cosine_topk_accepts_row_strided_views_without_copy() -> None:
    rng = np.random.default_rng(1)
    big = rng.standard_normal((40, 48)).astype(np.float32)
    view = big[::2, :32]  # every other row, first 32 columns: rows are still contiguous
    assert not view.flags.c_contiguous
    idx, score = kernels.cosine_topk(view[:3], view, 4)
    ref_idx, ref_score = _np_topk(view[:3], view, 4)
    assert np.array_equal(idx, ref_idx)
    np.testing.assert_allclose(score, ref_score, atol=1e-6)


def test_l2_normalize_matches_numpy_and_works_in_place() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((50, 384)).astype(np.float32) * 7
    ref = x / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    out = kernels.l2_normalize(x)
    np.testing.assert_allclose(out, ref, atol=2e-7)
    assert not np.shares_memory(out, x)
    same = kernels.l2_normalize(x, out=x)
    assert np.shares_memory(same, x)  # zero-copy path
    np.testing.assert_allclose(x, ref, atol=2e-7)
    zero = kernels.l2_normalize(np.zeros(8, dtype=np.float32))
    assert zero.shape == (8,) and not zero.any()


@pytest.mark.parametrize(
    ("queries", "matrix", "k", "match"),
    [
        (np.ones((1, 4)), np.ones((3, 4), np.float32), 1, "float32"),
        (np.ones((1, 4), np.float32), np.ones((3, 5), np.float32), 1, "dim"),
        (np.ones((1, 4), np.float32), np.ones((3, 4), np.float32), 4, "k must be"),
        (np.ones((1, 4), np.float32), np.ones((3, 4), np.float32), 0, "k must be"),
        (np.ones((1, 1, 4), np.float32), np.ones((3, 4), np.float32), 1, "shape"),
        (np.full((1, 4), np.nan, np.float32), np.ones((3, 4), np.float32), 1, "NaN"),
        (np.ones((4, 4), np.float32).T[::2], np.ones((3, 4), np.float32), 1, "contiguous"),
    ],
)
def test_cosine_topk_rejects_bad_layouts(
    queries: np.ndarray, matrix: np.ndarray, k: int, match: str
) -> None:
    with pytest.raises(edgemed.InputError, match=match):
        kernels.cosine_topk(queries, matrix, k)


def test_kernels_release_the_gil_and_are_thread_safe() -> None:
    rng = np.random.default_rng(3)
    m = rng.standard_normal((2000, 384)).astype(np.float32)
    qs = [rng.standard_normal((4, 384)).astype(np.float32) for _ in range(8)]
    expected = [kernels.cosine_topk(q, m, 5)[0] for q in qs]
    got: dict[int, np.ndarray] = {}

    def run(i: int) -> None:
        got[i] = kernels.cosine_topk(qs[i], m, 5)[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(qs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(got[i], expected[i]) for i in range(len(qs)))
