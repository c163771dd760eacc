"""OCR kernels against rapidocr's own post-processing on the same real PP-OCRv4 model outputs."""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edgemed
from edgemed import kernels

rapidocr = pytest.importorskip("rapidocr_onnxruntime")
ort = pytest.importorskip("onnxruntime")
from rapidocr_onnxruntime.ch_ppocr_det.utils import DBPostProcess, DetPreProcess  # noqa: E402
from rapidocr_onnxruntime.ch_ppocr_rec.utils import CTCLabelDecode  # noqa: E402

MODELS = Path(rapidocr.__file__).parent / "models"
SKIMAGE_DATA = Path(pytest.importorskip("skimage").__file__).parent / "data"
VITALS = ["HR 72", "SpO2 97", "NIBP 120/80", "RR 16", "T 36.8", "etCO2 35", "PR 71", "ST -0.1"]


def monitor_screen(seed: int) -> np.ndarray:
    """A patient-monitor-like frame: dark background, coloured vital signs at random places."""
    rng = np.random.default_rng(seed)
    img = np.empty((480, 640, 3), np.uint8)
    img[:] = rng.integers(0, 50, 3)
    for i, text in enumerate(rng.permutation(VITALS)[:6]):
        colour = tuple(int(c) for c in rng.integers(90, 256, 3))
        org = (int(rng.integers(5, 330)), int(45 + 75 * i + rng.integers(0, 20)))
        font = [cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX][i % 2]
        cv2.putText(img, str(text), org, font, float(rng.uniform(0.7, 1.8)), colour, 2)
    return img


def photo(name: str) -> np.ndarray:
    img = cv2.imread(str(SKIMAGE_DATA / name), cv2.IMREAD_COLOR)
    assert img is not None, name
    return img


@cache
def _session(name: str) -> Any:
    return ort.InferenceSession(str(MODELS / name), providers=["CPUExecutionProvider"])


def det_prob_map(img: np.ndarray) -> np.ndarray:
    """rapidocr's detector preprocessing + PP-OCRv4 det model -> (1, 1, H, W) probabilities."""
    x = DetPreProcess(736, "min", [0.5] * 3, [0.5] * 3)(img)
    sess = _session("ch_PP-OCRv4_det_infer.onnx")
    return np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[0])


def _match(ours: np.ndarray, ref: np.ndarray) -> list[int]:
    """For each reference box, the index of our box with the closest corners."""
    return [int(np.argmin(np.abs(ours - r).reshape(len(ours), -1).max(axis=1))) for r in ref]


IMAGES = [("screen", s) for s in range(6)] + [("photo", "page.png"), ("photo", "text.png")]


@pytest.mark.parametrize(("kind", "which"), IMAGES)
def test_db_boxes_match_rapidocr_on_real_model_output(kind: str, which: Any) -> None:
    img = monitor_screen(which) if kind == "screen" else photo(which)
    pred = det_prob_map(img)
    ref_boxes, ref_scores = DBPostProcess(0.3, 0.5, 1000, 1.6, "fast", True)(pred, img.shape[:2])
    boxes, scores = kernels.db_boxes(pred[0, 0], dest_size=img.shape[:2])
    assert len(ref_boxes) > 0 and boxes.shape == (len(ref_boxes), 4, 2)
    pairs = _match(boxes, ref_boxes)
    assert sorted(pairs) == list(range(len(boxes)))  # one-to-one
    corner_err = max(np.abs(boxes[j] - r).max() for j, r in zip(pairs, ref_boxes, strict=True))
    score_errs = np.array([abs(scores[j] - s) for j, s in zip(pairs, ref_scores, strict=True)])
    assert corner_err <= 2  # measured: <= 1 px on every image here
    # Scores agree to float32 rounding, except where OpenCV's float32 minAreaRect puts an
    # axis-aligned corner at 173.99998 instead of 174: its score window then starts one pixel
    # row higher (seen on 2 of ~50 boxes, error 5e-4 and 5e-3).
    assert np.sum(score_errs > 1e-6) <= 1 and score_errs.max() < 1e-2


def _rec_model() -> tuple[Any, list[str]]:
    sess = _session("ch_PP-OCRv4_rec_infer.onnx")
    return sess, sess.get_modelmeta().custom_metadata_map["character"].splitlines()


def rec_probs(crops: list[np.ndarray]) -> np.ndarray:
    """rapidocr's recogniser preprocessing (one batch) + PP-OCRv4 rec -> (batch, T, C) probs."""
    from types import SimpleNamespace

    from rapidocr_onnxruntime.ch_ppocr_rec.text_recognize import TextRecognizer

    shape = SimpleNamespace(rec_image_shape=[3, 48, 320])
    max_ratio = max(320 / 48, *(c.shape[1] / c.shape[0] for c in crops))
    batch = np.stack([TextRecognizer.resize_norm_img(shape, c, max_ratio) for c in crops])  # type: ignore[arg-type]
    sess, _ = _rec_model()
    return np.asarray(sess.run(None, {sess.get_inputs()[0].name: batch.astype(np.float32)})[0])


@pytest.mark.parametrize("seed", range(3))
def test_ctc_decode_matches_rapidocr_on_real_recognition_output(seed: int) -> None:
    img = monitor_screen(seed)
    boxes, _ = kernels.db_boxes(det_prob_map(img)[0, 0], dest_size=img.shape[:2])
    crops = [img[b[:, 1].min() : b[:, 1].max(), b[:, 0].min() : b[:, 0].max()] for b in boxes]
    probs = rec_probs(crops)
    _, chars = _rec_model()
    ref = CTCLabelDecode(character=list(chars))(probs)
    got = kernels.ctc_greedy_decode(probs, kernels.ppocr_charset(chars))
    assert [t for t, _ in got] == [t for t, _ in ref]
    np.testing.assert_allclose([c for _, c in got], [c for _, c in ref], rtol=0, atol=1e-6)
    # Really read the screen. Spaces are left out: whether PP-OCRv4 emits one between "HR" and
    # "72" differs by CPU (read "HR72" on an AMX Xeon, "HR 72" on an AVX2 EPYC).
    assert {"HR72", "SpO297", "NIBP120/80"} & {t.replace(" ", "") for t, _ in got}


@settings(max_examples=200, deadline=None)
@given(
    batch=st.integers(0, 3),
    steps=st.integers(0, 12),
    classes=st.integers(3, 6),
    seed=st.integers(0, 2**16),
    step=st.sampled_from([1, 2]),
)
def test_ctc_decode_matches_rapidocr_on_random_probs(
    batch: int, steps: int, classes: int, seed: int, step: int
) -> None:
    rng = np.random.default_rng(seed)
    # Few distinct values: many argmax ties and repeats; a class step of 2 is a strided view.
    probs = rng.integers(0, 4, (batch, steps, classes * step)).astype(np.float32)[..., ::step] / 4
    chars = [chr(ord("a") + i) for i in range(classes - 2)]
    got = kernels.ctc_greedy_decode(probs, kernels.ppocr_charset(chars))  # blank, a.., space
    if batch:
        ref = CTCLabelDecode(character=[*chars])(np.asarray(probs))
        assert [t for t, _ in got] == [t for t, _ in ref]
        np.testing.assert_allclose([c for _, c in got], [c for _, c in ref], atol=1e-12)
    else:
        assert got == []


def test_ctc_decode_known_answer() -> None:
    # steps: a a blank a b b -> "aab"; all-blank item -> ("", 0.0)
    idx = [[1, 1, 0, 1, 2, 2], [0, 0, 0, 0, 0, 0]]
    probs = np.full((2, 6, 3), 0.1, np.float32)
    for b, row in enumerate(idx):
        for t, c in enumerate(row):
            probs[b, t, c] = 0.5 + 0.05 * t
    got = kernels.ctc_greedy_decode(probs, ["-", "a", "b"])
    assert got[0][0] == "aab" and got[1] == ("", 0.0)
    kept = np.float32([0.5, 0.65, 0.7]).astype(np.float64)  # steps 0, 3 and 4
    assert got[0][1] == pytest.approx(kept.mean(), abs=1e-12)


def test_unclip_by_pyclipper_is_the_rectangle_grown_by_the_offset() -> None:
    """The claim db_boxes relies on, checked with rapidocr's own tools on random rectangles."""
    pyclipper = pytest.importorskip("pyclipper")
    rng = np.random.default_rng(7)
    for _ in range(200):
        w, h = rng.uniform(4, 300), rng.uniform(4, 60)
        rect = ((rng.uniform(50, 500), rng.uniform(50, 500)), (w, h), rng.uniform(-90, 90))
        box = np.trunc(cv2.boxPoints(rect))  # pyclipper truncates to integers
        (tw, th) = cv2.minAreaRect(box.astype(np.float32))[1]
        d = w * h * 1.6 / (2 * (w + h))
        off = pyclipper.PyclipperOffset()
        off.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
        grown = np.array(off.Execute(d)).reshape(-1, 2).astype(np.float32)
        gw, gh = cv2.minAreaRect(grown)[1]
        # pyclipper rounds its output vertices to integers: each side may move by up to 0.5 px
        # along each axis, so a rotated side by up to 0.71 px and a width by up to 1.42 px.
        assert sorted([gw, gh]) == pytest.approx(sorted([tw + 2 * d, th + 2 * d]), abs=1.42)


def _blob_map(rng: np.random.Generator) -> np.ndarray:
    """Rotated text-line-like blobs, one per quadrant, like a DB probability map.

    Kept apart, clear of the border and well above box_thresh: merged regions, border cuts and
    borderline scores are covered by the real-image tests above (see db_boxes for why a score
    near box_thresh may fall on the other side of it in rapidocr).
    """
    prob = np.zeros((200, 280), np.float32)
    for cy, cx in [(50, 70), (50, 210), (150, 70), (150, 210)][: rng.integers(1, 5)]:
        centre = (cx + rng.uniform(-10, 10), cy + rng.uniform(-10, 10))
        rect = (centre, (rng.uniform(8, 90), rng.uniform(6, 25)), rng.uniform(-30, 30))
        cv2.fillPoly(prob, [cv2.boxPoints(rect).astype(np.int32)], float(rng.uniform(0.8, 1.0)))
    return prob


# Derandomized: CI draws the same examples every run. A search of seeds 0-7999 (both dilation
# settings) finds two maps where a corner differs from rapidocr's by 3 px: seeds 1839 (no
# dilation) and 2279 (dilation). Both are near-square blobs (about 19 x 18 px, offset by ~7 px
# on every side), and the cause is known: db_boxes grows the minimum-area rectangle of the
# truncated box by the offset distance, which is exact for a rectangle; truncation to integers
# skews a small box by up to a pixel per corner, and for a near-square one the minimum-area
# rectangle of the rounded, offset polygon rapidocr builds (pyclipper, integer vertices) then
# lies a few degrees from it (ours -24.3 deg, rapidocr's -27.3 deg at seed 1839). Text lines
# are elongated, where the two agree; matching exactly would mean reproducing pyclipper's arcs.
@settings(max_examples=60, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**16), dilate=st.booleans())
def test_db_boxes_match_rapidocr_on_synthetic_maps(seed: int, dilate: bool) -> None:
    prob = _blob_map(np.random.default_rng(seed))
    # Scale 1: OpenCV's float32 minAreaRect puts integer corners at e.g. 256.99998, which
    # pyclipper truncates to 256; that 1 px grows with any upscaling to the destination.
    dest = (200, 280)
    ref_boxes, _ = DBPostProcess(0.3, 0.5, 1000, 1.6, "fast", dilate)(prob[None, None], dest)
    boxes, _ = kernels.db_boxes(prob, dest_size=dest, use_dilation=dilate)
    assert len(boxes) == len(ref_boxes)  # 3,000 seeds checked once; all agree
    for j, ref in zip(_match(boxes, ref_boxes), ref_boxes, strict=True):
        shift = min(range(4), key=lambda k: np.abs(np.roll(boxes[j], k, axis=0) - ref).max())
        assert np.abs(np.roll(boxes[j], shift, axis=0) - ref).max() <= 2
        # rapidocr starts at the upper of the two left-most corners: when the second and third
        # corners by x are within a pixel, sub-pixel differences may pick the other one.
        xs = np.sort(ref[:, 0])
        assert shift == 0 or xs[2] - xs[1] <= 1


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: kernels.db_boxes(np.zeros((2, 3, 4), np.float32), dest_size=(4, 4)),
            r"prob_map: expected shape \(height, width\)",
        ),
        (
            lambda: kernels.db_boxes(np.zeros((4, 4)), dest_size=(4, 4)),
            "prob_map: expected dtype float32",
        ),
        (
            lambda: kernels.db_boxes(np.full((4, 4), np.nan, np.float32), dest_size=(4, 4)),
            "prob_map: contains NaN",
        ),
        (
            lambda: kernels.db_boxes(np.zeros((4, 8), np.float32)[:, ::2], dest_size=(4, 4)),
            "contiguous",
        ),
        (lambda: kernels.db_boxes(np.zeros((4, 4), np.float32), dest_size=(0, 4)), "dest_size"),
        (
            lambda: kernels.ctc_greedy_decode(np.zeros((2, 3), np.float32), ["a"]),
            r"probs: expected shape \(batch, steps, classes\)",
        ),
        (
            lambda: kernels.ctc_greedy_decode(np.zeros((1, 2, 3), np.float32), ["a", "b"]),
            "charset: expected one entry per class",
        ),
        (
            lambda: kernels.ctc_greedy_decode(np.zeros((1, 2, 2), np.float32), ["a", "b"], blank=2),
            "blank",
        ),
        (
            lambda: kernels.ctc_greedy_decode(np.full((1, 2, 2), np.inf, np.float32), ["a", "b"]),
            "probs: contains NaN",
        ),
        (
            lambda: kernels.ctc_greedy_decode(np.zeros((1, 2, 2), np.int64), ["a", "b"]),
            "probs: expected dtype float32",
        ),
    ],
)
def test_ocr_bad_inputs_raise_input_error(call: Any, match: str) -> None:
    with pytest.raises(edgemed.InputError, match=match):
        call()


def test_db_boxes_empty_and_blank_maps() -> None:
    for shape in [(0, 5), (5, 0), (32, 32)]:
        boxes, scores = kernels.db_boxes(np.zeros(shape, np.float32), dest_size=(64, 64))
        assert boxes.shape == (0, 4, 2) and scores.shape == (0,)


def test_ocr_kernels_two_threads_match_serial() -> None:
    maps = [_blob_map(np.random.default_rng(i)) for i in range(6)]
    expected = [kernels.db_boxes(m, dest_size=(320, 448)) for m in maps]
    got: list[Any] = [None] * len(maps)

    def run(i: int) -> None:
        got[i] = kernels.db_boxes(maps[i], dest_size=(320, 448))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(maps))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (eb, es), (gb, gs) in zip(expected, got, strict=True):
        assert np.array_equal(eb, gb) and np.array_equal(es, gs)


@settings(max_examples=100, deadline=None)
@given(
    which=st.sampled_from(["probs", "prob_map"]),
    bad=st.sampled_from([np.nan, np.inf, -np.inf]),
    shape=st.tuples(st.integers(1, 4), st.integers(1, 9), st.integers(1, 9)),
    data=st.data(),
)
def test_nan_or_inf_anywhere_raises_input_error(
    which: str, bad: float, shape: tuple[int, int, int], data: Any
) -> None:
    x = np.zeros(shape if which == "probs" else shape[1:], np.float32)
    x[tuple(data.draw(st.integers(0, n - 1)) for n in x.shape)] = bad
    with pytest.raises(edgemed.InputError, match=f"{which}: contains NaN or infinity"):
        if which == "probs":
            kernels.ctc_greedy_decode(x, [str(i) for i in range(shape[2])])
        else:
            kernels.db_boxes(x, dest_size=(10, 10))
