"""Task ``image-segmentation`` without a model: its manifest sections, the score maps of a
pretend model turned into masks at the input's size (stretch, letterbox, centre crop), the
decisions (softmax, thresholds, specks), the wire body and its contract, the mask encoding.
The real network (PP-OCRv4's text detector) is in tests/integration/test_bundle_segmentation.py.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgemed.contracts import ContractError, check_result_body
from edgemed.errors import InputError, ManifestError, ModelError
from edgemed.manifest import Manifest, parse_manifest
from edgemed.results import ImageSegmentation, Provenance, Timings
from edgemed.results.segmentation import MAX_MASK_CHARS, decode_mask, encode_mask
from edgemed.tasks import find_task

PRE: dict[str, Any] = {
    "size": [64, 64], "fit": "stretch", "interpolation": "bilinear", "channel_order": "bgr",
    "layout": "nchw", "scale": 1 / 255, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
}  # fmt: skip
POST: dict[str, Any] = {"labels": ["background", "lesion"], "scores": "probabilities"}
OUT = "prob"


def manifest(
    pre: dict[str, Any] | None = None, post: dict[str, Any] | None = None, channels: Any = 1
) -> Manifest:
    data = {
        "schema": "edgemed.manifest/1", "id": "seg-test", "version": "1.0.0",
        "task": "image-segmentation", "summary": "test", "license": "MIT",
        "medical_device": False,
        "source": {"package": "tests", "upstream": "none", "recipe": "none"},
        "artifacts": {
            role: {"path": f"{role}.bin", "sha256": "0" * 64}
            for role in ("model", "golden_inputs", "golden_outputs", "model_card")
        },
        "backends": ["onnxruntime"],
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 3, "h", "w"]}],
        "outputs": [{"name": OUT, "dtype": "float32", "shape": ["batch", channels, "h", "w"]}],
        "preprocess": {**PRE, **(pre or {})},
        "postprocess": {**POST, **(post or {})},
        "golden": {"max_abs_diff": 1e-4, "min_label_agreement": 1.0},
    }  # fmt: skip
    return parse_manifest(json.loads(json.dumps(data)), Path("."))


def processors(m: Manifest) -> tuple[Any, Any]:
    spec = find_task("image-segmentation")
    assert spec is not None and spec.build is not None and spec.cli_input.dicom == "image"
    return spec.processors(m, lambda role: pytest.fail(f"no further model ({role})"))


PROVENANCE = Provenance(
    model_id="seg-test", model_version="1.0.0", model_sha256="0" * 64, backend="onnxruntime",
    device="cpu", precision="fp32", input_sha256="0" * 64, input_kind="image",
    timings=Timings(preprocess_ms=1, inference_ms=1, postprocess_ms=1), edgemed_version="0",
    created_at=0.0,
)  # fmt: skip


def run(m: Manifest, item: object, maps: np.ndarray) -> ImageSegmentation:
    """``maps`` (C, h, w) as the model's output for ``item``."""
    pre, post = processors(m)
    prepared = pre(item)
    result = post({OUT: maps[None].astype(np.float32)}, prepared.context)(provenance=PROVENANCE)
    assert isinstance(result, ImageSegmentation)
    check_result_body(result.kind, result.body())
    return result


def square(size: int = 64, top: int = 16, bottom: int = 48) -> np.ndarray:
    """A foreground probability map: 0.9 inside a square, 0.05 outside."""
    p = np.full((1, size, size), 0.05, np.float32)
    p[0, top:bottom, top:bottom] = 0.9
    return p


def test_a_probability_map_becomes_a_mask_at_the_input_size() -> None:
    image = np.zeros((128, 256, 3), np.uint8)  # stretched to 64 x 64
    result = run(manifest(), image, square())
    assert result.mask.shape == (128, 256)
    assert result.mask[64, 128] == 1 and result.mask[5, 5] == 0
    assert result.pixels[1] == pytest.approx(64 * 128, rel=0.05)  # half of each side
    assert result.regions == (1, 1) and result.specks_removed == 0
    assert result.mean_confidence[1] == pytest.approx(0.9, abs=0.02)
    assert result.mean_confidence[0] == pytest.approx(0.95, abs=0.02)
    assert result.body()["mask"] is None and result.areas_mm2 == (None, None)


def test_letterbox_and_centre_crop_map_back_through_the_placement() -> None:
    image = np.zeros((32, 64, 3), np.uint8)  # letterboxed: 32 x 64 at rows 16..48 of 64
    p = np.full((1, 64, 64), 0.05, np.float32)
    p[0, 16:48, 32:64] = 0.9  # the right half of the placed image
    boxed = run(manifest(pre={"fit": "letterbox"}), image, p)
    assert boxed.mask.shape == (32, 64) and boxed.unseen_pixels == 0
    assert boxed.mask[:, 34:].all() and not boxed.mask[:, :30].any()
    cropped = run(manifest(pre={"fit": "center_crop"}), np.zeros((64, 128, 3), np.uint8), square())
    assert cropped.unseen_pixels == 64 * 64  # 32 columns each side were never seen
    assert (cropped.mask[:, :32] == 255).all() and (cropped.mask[:, 96:] == 255).all()
    assert cropped.mask[32, 64] == 1 and sum(cropped.pixels) == 64 * 64


def test_softmax_sigmoid_and_thresholds_decide_per_pixel() -> None:
    labels = ["background", "a", "b"]
    logits = np.zeros((3, 64, 64), np.float32)
    logits[1, :, :32], logits[2, :, 32:] = 4.0, 4.0
    soft = run(manifest(post={"labels": labels, "scores": "softmax"}, channels=3),
               np.zeros((64, 64), np.uint8), logits)  # fmt: skip
    assert (soft.mask[:, :32] == 1).all() and (soft.mask[:, 32:] == 2).all()
    assert soft.confidence[0, 0] == pytest.approx(np.exp(4) / (np.exp(4) + 2), abs=1e-5)
    assert soft.margin[0, 0] == pytest.approx((np.exp(4) - 1) / (np.exp(4) + 2), abs=1e-5)
    scores = np.stack([np.full((64, 64), 0.6), np.full((64, 64), 0.7)]).astype(np.float32)
    scores[:, :, 32:] = 0.2
    post = {"labels": labels, "scores": "probabilities", "threshold": 0.5, "thresholds": {"b": 0.8}}
    thresh = run(manifest(post=post, channels=2), np.zeros((64, 64), np.uint8), scores)
    assert (thresh.mask[:, :32] == 1).all()  # b scores higher but under its own threshold
    assert (thresh.mask[:, 32:] == 0).all()
    assert thresh.margin[0, 0] == pytest.approx(0.1, abs=1e-5)  # b is 0.1 from passing
    assert thresh.confidence[0, 40] == pytest.approx(0.8, abs=1e-5)  # 1 - best foreground
    sig = run(manifest(post={"scores": "sigmoid"}), np.zeros((64, 64), np.uint8),
              np.where(square() > 0.5, 3.0, -3.0))  # fmt: skip
    assert sig.pixels == run(manifest(), np.zeros((64, 64), np.uint8), square()).pixels


def test_specks_under_min_area_go_back_to_the_background() -> None:
    p = square()
    p[0, 2:4, 2:4] = 0.9  # a 4-pixel speck
    kept = run(manifest(), np.zeros((64, 64), np.uint8), p)
    assert kept.regions[1] == 2 and kept.specks_removed == 0
    cleaned = run(manifest(post={"min_area_px": 5}), np.zeros((64, 64), np.uint8), p)
    assert cleaned.regions[1] == 1 and cleaned.specks_removed == 1
    assert cleaned.pixels[1] == kept.pixels[1] - 4 and cleaned.mask[2, 2] == 0
    assert cleaned.confidence[2, 2] == 0 and cleaned.margin[2, 2] == 0


def test_pixel_spacing_and_inputs() -> None:
    m = manifest()
    image = np.zeros((64, 64), np.uint8)
    spaced = run(m, {"image": image, "pixel_spacing_mm": (0.5, 2)}, square())
    assert spaced.areas_mm2 == (float(spaced.pixels[0]), float(spaced.pixels[1]))
    pre, _ = processors(m)
    for bad, message in [
        ({"image": image, "pixel_spacing_mm": [1, float("nan")]}, "row, column"),
        ({"image": image, "pixel_spacing_mm": [True, 1]}, "row, column"),
        ({"image": image, "pixel_spacing_mm": [1, 1, 1]}, "row, column"),
        ({"pixel_spacing_mm": [1, 1]}, "got keys"),
        (np.zeros((8, 8, 2), np.uint8), "shape"),
        (np.zeros((8, 8), np.int16), "dtype uint8"),
        ([[0]], "got list"),
    ]:
        with pytest.raises(InputError, match=message):
            pre(bad)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"post": {"labels": ["only"]}}, "labels: 2..255"),
        ({"post": {"labels": ["a", "a"]}}, "labels: 2..255"),
        ({"post": {"scores": "logits"}}, "scores: 'logits'"),
        ({"post": {"scores": "softmax"}}, r"outputs\[0\]: .*\[batch, 2, h, w\]"),
        ({"post": {"scores": "softmax", "threshold": 0.5}, "channels": 2}, "softmax classes"),
        ({"post": {"thresholds": {"background": 0.5}}}, "not a foreground label"),
        ({"post": {"threshold": 1.5}}, "threshold: must be in"),
        ({"post": {"min_area_px": -1}}, "min_area_px"),
        ({"post": {"mask": "png"}}, "mask: 'png'"),
        ({"post": {"mask_max_side": 2}}, "mask_max_side"),
        ({"post": {"extra": 1}}, r"unknown key\(s\) \['extra'\]"),
        ({"pre": {"fit": "pad"}}, "fit: 'pad'"),
        ({"pre": {"mean": [0.5]}}, "mean: expected 3"),
        ({"channels": 3}, r"outputs\[0\]"),
    ],
)
def test_bad_manifests_are_manifest_errors(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ManifestError, match=match):
        processors(manifest(**changes))


def test_outputs_that_break_the_manifest_are_model_errors() -> None:
    pre, post = processors(manifest())
    ctx = pre(np.zeros((8, 8), np.uint8)).context
    with pytest.raises(ModelError, match="no output"):
        post({"other": np.zeros((1, 1, 8, 8), np.float32)}, ctx)
    with pytest.raises(ModelError, match=r"expected \[1, 1 or 2, h, w\]"):
        post({OUT: np.zeros((1, 3, 8, 8), np.float32)}, ctx)
    with pytest.raises(ModelError, match="not probabilities"):
        post({OUT: np.full((1, 1, 8, 8), 3.0, np.float32)}, ctx)


# The wire


def test_the_mask_encoding_round_trips_and_stays_small() -> None:
    rng = np.random.default_rng(0)
    mask = np.zeros((300, 200), np.uint8)
    mask[50:120, 30:150], mask[200:260, 10:40], mask[0, 0] = 1, 2, 255
    encoded = encode_mask(mask, 512)
    assert encoded["shape"] == [300, 200]
    np.testing.assert_array_equal(decode_mask(encoded), mask)
    long_runs = np.zeros((1, 5000), np.uint8)  # a run longer than one varint byte holds
    long_runs[0, 4000:] = 200  # and a class index over 127
    np.testing.assert_array_equal(decode_mask(encode_mask(long_runs, 8192)), long_runs)
    noise = rng.integers(0, 2, (1024, 1024)).astype(np.uint8)  # the worst case: no runs
    worst = encode_mask(noise, 256)
    assert len(worst["b64"]) <= MAX_MASK_CHARS and worst["shape"][0] < 256  # halved to fit
    check = {**body(), "height": 1024, "width": 1024, "mask": worst, "pixel_spacing_mm": None}
    check["classes"] = [{**c, "area_mm2": None} for c in check["classes"]]
    check["classes"][0]["pixels"] += 1024 * 1024 - 400
    check_result_body("image-segmentation", check)
    assert len(json.dumps(check)) < 70_000
    with pytest.raises(InputError, match="varints"):
        decode_mask({**encoded, "b64": base64.b64encode(b"\x81").decode()})


def body(**changes: Any) -> dict[str, Any]:
    sound: dict[str, Any] = {
        "kind": "image-segmentation", "labels": ["background", "lesion"],
        "height": 20, "width": 20, "pixel_spacing_mm": [0.5, 0.5],
        "classes": [
            {"label": "background", "pixels": 300, "area_mm2": 75.0, "mean_confidence": 0.97,
             "regions": 1},
            {"label": "lesion", "pixels": 100, "area_mm2": 25.0, "mean_confidence": 0.8,
             "regions": 1},
        ],
        "unseen_pixels": 0, "specks_removed": 0,
        "mask": encode_mask(np.repeat([0, 1], 200).astype(np.uint8).reshape(20, 20), 256),
    }  # fmt: skip
    return {**sound, **changes}


def _class(i: int, **changes: Any) -> list[dict[str, Any]]:
    classes = body()["classes"]
    classes[i] = {**classes[i], **changes}
    return classes


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"labels": ["background"]}, "2..255"),
        ({"classes": _class(1, pixels=90, area_mm2=22.5)}, "add up"),
        ({"classes": _class(1, area_mm2=30.0)}, "pixel's area"),
        ({"classes": _class(1, area_mm2=None)}, "area_mm2 is null exactly"),
        ({"classes": _class(1, mean_confidence=1.2)}, "outside"),
        ({"classes": _class(1, mean_confidence=None)}, "null exactly when pixels is 0"),
        ({"classes": _class(1, regions=101)}, "regions"),
        ({"classes": body()["classes"][::-1]}, "labels' order"),
        ({"pixel_spacing_mm": [0.5, -1]}, "outside"),
        ({"unseen_pixels": -1}, "unseen_pixels"),
        ({"mask": {"encoding": "png", "shape": [20, 20], "b64": ""}}, "rle-varint"),
        ({"mask": {**body()["mask"], "shape": [30, 20]}}, "within the image"),
        ({"mask": {**body()["mask"], "shape": [10, 20]}}, "cover"),
        ({"mask": {**body()["mask"], "b64": "!!"}}, "not base64"),
        ({"mask": encode_mask(np.full((20, 20), 7, np.uint8), 256)}, "class indices"),
    ],
)
def test_the_contract_refuses_bodies_out_of_range(changes: dict[str, Any], match: str) -> None:
    check_result_body("image-segmentation", body())
    check_result_body("image-segmentation", body(pixel_spacing_mm=None, mask=None,
                      classes=[{**c, "area_mm2": None} for c in body()["classes"]]))  # fmt: skip
    with pytest.raises(ContractError, match=match):
        check_result_body("image-segmentation", body(**changes))
