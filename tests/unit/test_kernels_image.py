"""Image kernels against OpenCV + NumPy on random and real images, strided views, DICOM windows.

Tolerance: OpenCV resizes uint8 in 11-bit fixed point and rounds its result to uint8 (up to 0.5
of a step), edgemed interpolates in float32 without rounding; so on the 0-255 scale the two differ
by at most one uint8 step (1/255 of the [0, 1] range), and ``TOL`` scales that through the
normalization (1/255 / std) before comparing normalized tensors.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import edgemed
from edgemed.kernels import ImageTransform, preprocess_image, preprocess_images, window_dicom

cv2.setNumThreads(1)
FLAGS = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
STEP = 1.0 / 255.0  # one uint8 step in [0, 1] units
# The kernel interpolates in float. Against OpenCV's float32 resize (exact interpolation, the
# same on every CPU) it must agree within EXACT_STEPS; against the usual uint8 chain, which rounds
# after resizing, within one step, checked on x86-64 only: OpenCV's own uint8 path on aarch64 is
# 1.0-1.56 steps from its float32 path (measured under qemu, docs/jetson.md).
EXACT_STEPS = 0.02
UINT8_CHAIN = platform.machine().lower() in ("x86_64", "amd64")


def reference(
    img: np.ndarray, t: ImageTransform, size_wh: tuple[int, int], *, exact: bool = False
) -> np.ndarray:
    """The usual Python chain: cv2.resize, BGR->RGB, float, normalize, HWC->CHW (``exact``: the
    resize in float32, before any rounding)."""
    src = img.astype(np.float32) if exact else img
    resized = cv2.resize(src, size_wh, interpolation=FLAGS[t.interpolation])
    if resized.ndim == 2:
        resized = np.repeat(resized[:, :, None], 3, axis=2)
    rgb = resized[:, :, :3][:, :, ::-1] if t.input_order == "bgr" else resized[:, :, :3]
    x = rgb.astype(np.float64) * t.scale
    x = (x - np.array(t.mean)) / np.array(t.std)
    return x.transpose(2, 0, 1)


def max_steps(ours: np.ndarray, ref: np.ndarray, t: ImageTransform) -> float:
    """Largest difference expressed in uint8 steps of the source."""
    per_channel = np.abs(ours - ref) * np.array(t.std)[:, None, None] / (t.scale * 255.0)
    return float(per_channel.max() * 255.0)


SIZES = [(224, 224), (300, 500), (37, 91), (1000, 1500), (480, 17), (2, 3)]


@pytest.mark.parametrize("interp", ["bilinear", "area"])
@pytest.mark.parametrize("size", SIZES)
def test_resize_matches_opencv_within_one_step(interp: str, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(size[0] * 7 + size[1])
    img = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    t = ImageTransform(size=size, interpolation=interp, mean=MEAN, std=STD)  # type: ignore[arg-type]
    out, place = preprocess_image(img, t)
    assert out.shape == (3, *size) and out.dtype == np.float32
    size_wh = (size[1], size[0])
    assert max_steps(out, reference(img, t, size_wh, exact=True), t) <= EXACT_STEPS
    assert not UINT8_CHAIN or max_steps(out, reference(img, t, size_wh), t) <= 1.0
    assert place.offset_x == 0 and place.scale_x == size[1] / 640


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "retina"])
@pytest.mark.parametrize("interp", ["bilinear", "area"])
def test_real_photos(name: str, interp: str) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    rgb = np.ascontiguousarray(getattr(skimage_data, name)()[:, :, :3])
    t = ImageTransform(size=(224, 224), interpolation=interp, input_order="rgb")  # type: ignore[arg-type]
    out, _ = preprocess_image(rgb, t)
    assert max_steps(out, reference(rgb, t, (224, 224), exact=True), t) <= EXACT_STEPS
    assert not UINT8_CHAIN or max_steps(out, reference(rgb, t, (224, 224)), t) <= 1.0


def test_real_dicom_ct_window_then_resize() -> None:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    stored = ds.pixel_array  # int16, 128 x 128
    u8 = window_dicom(
        stored,
        center=40,
        width=400,
        slope=float(ds.RescaleSlope),
        intercept=float(ds.RescaleIntercept),
        dtype=np.uint8,
    )
    t = ImageTransform(size=(224, 224), output_order="gray", mean=(0.5,), std=(0.25,))
    out, _ = preprocess_image(u8, t)
    exact = cv2.resize(u8.astype(np.float32), (224, 224), interpolation=cv2.INTER_LINEAR)
    assert np.abs(out[0] - (exact / 255.0 - 0.5) / 0.25).max() <= EXACT_STEPS * STEP / 0.25
    ref = (cv2.resize(u8, (224, 224), interpolation=cv2.INTER_LINEAR) / 255.0 - 0.5) / 0.25
    assert not UINT8_CHAIN or np.abs(out[0] - ref).max() <= STEP / 0.25 + 1e-6


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_channel_layouts(channels: int) -> None:
    rng = np.random.default_rng(channels)
    img = rng.integers(0, 256, (50, 70, channels), dtype=np.uint8)
    t = ImageTransform(size=(20, 30), input_order="bgr", output_order="bgr")
    out, _ = preprocess_image(img, t)
    resized = cv2.resize(img.astype(np.float32), (30, 20), interpolation=cv2.INTER_LINEAR)
    resized = resized.reshape(20, 30, channels)
    expected = resized[:, :, [0, 0, 0]] if channels == 1 else resized[:, :, :3]
    assert np.abs(out - expected.transpose(2, 0, 1) / 255.0).max() <= EXACT_STEPS * STEP


def test_strided_views_need_no_copy_and_match_a_contiguous_copy() -> None:
    rng = np.random.default_rng(5)
    big = rng.integers(0, 256, (300, 400, 4), dtype=np.uint8)
    views = {
        "roi": big[20:220, 50:350, :3],
        "flipped": big[::-1, ::-1, :3],
        "channel-reversed": big[:, :, 2::-1],
        "every-other": big[::2, ::3, 1:],
    }
    t = ImageTransform(size=(64, 96), interpolation="area")
    for name, view in views.items():
        assert not view.flags.c_contiguous, name
        ours, _ = preprocess_image(view, t)
        copied, _ = preprocess_image(np.ascontiguousarray(view), t)
        # Packed rows take an integer-sum path for area cells: same values up to float rounding.
        np.testing.assert_allclose(ours, copied, rtol=0, atol=1e-6, err_msg=name)


@pytest.mark.parametrize(
    ("size", "fit"),
    [
        ((224, 224), "stretch"),
        ((37, 1900), "stretch"),
        ((1, 1), "stretch"),
        ((500, 2000), "stretch"),
        ((7, 3), "stretch"),
        ((320, 320), "letterbox"),
        ((224, 224), "center_crop"),
        ((700, 33), "center_crop"),
    ],
)
def test_packed_bilinear_fast_path_is_bit_identical_to_the_scalar_path(
    size: tuple[int, int], fit: str
) -> None:
    """Packed BGR rows take a SIMD path (AVX-512 VBMI: 16 pixels per step, channels split into
    planes; else 4-byte loads); a 4-channel view of the same pixels takes the scalar one. Both
    must give the very same floats, edges, padding and crops included."""
    rng = np.random.default_rng(11)
    rgba = rng.integers(0, 256, (480, 641, 4), dtype=np.uint8)
    packed = np.ascontiguousarray(rgba[..., :3])
    t = ImageTransform(
        size=size,
        interpolation="bilinear",
        fit=fit,  # type: ignore[arg-type]
        mean=(0.4, 0.5, 0.6),
        std=(0.2, 0.3, 0.25),
    )
    fast, _ = preprocess_image(packed, t)
    scalar, _ = preprocess_image(rgba[..., :3], t)
    np.testing.assert_array_equal(fast, scalar)


@pytest.mark.parametrize("size", [(224, 224), (37, 190), (1, 1), (100, 7)])
def test_area_three_channel_path_is_bit_identical_to_the_generic_path(
    size: tuple[int, int],
) -> None:
    """3-channel rows run the area taps of all channels side by side (lanes of one vector);
    4-channel rows (alpha dropped) run the generic per-channel loop. Same adds in the same
    order: same floats."""
    rng = np.random.default_rng(12)
    bgra = rng.integers(0, 256, (480, 641, 4), dtype=np.uint8)
    t = ImageTransform(size=size, interpolation="area", mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.25))
    three, _ = preprocess_image(np.ascontiguousarray(bgra[..., :3]), t)
    four, _ = preprocess_image(bgra, t)
    np.testing.assert_array_equal(three, four)


CROSS_PATH_SCRIPT = """
import sys
import numpy as np
from edgemed.kernels import ImageTransform, preprocess_image
rng = np.random.default_rng(13)
frames = [rng.integers(0, 256, s, dtype=np.uint8) for s in [(1080, 1920, 3), (479, 641, 3)]]
out = {}
for i, frame in enumerate(frames):
    for interp in ("bilinear", "area"):
        for size, fit in [((224, 224), "stretch"), ((37, 190), "stretch"), ((301, 500), "stretch"),
                          ((320, 320), "letterbox"), ((224, 224), "center_crop")]:
            t = ImageTransform(size=size, interpolation=interp, fit=fit, mean=(0.4, 0.5, 0.6),
                               std=(0.2, 0.3, 0.25))
            out[f"{i}-{interp}-{size}-{fit}"] = preprocess_image(frame, t)[0]
np.savez(sys.argv[1], **out)
"""


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 run-time dispatch"
)
def test_every_cpu_path_gives_the_same_floats(tmp_path: Path) -> None:
    """On x86-64 the image kernels pick AVX-512 VBMI, AVX2 or baseline SSE2 code at run time
    (``EDGEMED_IMAGE_BASELINE=1`` forces the baseline): a frame must give the very same floats
    whichever path this CPU takes, bilinear and area, stretched, letterboxed and cropped."""
    results = {}
    for name, extra in [("dispatched", {}), ("baseline", {"EDGEMED_IMAGE_BASELINE": "1"})]:
        path = tmp_path / f"{name}.npz"
        env = {k: v for k, v in os.environ.items() if k != "EDGEMED_IMAGE_BASELINE"} | extra
        subprocess.run(
            [sys.executable, "-c", CROSS_PATH_SCRIPT, str(path)], env=env, check=True, timeout=120
        )
        results[name] = dict(np.load(path))
    assert results["dispatched"].keys() == results["baseline"].keys()
    for key, value in results["dispatched"].items():
        np.testing.assert_array_equal(value, results["baseline"][key], err_msg=key)


def test_transforms_built_with_lists_work_and_plans_follow_the_frame_size() -> None:
    """Per-call geometry is cached by (transform, frame size): a list-built transform (not
    hashable) still works, and frames of another size get their own placement."""
    rng = np.random.default_rng(13)
    small, large = (rng.integers(0, 256, s, dtype=np.uint8) for s in [(50, 60, 3), (90, 40, 3)])
    as_tuples = ImageTransform(size=(20, 30), fit="letterbox", mean=(0.1, 0.2, 0.3))
    as_lists = ImageTransform(size=[20, 30], fit="letterbox", mean=[0.1, 0.2, 0.3])  # type: ignore[arg-type]
    for frame in (small, large, small):
        (a, pa), (b, pb) = preprocess_image(frame, as_tuples), preprocess_image(frame, as_lists)
        assert np.array_equal(a, b) and pa == pb
    assert preprocess_image(small, as_tuples)[1] != preprocess_image(large, as_tuples)[1]


def test_output_is_filled_in_place() -> None:
    img = np.full((10, 10, 3), 255, np.uint8)
    out = np.zeros((3, 4, 4), np.float32)
    got, _ = preprocess_image(img, ImageTransform(size=(4, 4)), out=out)
    assert got is out and np.all(out == 1.0)


def test_center_crop_matches_resize_then_slice() -> None:
    rng = np.random.default_rng(8)
    img = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    t = ImageTransform(size=(224, 224), fit="center_crop", resize_shorter_to=256)
    out, place = preprocess_image(img, t)
    # torchvision: shorter 256, longer int(256 * 640 / 480)
    full = reference(img, t, (341, 256), exact=True)
    expected = full[:, 16 : 16 + 224, 58 : 58 + 224]
    assert max_steps(out, expected, t) <= EXACT_STEPS
    assert (place.offset_y, place.offset_x) == (16, 58)


def test_letterbox_pads_and_maps_boxes_back() -> None:
    img = np.full((100, 200, 3), 200, np.uint8)
    t = ImageTransform(size=(64, 64), fit="letterbox", pad_value=114)
    out, place = preprocess_image(img, t)
    assert np.allclose(out[:, :16], 114 / 255) and np.allclose(out[:, 48:], 114 / 255)
    assert np.allclose(out[:, 16:48], 200 / 255)
    corners = place.to_source([[0, 16], [64, 48]])  # the image's corners in the tensor
    assert np.allclose(corners, [[0, 0], [200, 100]])


def test_batch_of_different_frames_equals_single_calls() -> None:
    rng = np.random.default_rng(9)
    frames = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(90, 120, 3), (50, 50, 3)]]
    t = ImageTransform(size=(32, 32), fit="letterbox")
    batch, places = preprocess_images(frames, t)
    assert batch.shape == (2, 3, 32, 32)
    for i, frame in enumerate(frames):
        single, place = preprocess_image(frame, t)
        assert np.array_equal(batch[i], single) and places[i] == place


@pytest.mark.parametrize(
    ("image", "transform", "match"),
    [
        (np.zeros((4, 4), np.float32), ImageTransform(size=(2, 2)), "uint8"),
        (np.zeros((4, 4, 2), np.uint8), ImageTransform(size=(2, 2)), "1, 3 or 4 channels"),
        (np.zeros((0, 4, 3), np.uint8), ImageTransform(size=(2, 2)), "height, width"),
        (np.zeros((2, 4, 4, 3), np.uint8), ImageTransform(size=(2, 2)), "height, width"),
        (
            np.zeros((4, 4, 3), np.uint8),
            ImageTransform(size=(2, 2), output_order="gray", mean=(0,), std=(1,)),
            "1-channel",
        ),
    ],
)
def test_bad_images_raise_input_error(
    image: np.ndarray, transform: ImageTransform, match: str
) -> None:
    with pytest.raises(edgemed.InputError, match=match):
        preprocess_image(image, transform)


def test_bad_transforms_and_outputs_raise_input_error() -> None:
    with pytest.raises(edgemed.InputError, match="size"):
        ImageTransform(size=(0, 4))
    with pytest.raises(edgemed.InputError, match="std"):
        ImageTransform(size=(2, 2), std=(1, 0, 1))
    with pytest.raises(edgemed.InputError, match="out"):
        preprocess_image(
            np.zeros((4, 4, 3), np.uint8),
            ImageTransform(size=(2, 2)),
            out=np.zeros((3, 2, 3), np.float32),
        )
    with pytest.raises(edgemed.InputError, match="out"):
        preprocess_image(
            np.zeros((4, 4, 3), np.uint8), ImageTransform(size=(2, 2)), out=np.zeros((3, 2, 2))
        )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    oh=st.integers(1, 50),
    ow=st.integers(1, 50),
    channels=st.sampled_from([1, 3, 4]),
    interp=st.sampled_from(["bilinear", "area"]),
    flip=st.booleans(),
    seed=st.integers(0, 2**16),
)
# OpenCV's scale is 1 / (dst / src), not src / dst: 25 * scale lands either side of 19.
@example(h=1, w=38, oh=1, ow=50, channels=1, interp="area", flip=False, seed=0)
def test_property_any_size_and_stride_matches_opencv(
    h: int, w: int, oh: int, ow: int, channels: int, interp: str, flip: bool, seed: int
) -> None:
    img = np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)
    view = img[::-1, ::-1] if flip else img
    t = ImageTransform(size=(oh, ow), interpolation=interp)  # type: ignore[arg-type]
    out, _ = preprocess_image(view, t)
    assert np.isfinite(out).all()
    contiguous = np.ascontiguousarray(view)
    assert max_steps(out, reference(contiguous, t, (ow, oh), exact=True), t) <= EXACT_STEPS
    assert not UINT8_CHAIN or max_steps(out, reference(contiguous, t, (ow, oh)), t) <= 1.0


@settings(max_examples=100, deadline=None)
@given(
    fit=st.sampled_from(["stretch", "center_crop", "letterbox"]),
    h=st.integers(1, 30),
    w=st.integers(1, 30),
    oh=st.integers(1, 30),
    ow=st.integers(1, 30),
    shorter=st.integers(1, 40),
)
def test_property_every_placement_fills_the_output(
    fit: str, h: int, w: int, oh: int, ow: int, shorter: int
) -> None:
    img = np.full((h, w), 77, np.uint8)
    t = ImageTransform(size=(oh, ow), fit=fit, resize_shorter_to=shorter, pad_value=0)  # type: ignore[arg-type]
    out, _ = preprocess_image(img, t)
    assert set(np.unique(np.round(out * 255))) <= {0.0, 77.0}


def test_two_threads_get_identical_results() -> None:
    rng = np.random.default_rng(11)
    frames = [rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8) for _ in range(6)]
    t = ImageTransform(size=(224, 224), interpolation="area", mean=MEAN, std=STD)
    expected = [preprocess_image(f, t)[0] for f in frames]
    got: dict[int, np.ndarray] = {}

    def run(offset: int) -> None:
        for i in range(offset, len(frames), 2):
            got[i] = preprocess_image(frames[i], t)[0]

    threads = [threading.Thread(target=run, args=(k,)) for k in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(np.array_equal(got[i], expected[i]) for i in range(len(frames)))


# --- DICOM windowing -------------------------------------------------------------------------


def numpy_window(
    stored: np.ndarray, c: float, w: float, slope: float, intercept: float, fn: str
) -> np.ndarray:
    """PS3.3 C.11.2.1.2 written directly in NumPy float64, range [0, 1]."""
    x = stored.astype(np.float64) * slope + intercept
    if fn == "linear":
        y = ((x - (c - 0.5)) / (w - 1) + 0.5) if w > 1 else np.zeros_like(x)
        y = np.where(x <= c - 0.5 - (w - 1) / 2, 0.0, np.where(x > c - 0.5 + (w - 1) / 2, 1.0, y))
    elif fn == "linear_exact":
        y = np.where(x <= c - w / 2, 0.0, np.where(x > c + w / 2, 1.0, (x - c) / w + 0.5))
    else:
        with np.errstate(over="ignore"):
            y = 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    return y


@pytest.mark.parametrize("fn", ["linear", "linear_exact", "sigmoid"])
@pytest.mark.parametrize("dtype", [np.int16, np.uint16])
def test_window_is_exact_against_numpy(fn: str, dtype: type[np.integer]) -> None:
    info = np.iinfo(dtype)
    stored = (
        np.random.default_rng(1)
        .integers(info.min, info.max, (3, 64, 80), endpoint=True)
        .astype(dtype)
    )
    stored[0, 0, :4] = [info.min, info.max, 0, 1]
    for c, w in [(40.0, 400.0), (-600.0, 1500.0), (1000.0, 1.0 if fn == "linear" else 0.5)]:
        ref = numpy_window(stored, c, w, 1.0, -1024.0, fn)
        got = window_dicom(stored, center=c, width=w, intercept=-1024.0, function=fn)  # type: ignore[arg-type]
        if fn == "sigmoid":  # exp() may differ by an ulp between libm and NumPy
            np.testing.assert_array_max_ulp(got, ref.astype(np.float32), maxulp=1)
            continue
        assert np.array_equal(got, ref.astype(np.float32))
        got_u8 = window_dicom(
            stored, center=c, width=w, intercept=-1024.0, function=fn, dtype=np.uint8
        )  # type: ignore[arg-type]
        assert np.array_equal(got_u8, np.rint(ref * 255.0).astype(np.uint8))


@pytest.mark.parametrize("fn", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_window_real_images_match_pydicom(name: str, fn: str) -> None:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file
    from pydicom.pixels import apply_modality_lut, apply_windowing

    ds = pydicom.dcmread(get_testdata_file(name))
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = 40.0, 400.0, fn
    ref = apply_windowing(apply_modality_lut(ds.pixel_array, ds), ds)
    slope = float(ds.get("RescaleSlope", 1.0))
    intercept = float(ds.get("RescaleIntercept", 0.0))
    bits = int(ds.BitsStored)  # pydicom's output range: the stored range after rescale
    lo, hi = (
        (0.0, 2.0**bits - 1)
        if ds.PixelRepresentation == 0
        else (-(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1)
    )
    if "RescaleSlope" in ds:
        lo, hi = lo * slope + intercept, hi * slope + intercept
    ours = window_dicom(
        ds.pixel_array,
        center=40.0,
        width=400.0,
        slope=slope,
        intercept=intercept,
        function=fn.lower(),
        out_range=(lo, hi),  # type: ignore[arg-type]
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=(hi - lo) * 1e-7)


def test_window_views_and_errors() -> None:
    stored = np.arange(-100, 100, dtype=np.int16).reshape(10, 20)
    view = stored[::-1, ::2]
    assert np.array_equal(
        window_dicom(view, center=0, width=50), window_dicom(view.copy(), center=0, width=50)
    )
    with pytest.raises(edgemed.InputError, match="int16 or uint16"):
        window_dicom(stored.astype(np.float32), center=0, width=50)
    with pytest.raises(edgemed.InputError, match="rows, cols"):
        window_dicom(stored.ravel(), center=0, width=50)
    with pytest.raises(edgemed.InputError, match="width"):
        window_dicom(stored, center=0, width=0.5)
    with pytest.raises(edgemed.InputError, match="finite"):
        window_dicom(stored, center=float("nan"), width=50)
