"""Post-processing kernels vs SciPy/NumPy/OpenCV references, layouts, errors, threads."""

from __future__ import annotations

import threading
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import special

import edgemed
from edgemed import kernels


def _views(x: np.ndarray) -> list[np.ndarray]:
    """x itself, a transposed copy seen through .T (non-contiguous), and a strided slice."""
    return [x, np.ascontiguousarray(x.T).T, np.repeat(x, 2, axis=-1)[..., ::2]]


def test_softmax_and_sigmoid_match_scipy_on_views_and_axes() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((6, 5, 7)) * 30).astype(np.float32)
    for view in _views(x):
        for axis in (-1, 0, 1):
            ref = special.softmax(view.astype(np.float64), axis=axis)
            np.testing.assert_allclose(kernels.softmax(view, axis=axis), ref, rtol=0, atol=2e-7)
        got = kernels.sigmoid(view)
        ref = special.expit(view.astype(np.float64))
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-44)
        assert got.shape == view.shape and got.dtype == np.float32
    big = np.array([[1e4, 1e4 - 1, -1e4]], np.float32)  # a naive exp overflows
    np.testing.assert_allclose(
        kernels.softmax(big), special.softmax(big.astype(np.float64), 1), atol=1e-7
    )
    assert kernels.sigmoid(np.array([-200, 200], np.float32)).tolist() == [0.0, 1.0]


def test_topk_and_argmax_match_numpy_with_ties() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 6, (4, 9, 30)).astype(np.float32)  # many ties
    for view in _views(x):
        values, index = kernels.topk(view, 7)
        ref = np.argsort(-view, axis=-1, kind="stable")[..., :7]
        assert np.array_equal(index, ref)
        assert np.array_equal(values, np.take_along_axis(view, ref, axis=-1))
        assert np.array_equal(kernels.argmax(view), np.argmax(view, axis=-1))


def _np_nms(boxes: np.ndarray, scores: np.ndarray, thr: float, score_thr: float) -> list[int]:
    """Independent reference: vectorised IoU of the best remaining box against all the rest."""
    order = [i for i in np.argsort(-scores, kind="stable") if scores[i] > score_thr]
    keep: list[int] = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order:
        i, rest = order[0], np.array(order[1:], dtype=np.int64)
        keep.append(int(i))
        w = np.clip(
            np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]),
            0,
            None,
        )
        h = np.clip(
            np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]),
            0,
            None,
        )
        union = area[i] + area[rest] - w * h
        iou = np.divide(w * h, union, out=np.zeros_like(union), where=union > 0)
        order = [int(j) for j in rest[iou <= thr]]
    return keep


def _random_boxes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(1, 40, (n, 2))
    return np.hstack([xy, xy + wh]).astype(np.float32), rng.random(n).astype(np.float32)


@pytest.mark.parametrize("seed", range(5))
def test_nms_matches_numpy_reference_and_opencv(seed: int) -> None:
    rng = np.random.default_rng(seed)
    boxes, scores = _random_boxes(rng, 300)
    for thr, score_thr in [(0.5, 0.0), (0.3, 0.4), (0.7, 0.9)]:
        keep = kernels.nms(boxes, scores, thr, score_threshold=score_thr)
        assert keep.tolist() == _np_nms(boxes, scores, thr, score_thr)
        xywh = np.hstack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).astype(np.float64)
        ref = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), score_thr, thr)
        assert keep.tolist() == np.asarray(ref, dtype=np.int64).reshape(-1).tolist()
    assert (
        kernels.nms(boxes, scores, 0.5, max_detections=3).tolist()
        == _np_nms(boxes, scores, 0.5, -1)[:3]
    )
    assert kernels.nms(boxes[:0], scores[:0], 0.5).shape == (0,)


def _py_events(
    x: list[float], high: float, low: float, min_dur: int, min_gap: int
) -> list[tuple[int, int, int, float]]:
    """Reference as a sample-by-sample state machine (no shared code with the kernel)."""
    raw: list[list[int]] = []
    inside = False
    for i, v in enumerate(x):
        if not inside and v >= high:
            inside = True
            raw.append([i, len(x)])
        elif inside and v < low:
            inside = False
            raw[-1][1] = i
    merged: list[list[int]] = []
    for s, e in raw:
        if merged and s - merged[-1][1] < min_gap:
            merged[-1][1] = e
        else:
            merged.append([s, e])
    out = []
    for s, e in merged:
        if e - s >= min_dur:
            seg = x[s:e]
            p = s + seg.index(max(seg))
            out.append((s, e, p, x[p]))
    return out


@settings(max_examples=200, deadline=None)
@given(
    x=hnp.arrays(np.float32, st.integers(0, 60), elements=st.integers(-3, 12).map(float)),
    low=st.integers(-2, 8),
    span=st.integers(0, 5),
    min_dur=st.integers(0, 6),
    min_gap=st.integers(0, 6),
    step=st.integers(1, 3),
)
def test_detect_events_matches_reference(
    x: np.ndarray, low: int, span: int, min_dur: int, min_gap: int, step: int
) -> None:
    view = x[::step]
    ev = kernels.detect_events(view, low + span, low, min_duration=min_dur, min_gap=min_gap)
    got = list(
        zip(
            ev.start.tolist(),
            ev.end.tolist(),
            ev.peak_index.tolist(),
            ev.peak_value.tolist(),
            strict=True,
        )
    )
    assert got == _py_events(view.tolist(), low + span, low, min_dur, min_gap)


def test_detect_events_realistic_spo2_dips() -> None:
    """Desaturation-like events in a noisy 1 Hz trace: threshold on the drop below baseline."""
    rng = np.random.default_rng(3)
    drop = np.zeros(600, np.float32)
    for start, depth in [(60, 6.0), (200, 4.0), (400, 8.0)]:
        drop[start : start + 40] += depth * np.hanning(40).astype(np.float32)
    drop += rng.normal(0, 0.3, 600).astype(np.float32)
    ev = kernels.detect_events(drop, 3.0, 1.0, min_duration=10, min_gap=5)
    assert len(ev.start) == 3
    assert list(
        zip(
            ev.start.tolist(),
            ev.end.tolist(),
            ev.peak_index.tolist(),
            ev.peak_value.tolist(),
            strict=True,
        )
    ) == _py_events(drop.tolist(), 3.0, 1.0, 10, 5)


finite32 = st.floats(-1e4, 1e4, width=32)


@settings(max_examples=200, deadline=None)
@given(
    arr=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6),
        elements=finite32,
    ),
    step=st.sampled_from([1, 2, -1]),
    k=st.integers(1, 3),
)
def test_score_kernels_properties(arr: np.ndarray, step: int, k: int) -> None:
    x = arr[..., ::step]  # strided and reversed views, read in place
    ref = special.softmax(x.astype(np.float64), axis=-1) if x.size else x
    np.testing.assert_allclose(kernels.softmax(x), ref, atol=2e-7)
    np.testing.assert_allclose(
        kernels.sigmoid(x), special.expit(x.astype(np.float64)), rtol=1e-6, atol=1e-44
    )
    if x.shape[-1] == 0:
        with pytest.raises(edgemed.InputError, match="empty"):
            kernels.argmax(x)
    else:
        assert np.array_equal(kernels.argmax(x), np.argmax(x, axis=-1))
    if k > x.shape[-1]:
        with pytest.raises(edgemed.InputError, match="k must be"):
            kernels.topk(x, k)
    else:
        assert np.array_equal(
            kernels.topk(x, k)[1], np.argsort(-x, axis=-1, kind="stable")[..., :k]
        )


_FNS: dict[str, Any] = {
    "softmax": kernels.softmax,
    "sigmoid": kernels.sigmoid,
    "topk": lambda x: kernels.topk(x, 1),
    "argmax": kernels.argmax,
    "detect_events": lambda x: kernels.detect_events(x.reshape(-1), 1.0, 0.0),
}


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(sorted(_FNS)),
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5),
    bad=st.sampled_from([np.nan, np.inf, -np.inf]),
    data=st.data(),
)
def test_nan_and_inf_raise_input_error_naming_x(
    name: str, shape: tuple[int, ...], bad: float, data: Any
) -> None:
    x = np.zeros(shape, np.float32)
    x[tuple(data.draw(st.integers(0, n - 1)) for n in shape)] = bad
    with pytest.raises(edgemed.InputError, match="x: contains NaN or infinity"):
        _FNS[name](x)


@pytest.mark.parametrize("name", sorted(_FNS))
@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32])
def test_wrong_dtype_raises_input_error(name: str, dtype: type[np.generic]) -> None:
    with pytest.raises(edgemed.InputError, match="x: expected dtype float32"):
        _FNS[name](np.ones((2, 3), dtype))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: kernels.softmax(np.float32(1.0)), "x: expected at least 1"),
        (lambda: kernels.topk(np.float32(1.0), 1), "x: expected at least 1"),
        (
            lambda: kernels.detect_events(np.ones((2, 2), np.float32), 1, 0),
            r"x: expected shape \(n,\)",
        ),
        (
            lambda: kernels.nms(np.ones((3, 5), np.float32), np.ones(3, np.float32), 0.5),
            r"boxes: expected shape \(n, 4\)",
        ),
        (
            lambda: kernels.nms(np.ones(4, np.float32), np.ones(1, np.float32), 0.5),
            r"boxes: expected shape \(n, 4\)",
        ),
        (
            lambda: kernels.nms(np.ones((3, 4), np.float32), np.ones(2, np.float32), 0.5),
            "scores: expected shape",
        ),
        (
            lambda: kernels.nms(np.array([[2, 0, 1, 1]], np.float32), np.ones(1, np.float32), 0.5),
            "x1 <= x2",
        ),
        (
            lambda: kernels.nms(np.ones((1, 4), np.float32), np.full(1, np.nan, np.float32), 0.5),
            "scores: contains NaN",
        ),
        (
            lambda: kernels.nms(np.ones((1, 4), np.float32), np.ones(1, np.float32), 1.5),
            "iou_threshold",
        ),
        (lambda: kernels.detect_events(np.ones(3, np.float32), 1, 2), "low must be <= high"),
        (lambda: kernels.softmax(np.ones((2, 2), np.float32), axis=2), "axis"),
    ],
)
def test_bad_layouts_raise_input_error_naming_the_layout(call: Any, match: str) -> None:
    with pytest.raises(edgemed.InputError, match=match):
        call()


def test_nms_accepts_column_strided_boxes() -> None:
    boxes, scores = _random_boxes(np.random.default_rng(9), 50)
    wide = np.repeat(boxes, 2, axis=1)[:, ::2]  # inner stride 8 bytes
    assert kernels.nms(wide, scores, 0.5).tolist() == _np_nms(boxes, scores, 0.5, -1)


def test_post_kernels_two_threads_match_serial() -> None:
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal((200, 1000)).astype(np.float32) for _ in range(6)]
    boxes, scores = _random_boxes(rng, 2000)

    def work(x: np.ndarray) -> list[np.ndarray]:
        ev = kernels.detect_events(x[0], 1.0, 0.0, min_duration=2, min_gap=2)
        return [kernels.softmax(x), *kernels.topk(x, 5), kernels.nms(boxes, scores, 0.5), *ev]

    expected = [work(x) for x in xs]
    got: list[Any] = [None] * len(xs)

    def run(i: int) -> None:
        got[i] = work(xs[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e, g in zip(expected, got, strict=True):
        assert all(np.array_equal(a, b) for a, b in zip(e, g, strict=True))


def test_softmax_over_planes_matches_scipy_and_refuses_non_finite() -> None:
    """Axis 0 of a (C, H, W) map runs as whole-plane NumPy ufuncs, not strided rows."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((3, 64, 80)) * 10).astype(np.float32)
    ref = special.softmax(x.astype(np.float64), axis=0)
    np.testing.assert_allclose(kernels.softmax(x, axis=0), ref, rtol=0, atol=2e-7)
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[1, 2, 3] = bad
        with pytest.raises(edgemed.InputError, match="x: contains NaN or infinity"):
            kernels.softmax(y, axis=0)
