"""Native kernels against NumPy references, layouts, errors and threaded use."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edgemed
from edgemed import kernels


def _np_topk(q: np.ndarray, m: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    q64, m64 = q.astype(np.float64), m.astype(np.float64)
    sims = (q64 @ m64.T) / np.outer(np.linalg.norm(q64, axis=1), np.linalg.norm(m64, axis=1))
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]  # stable: ties keep lower index
    return order, np.take_along_axis(sims, order, axis=1)


@pytest.mark.parametrize(
    ("nq", "rows", "dim", "k"),
    [(1, 22, 384, 3), (7, 500, 64, 10), (3, 5, 1, 5), (1, 3000, 384, 10), (4, 20000, 64, 10)],
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
        (np.full((1, 4), np.nan, np.float32), np.ones((3, 4), np.float32), 1, "queries: .*NaN"),
        (
            np.ones((1, 4), np.float32),
            np.array([[1, 1, 1, 1], [1, np.inf, 1, 1]], np.float32),
            1,
            "matrix: .*NaN",
        ),
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


# --- int8 / float16 matrices ------------------------------------------------------------------


def _np_quantize(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = (np.abs(m).max(axis=1) / np.float32(127)).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1))
    return np.rint(m / safe[:, None]).astype(np.int8), scale


def _cosines(q: np.ndarray, m: np.ndarray) -> np.ndarray:
    q64, m64 = np.atleast_2d(q).astype(np.float64), m.astype(np.float64)
    qn, mn = np.linalg.norm(q64, axis=1), np.linalg.norm(m64, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sims = (q64 @ m64.T) / np.outer(qn, mn)
    return np.nan_to_num(sims, nan=0.0)


def test_quantize_rows_int8_matches_numpy_rint() -> None:
    rng = np.random.default_rng(4)
    m = rng.standard_normal((300, 96)).astype(np.float32)
    m[7] = 0.0
    q, scale = kernels.quantize_rows_int8(m[:, ::1])
    ref_q, ref_scale = _np_quantize(m)
    assert q.dtype == np.int8 and scale.dtype == np.float32
    assert np.array_equal(q, ref_q) and np.array_equal(scale, ref_scale)
    assert scale[7] == 0 and not q[7].any()
    err = np.abs(q * scale[:, None] - m).max(axis=1)
    assert np.all(err <= scale / 2 + 1e-6)  # half a step, plus float32 rounding of q * scale
    assert np.all(np.abs(q).max(axis=1)[scale > 0] == 127)  # the row maximum maps to +-127


@pytest.mark.parametrize("kind", ["int8", "fp16"])
def test_quantized_topk_matches_exact_cosine_of_stored_rows(kind: str) -> None:
    rng = np.random.default_rng(5)
    m = rng.standard_normal((3000, 384)).astype(np.float32)
    q = rng.standard_normal((5, 384)).astype(np.float32)
    if kind == "int8":
        stored: np.ndarray = kernels.quantize_rows_int8(m)[0]
        idx, score = kernels.cosine_topk_int8(q, stored, 10)
        tol = 5e-5  # the query is rounded to int16 inside the kernel
    else:
        stored = m.astype(np.float16)
        idx, score = kernels.cosine_topk_fp16(q, stored, 10)
        tol = 1e-6  # float32 accumulation
    sims = _cosines(q, stored)
    np.testing.assert_allclose(score, np.take_along_axis(sims, idx, axis=1), atol=tol)
    best = -np.sort(-sims, axis=1)[:, :10]
    np.testing.assert_allclose(score, best, atol=tol)  # nothing better was missed
    assert np.all(np.diff(score, axis=1) <= 0)


def _int8_reference(q: np.ndarray, m8: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The int8 kernel's arithmetic in NumPy: the query rounded to int16 (float32 multiply, round
    half to even), exact integer dots and norms, (dot * q_inv) * r_inv in double, then float32."""
    mult = np.float32(32767) / np.abs(q).max(axis=1, keepdims=True).astype(np.float32)
    q16 = np.clip(np.rint(q * mult), -32767, 32767).astype(np.int64)
    m64 = m8.astype(np.int64)
    q_inv = 1.0 / np.sqrt((q16 * q16).sum(axis=1).astype(np.float64))
    sumsq = (m64 * m64).sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore"):
        r_inv = np.where(sumsq > 0, 1.0 / np.sqrt(sumsq), 0.0)
    scores = ((q16 @ m64.T).astype(np.float64) * q_inv[:, None] * r_inv).astype(np.float32)
    order = np.lexsort((np.broadcast_to(np.arange(len(m8)), scores.shape), -scores), axis=1)[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


@pytest.mark.parametrize("dim", [384, 100, 4200])
def test_int8_topk_is_bit_identical_to_its_arithmetic_in_numpy(dim: int) -> None:
    """Every path (VNNI, AVX2, portable; the shortcut that skips rows below the k-th without a
    square root) gives the same indices and score bits as the plain arithmetic, with duplicate
    rows, near-ties, negated and zero rows, and a dim past one 4,096-element integer block."""
    rng = np.random.default_rng(dim)
    base = _embedding_like(rng, 6000, dim)
    m8 = kernels.quantize_rows_int8(base)[0]
    m8[100:140] = m8[0:40]  # exact ties: the lower index first
    m8[200] = -m8[1]
    m8[300] = 0
    q = np.concatenate(
        [base[:3] + 0.01 * rng.standard_normal((3, dim)).astype(np.float32), -base[3:4]]
    ).astype(np.float32)
    for k in (1, 10, 60):
        idx, score = kernels.cosine_topk_int8(q, m8, k)
        for i in range(len(q)):  # one query at a time too: the shortcut is for one query
            one_idx, one_score = kernels.cosine_topk_int8(q[i], m8, k)
            assert np.array_equal(one_idx[0], idx[i]) and np.array_equal(one_score[0], score[i])
        ref_idx, ref_score = _int8_reference(q, m8, k)
        assert np.array_equal(idx, ref_idx)
        assert np.array_equal(score, ref_score)


def _recall(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(x, y)) / len(x) for x, y in zip(a, b, strict=True)]))


def _embedding_like(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """Anisotropic, clustered rows: a shared mean direction plus 50 topics, like sentence embeddings."""
    mean = rng.standard_normal(dim)
    topics = rng.standard_normal((50, dim))
    x = 2 * mean + topics[rng.integers(0, 50, n)] + 0.6 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("data", ["random", "embedding_like"])
def test_quantized_recall_at_10_vs_float32(data: str) -> None:
    rng = np.random.default_rng(6)
    if data == "random":
        m = rng.standard_normal((20000, 384)).astype(np.float32)
        q = rng.standard_normal((20, 384)).astype(np.float32)
    else:
        both = _embedding_like(rng, 20020, 384)
        m, q = both[:20000], both[20000:]
    exact, exact_score = _np_topk(q, m, 10)
    i8, s8 = kernels.cosine_topk_int8(q, kernels.quantize_rows_int8(m)[0], 10)
    f16, s16 = kernels.cosine_topk_fp16(q, m.astype(np.float16), 10)
    assert _recall(i8, exact) >= 0.95 and _recall(f16, exact) >= 0.99
    assert np.abs(s8 - exact_score).max() < 2e-3 and np.abs(s16 - exact_score).max() < 2e-4


def test_quantized_topk_ties_zero_rows_and_views() -> None:
    m = np.array([[100, 0], [0, 0], [50, 0], [-127, 0]], dtype=np.int8)
    idx, score = kernels.cosine_topk_int8(np.array([2, 0], np.float32), m, 4)
    assert idx.tolist() == [[0, 2, 1, 3]] and score.tolist() == [[1.0, 1.0, 0.0, -1.0]]
    idx, score = kernels.cosine_topk_fp16(np.array([2, 0], np.float32), m.astype(np.float16), 4)
    assert idx.tolist() == [[0, 2, 1, 3]] and score.tolist() == [[1.0, 1.0, 0.0, -1.0]]
    for fn, mat in [
        (kernels.cosine_topk_int8, m),
        (kernels.cosine_topk_fp16, m.astype(np.float16)),
    ]:
        idx, score = fn(np.zeros((0, 2), np.float32), mat, 2)  # no queries: empty results
        assert idx.shape == (0, 2) and score.shape == (0, 2)
    big = np.random.default_rng(7).integers(-127, 128, (40, 48)).astype(np.int8)
    view = big[::2, :32]  # row-strided view: used in place
    idx, score = kernels.cosine_topk_int8(view[:3].astype(np.float32), view, 4)
    ref_idx, ref_score = _np_topk(view[:3].astype(np.float32), view.astype(np.float32), 4)
    assert np.array_equal(idx, ref_idx)
    np.testing.assert_allclose(score, ref_score, atol=5e-5)


@pytest.mark.parametrize(
    ("fn", "matrix", "match"),
    [
        (kernels.cosine_topk_int8, np.ones((3, 4), np.float32), "int8"),
        (kernels.cosine_topk_fp16, np.ones((3, 4), np.int8), "float16"),
        (kernels.cosine_topk_int8, np.ones((3, 4, 1), np.int8), r"\(rows, dim\)"),
        (kernels.cosine_topk_fp16, np.full((3, 4), np.inf, np.float16), "NaN or infinity"),
        (kernels.cosine_topk_fp16, np.full((3, 4), np.nan, np.float16), "NaN or infinity"),
        (kernels.cosine_topk_int8, np.ones((4, 4), np.int8).T[::2], "contiguous"),
    ],
)
def test_quantized_topk_rejects_bad_inputs(fn: Any, matrix: np.ndarray, match: str) -> None:
    with pytest.raises(edgemed.InputError, match=match):
        fn(np.ones((1, 4), np.float32), matrix, 1)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.integers(0, 40),
    dim=st.integers(0, 20),
    k=st.integers(0, 5),
    step=st.integers(1, 3),
    kind=st.sampled_from(["f32", "int8", "fp16"]),
    seed=st.integers(0, 2**16),
)
def test_topk_properties_never_crash(
    rows: int, dim: int, k: int, step: int, kind: str, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((rows * step, dim)).astype(np.float32)[::step]
    matrix: np.ndarray = {
        "f32": base,
        "int8": np.rint(np.clip(base * 40, -127, 127)).astype(np.int8),
        "fp16": base.astype(np.float16),
    }[kind]
    fn = {"f32": kernels.cosine_topk, "int8": kernels.cosine_topk_int8}.get(
        kind, kernels.cosine_topk_fp16
    )
    q = rng.standard_normal((2, dim)).astype(np.float32)
    if dim == 0 or not 1 <= k <= rows:
        with pytest.raises(edgemed.InputError):
            fn(q, matrix, k)
        return
    idx, score = fn(q, matrix, k)
    sims = _cosines(q, matrix)
    np.testing.assert_allclose(score, np.take_along_axis(sims, idx, axis=1), atol=1e-4)
    assert all(len(set(r)) == k for r in idx.tolist())


def test_quantized_topk_two_threads_match_serial() -> None:
    rng = np.random.default_rng(8)
    m8 = kernels.quantize_rows_int8(rng.standard_normal((20000, 128)).astype(np.float32))[0]
    m16 = rng.standard_normal((20000, 128)).astype(np.float16)
    qs = [rng.standard_normal((3, 128)).astype(np.float32) for _ in range(6)]
    calls = [(kernels.cosine_topk_int8, m8), (kernels.cosine_topk_fp16, m16)]
    expected = [fn(q, m, 5) for q in qs for fn, m in calls]
    got: list[Any] = [None] * len(expected)

    def run(i: int) -> None:
        fn, m = calls[i % 2]
        got[i] = fn(qs[i // 2], m, 5)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(expected))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (ei, es), (gi, gs) in zip(expected, got, strict=True):
        assert np.array_equal(ei, gi) and np.array_equal(es, gs)


@settings(max_examples=100, deadline=None)
@given(
    kind=st.sampled_from(["f32", "fp16"]),
    where=st.sampled_from(["queries", "matrix"]),
    bad=st.sampled_from([np.nan, np.inf, -np.inf]),
    rows=st.integers(1, 30),
    data=st.data(),
)
def test_nan_or_inf_anywhere_raises_input_error_naming_the_argument(
    kind: str, where: str, bad: float, rows: int, data: Any
) -> None:
    q = np.ones((2, 6), np.float32)
    m = np.ones((rows, 6), np.float32)
    target = q if where == "queries" else m
    target[data.draw(st.integers(0, len(target) - 1)), data.draw(st.integers(0, 5))] = bad
    fn = kernels.cosine_topk if kind == "f32" else kernels.cosine_topk_fp16
    with pytest.raises(edgemed.InputError, match=f"{where}: contains NaN or infinity"):
        fn(q, m if kind == "f32" else m.astype(np.float16), 1)


def _awkward_rows(rng: np.random.Generator, q: np.ndarray, rows: int) -> np.ndarray:
    """Rows with zero, duplicate, tiny (float32 squares underflow) and huge (overflow) ones."""
    m = rng.standard_normal((rows, q.shape[1])).astype(np.float32)
    m[5] = 0
    m[7] = m[3]
    m[9] *= 1e-20
    m[11] *= 1e20
    m[13] = q[0] * 3  # the best match of the first query, duplicated below
    m[14] = q[0]
    return m


@pytest.mark.parametrize(
    ("nq", "rows", "stride", "dim"),
    [(4, 401, 1, 48), (5, 400, 1, 37), (8, 1001, 2, 48), (11, 999, 2, 21), (6, 101, 1, 5),
     (9, 6001, 1, 48)],
)  # fmt: skip
def test_cosine_topk_queries_scored_four_at_a_time_equal_one_at_a_time(
    nq: int, rows: int, stride: int, dim: int
) -> None:
    """The kernel scores two rows against four queries at a time, the rest one by one: every
    query's result is that of the query alone (the one-query loop), for odd row counts, strided
    row views, dims that are no multiple of the vector width, awkward rows and rows split
    between two threads (9 x 6001), with and without normalized=True."""
    from edgemed._kernels import cosine_topk as native_topk

    rng = np.random.default_rng(nq * rows)
    q = rng.standard_normal((nq, dim)).astype(np.float32)
    m = np.repeat(_awkward_rows(rng, q, rows), stride, axis=0)[::stride]
    for matrix, unit in ((m, False), (kernels.l2_normalize(m), True)):
        matrix[9] = 0 if unit else matrix[9]  # too small to normalise: unit rows are unit or 0
        idx, score = native_topk(q, matrix, 10, unit)
        for i in range(nq):
            one_idx, one_score = native_topk(q[i : i + 1], matrix, 10, unit)
            assert np.array_equal(idx[i], one_idx[0])
            np.testing.assert_array_equal(score[i], one_score[0])
        with np.errstate(invalid="ignore"):  # the zero row's 0/0: NaN, last in the order
            ref_score = _np_topk(q, matrix, 10)[1]
        np.testing.assert_allclose(score, ref_score, rtol=0, atol=1e-6)  # (13 and 14 may swap)
    with pytest.raises(ValueError, match="unit-norm"):
        native_topk(q, m, 10, True)
    m[rows - 1, 3] = np.nan  # the last row of an odd count is scored in a pair with itself
    with pytest.raises(ValueError, match="NaN"):
        native_topk(q, m, 10, False)


@pytest.mark.parametrize(
    ("nq", "rows", "dim", "k"), [(4, 20000, 64, 10), (5, 16000, 64, 40), (64, 1100, 64, 10)]
)
def test_cosine_topk_blas_path_equals_the_native_kernel(
    nq: int, rows: int, dim: int, k: int
) -> None:
    """Many queries over a large matrix go through BLAS + exact re-scoring: same indices and
    scores as the kernel's own float32 pass + re-scoring, with zero, duplicate, tiny (float32
    squares underflow) and huge (overflow) rows."""
    from edgemed._kernels import cosine_topk as native_topk
    from edgemed.kernels.search import _blas_topk

    rng = np.random.default_rng(rows)
    q = rng.standard_normal((nq, dim)).astype(np.float32)
    m = _awkward_rows(rng, q, rows)
    idx, score = native_topk(q, m, k)
    got_idx, got_score = _blas_topk(q, m, k, normalized=False)
    assert np.array_equal(got_idx, idx)
    np.testing.assert_allclose(got_score, score, rtol=0, atol=6e-8)
    if nq >= 64:  # the public call takes this path for this many queries and this much work
        assert nq * m.size >= 1 << 22
        assert np.array_equal(kernels.cosine_topk(q, m, k)[0], idx)
    unit = kernels.l2_normalize(m)
    unit[9] = 0  # l2_normalize leaves a row this small as it is; normalized=True needs unit or 0
    idx, score = native_topk(q, unit, k)
    got_idx, got_score = _blas_topk(q, unit, k, normalized=True)
    assert np.array_equal(native_topk(q, unit, k, True)[0], idx)
    assert np.array_equal(got_idx, idx)
    np.testing.assert_allclose(got_score, score, rtol=0, atol=6e-8)
    with pytest.raises(edgemed.InputError, match="unit-norm"):
        _blas_topk(q, m, k, normalized=True)
    m[100, 3] = np.nan
    with pytest.raises(edgemed.InputError, match="matrix: contains NaN"):
        _blas_topk(q, m, k, normalized=False)
