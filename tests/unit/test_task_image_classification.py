"""Task ``image-classification``: a generic image classifier configured by its manifest alone.

The model is a real one: PP-OCR's text-direction classifier shipped in the installed
rapidocr_onnxruntime (input ``x`` [batch, 3, 48, 192], BGR as cv2.imread gives it,
``(pixel / 255 - 0.5) / 0.5``; output [batch, 2] probabilities of "0" and "180"). Each test
builds a bundle for it in a temporary folder, with a manifest written here, and checks
edgemed's answers against rapidocr's own TextClassifier on the same text-line crops.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import rapidocr_onnxruntime
import yaml
from rapidocr_onnxruntime.ch_ppocr_cls import TextClassifier

import edgemed
from edgemed.contracts import ContractError, check_result_body
from edgemed.errors import InputError, ManifestError, ModelError
from edgemed.fleet.validation import PayloadValidator
from edgemed.manifest import parse_manifest
from edgemed.results import ImageClassification
from edgemed.tasks import find_task
from edgemed.wire import encode_result

RAPIDOCR = Path(rapidocr_onnxruntime.__file__).parent
MODEL = RAPIDOCR / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"
OUTPUT = "save_infer_model/scale_0.tmp_1"  # the graph's output name
LABELS = ["0", "180"]
TEXTS = ("HR 72 bpm", "BP 120/80", "edgemed", "Temp 37.2 C", "Pulse 88", "NIBP 118/76")

PREPROCESS: dict[str, Any] = {
    "size": [48, 192],
    "fit": "stretch",
    "resize_shorter_to": None,
    "interpolation": "bilinear",
    "channel_order": "bgr",  # rapidocr feeds the cv2 (BGR) crop as it is
    "layout": "nchw",
    "scale": 1 / 255,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "pad_value": 0,
}
POSTPROCESS: dict[str, Any] = {
    "labels": LABELS,
    "scores": "probabilities",  # the graph ends in a softmax
    "multi_label": False,
    "top_k": 2,
    "min_confidence": 0.9,  # rapidocr's own cls_thresh
    "thresholds": {},
}


def text_line(text: str, height: int = 48, width: int = 192) -> np.ndarray:
    """A black-on-white BGR text line (width >= 4 x height: rapidocr then stretches it too)."""
    image = np.full((height, width, 3), 255, np.uint8)
    scale = 0.8 * height / 48
    cv2.putText(image, text, (4, int(0.7 * height)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 2)
    return image


def upside_down(image: np.ndarray) -> np.ndarray:
    return cv2.rotate(image, cv2.ROTATE_180)


@pytest.fixture(scope="module")
def rapid() -> TextClassifier:
    config = yaml.safe_load((RAPIDOCR / "config.yaml").read_text())["Cls"]
    return TextClassifier({**config, "model_path": str(MODEL), "intra_op_num_threads": 1})


@pytest.fixture(scope="module")
def lines() -> list[np.ndarray]:
    upright = [text_line(t) for t in TEXTS]
    return upright + [upside_down(i) for i in upright]


def reference_probabilities(rapid: TextClassifier, images: list[np.ndarray]) -> np.ndarray:
    """The model's [n, 2] output on rapidocr's own preprocessing of ``images``."""
    batch = np.stack([rapid.resize_norm_img(i) for i in images]).astype(np.float32)
    return np.asarray(rapid.infer(batch)[0], dtype=np.float32)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_bundle(
    folder: Path,
    images: list[np.ndarray],
    scores: np.ndarray,
    *,
    preprocess: dict[str, Any] | None = None,
    postprocess: dict[str, Any] | None = None,
    outputs: list[dict[str, Any]] | None = None,
    inputs: list[dict[str, Any]] | None = None,
) -> Path:
    """A bundle of the classifier: golden images and their expected final scores."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(MODEL, folder / "model.onnx")
    np.savez(folder / "golden_inputs.npz", **{f"image_{i}": im for i, im in enumerate(images)})
    np.savez(folder / "golden_outputs.npz", scores=np.asarray(scores, dtype=np.float32))
    (folder / "MODEL_CARD.md").write_text("# Text direction (test bundle)\n")
    files = {
        "model": "model.onnx",
        "golden_inputs": "golden_inputs.npz",
        "golden_outputs": "golden_outputs.npz",
        "model_card": "MODEL_CARD.md",
    }
    manifest = {
        "schema": "edgemed.manifest/1",
        "id": "text-direction-test",
        "version": "1.0.0",
        "task": "image-classification",
        "summary": "PP-OCR text-line direction (0 or 180 degrees), test bundle",
        "license": "Apache-2.0",
        "medical_device": False,
        "source": {
            "package": "rapidocr_onnxruntime",
            "upstream": "PaddleOCR ch_ppocr_mobile_v2.0_cls",
            "recipe": "tests/unit/test_task_image_classification.py",
        },
        "artifacts": {
            role: {"path": path, "sha256": _sha256(folder / path)} for role, path in files.items()
        },
        "backends": ["onnxruntime"],
        "inputs": inputs or [{"name": "x", "dtype": "float32", "shape": ["batch", 3, 48, 192]}],
        "outputs": outputs
        or [{"name": OUTPUT, "dtype": "float32", "shape": ["batch", len(LABELS)]}],
        "preprocess": PREPROCESS if preprocess is None else preprocess,
        "postprocess": POSTPROCESS if postprocess is None else postprocess,
        "golden": {"max_abs_diff": 1e-4, "min_label_agreement": 1.0},
        "rows_independent": True,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder


def load(folder: Path, **kwargs: Any) -> edgemed.Pipeline:
    return edgemed.load(folder, backend="onnxruntime", device="cpu", threads=1, **kwargs)


@pytest.fixture(scope="module")
def bundle(
    tmp_path_factory: pytest.TempPathFactory, rapid: TextClassifier, lines: list[np.ndarray]
) -> Path:
    folder = tmp_path_factory.mktemp("bundle") / "text-direction"
    return write_bundle(folder, lines, reference_probabilities(rapid, lines))


@pytest.fixture(scope="module")
def pipe(bundle: Path) -> Iterator[edgemed.Pipeline]:
    with load(bundle) as pipeline:  # the golden check runs here
        yield pipeline


def _classify(pipe: edgemed.Pipeline, item: object) -> ImageClassification:
    result = pipe(item)
    assert isinstance(result, ImageClassification)
    return result


# (1) the golden check passes, and edgemed answers as rapidocr does


def test_the_task_is_built_in() -> None:
    spec = find_task("image-classification")
    assert spec is not None and spec.cli_input.dicom == "image"


def test_agrees_with_rapidocr_and_rotation_flips_the_label(
    pipe: edgemed.Pipeline, rapid: TextClassifier, lines: list[np.ndarray]
) -> None:
    assert pipe.check_golden() == []
    _, expected, _ = rapid(lines)
    n = len(TEXTS)
    for i, (image, (label, score)) in enumerate(zip(lines, expected, strict=True)):
        result = _classify(pipe, image)
        assert result.top[0] == (label, pytest.approx(float(score), abs=1e-4))
        assert result.top[0][0] == ("0" if i < n else "180")  # 180 degrees: the other label
        assert result.label == result.top[0][0] and result.abstained is None
        assert result.positive == (result.label,) and not result.multi_label
        assert sum(s for _, s in result.top) == pytest.approx(1.0, abs=1e-5)
        assert result.provenance.input_kind == "image"


@pytest.mark.parametrize(("height", "width"), [(96, 384), (40, 200)])
def test_other_sizes_are_resized_as_rapidocr_does(
    pipe: edgemed.Pipeline, rapid: TextClassifier, height: int, width: int
) -> None:
    """The kernel interpolates in float where cv2.resize rounds to uint8: scores differ by a
    few 1e-3 at most (measured 2.4e-3), never the label of a clear line."""
    upright = [text_line(t, height, width) for t in TEXTS]
    images = upright + [upside_down(i) for i in upright]
    _, expected, _ = rapid(images)
    for image, (label, score) in zip(images, expected, strict=True):
        result = _classify(pipe, image)
        assert result.top[0][0] == label
        assert result.top[0][1] == pytest.approx(float(score), abs=5e-3)


def test_files_gray_and_arrays_give_the_same_answer(pipe: edgemed.Pipeline, tmp_path: Path) -> None:
    image = text_line(TEXTS[0])
    path = tmp_path / "line.png"
    assert cv2.imwrite(str(path), image)
    from_array, from_file = _classify(pipe, image), _classify(pipe, path)
    assert from_file.top == from_array.top and from_file.label == "0"
    assert _classify(pipe, str(path)).top == from_array.top
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    as_gray = _classify(pipe, gray)
    assert _classify(pipe, gray[:, :, None]).top == as_gray.top
    assert as_gray.top[0][0] == "0"  # black on white: the same line in any channel order
    # The input's identity: the same pixels, the same hash; a view is read in place.
    assert from_array.provenance.input_sha256 == from_file.provenance.input_sha256
    flipped = _classify(pipe, image[::-1, ::-1])  # a strided view: rotated by 180 degrees
    assert flipped.top[0][0] == "180"


def test_a_line_it_is_unsure_of_is_withheld_saying_why(
    pipe: edgemed.Pipeline, rapid: TextClassifier
) -> None:
    """A palindrome-like line ("SpO2 98 %": rapidocr's top score 0.54): under min_confidence
    0.9 there is no label, the scores are still there, and the reason says so."""
    image = text_line("SpO2 98 %")
    _, [(label, score)], _ = rapid([image])
    assert score < 0.9
    result = _classify(pipe, image)
    assert result.label is None and result.positive == ()
    assert result.top[0] == (label, pytest.approx(float(score), abs=1e-4))
    assert result.abstained == f"top score {result.score:.4g} < min_confidence 0.9"
    assert result.summary()["abstained"] == result.abstained


# (2) bad inputs


@pytest.mark.parametrize(
    ("item", "match"),
    [
        (np.zeros((48, 192, 3), np.float32), "dtype uint8"),
        (np.full((48, 192, 3), np.nan, np.float32), "dtype uint8"),
        (np.zeros((48, 192, 4), np.uint8), "shape"),
        (np.zeros((48, 192, 2), np.uint8), "shape"),
        (np.zeros((48, 192), np.int16), "dtype uint8"),
        (np.zeros((48, 192), bool), "dtype uint8"),
        (np.zeros((0, 192, 3), np.uint8), "sides"),
        (np.zeros((48, 0), np.uint8), "sides"),
        (np.zeros((2, 48, 192, 3), np.uint8), "shape"),
        (np.zeros(192, np.uint8), "shape"),
        ([[0, 1], [2, 3]], "got list"),
        (b"\x89PNG", "got bytes"),
        (None, "got NoneType"),
    ],
)
def test_bad_inputs_are_input_errors(pipe: edgemed.Pipeline, item: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        pipe(item)


def test_bad_files_are_input_errors(pipe: edgemed.Pipeline, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        pipe(tmp_path / "missing.png")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(InputError, match="cannot read"):
        pipe(str(text))
    with pytest.raises(InputError, match="not found"):
        pipe(tmp_path)  # a folder


def test_outputs_that_break_the_manifest_are_model_errors(pipe: edgemed.Pipeline) -> None:
    with pytest.raises(ModelError, match=r"expected \[1, 2\] scores"):
        pipe.postprocess({OUTPUT: np.zeros((1, 3), np.float32)}, None)
    with pytest.raises(ModelError, match="not probabilities"):
        pipe.postprocess({OUTPUT: np.array([[3.0, -2.0]], np.float32)}, None)
    with pytest.raises(ModelError, match="no output"):
        pipe.postprocess({"other": np.zeros((1, 2), np.float32)}, None)


# (3) bad manifests


def _manifest(tmp_path: Path, **sections: Any) -> edgemed.Manifest:
    """A manifest of the bundle with sections replaced, parsed but not yet served."""
    folder = write_bundle(tmp_path / "m", [text_line("x")], np.zeros((1, 2)), **sections)
    return parse_manifest(json.loads((folder / "manifest.json").read_text()), folder)


def _no_further_model(role: str) -> Any:
    raise AssertionError(f"this task opens no further model ({role})")


def _processors(manifest: edgemed.Manifest) -> tuple[Any, Any]:
    spec = find_task("image-classification")
    assert spec is not None
    return spec.processors(manifest, _no_further_model)


def _pre(**changes: Any) -> dict[str, Any]:
    return {"preprocess": {**PREPROCESS, **changes}}


def _post(**changes: Any) -> dict[str, Any]:
    return {"postprocess": {**POSTPROCESS, **changes}}


BAD_MANIFESTS: list[tuple[dict[str, Any], str]] = [
    (_post(labels=["0", "90", "180"]), r"manifest.outputs\[0\]: .*\[batch, 3\]"),
    (_post(labels=["0", "0"]), r"postprocess.labels: .*distinct"),
    (_post(labels=["0", ""]), r"postprocess.labels: .*non-empty"),
    (_post(labels=[]), r"postprocess.labels"),
    (_post(labels=["0", 180]), r"postprocess.labels"),
    (_post(scores="logits"), r"postprocess.scores: 'logits'"),
    (_post(top_k=3), r"postprocess.top_k"),
    (_post(top_k=0), r"postprocess.top_k"),
    (_post(min_confidence=1.5), r"postprocess.min_confidence"),
    (_post(thresholds={"0": 0.5}), r"postprocess.thresholds: only for multi_label"),
    (_post(multi_label=True, thresholds={"90": 0.5}), r"thresholds.90: not one of the labels"),
    (_post(multi_label=True, thresholds={"0": 2}), r"thresholds.0: must be in \[0, 1\]"),
    (_post(multi_label=True, scores="softmax"), r"postprocess.scores: softmax"),
    (_post(multi_label="yes"), r"postprocess.multi_label: expected bool"),
    (_post(extra=1), r"postprocess: unknown key\(s\) \['extra'\]"),
    ({"postprocess": {k: v for k, v in POSTPROCESS.items() if k != "top_k"}}, "missing key"),
    (_pre(mean=[0.5, 0.5]), r"preprocess.mean: expected 3"),
    (_pre(std=[0.5, 0.0, 0.5]), r"preprocess.std: expected 3 finite positive"),
    (_pre(channel_order="gray"), r"preprocess.mean: expected 1"),
    (_pre(fit="pad"), r"preprocess.fit: 'pad' is not one of"),
    (_pre(interpolation="cubic"), r"preprocess.interpolation"),
    (_pre(layout="chw"), r"preprocess.layout"),
    (_pre(size=[48]), r"preprocess.size: expected \[height, width\]"),
    (_pre(size=[0, 192]), r"preprocess.size: each side"),
    (_pre(size=[48.0, 192]), r"preprocess.size: expected \[height, width\]"),
    (_pre(size=[32, 192]), r"manifest.inputs: .*\[batch, 3, 32, 192\]"),
    (_pre(layout="nhwc"), r"manifest.inputs: .*\[batch, H, W, C\]"),
    (_pre(scale=0), r"preprocess.scale"),
    (_pre(pad_value=256), r"preprocess.pad_value"),
    (_pre(resize_shorter_to=64), r"resize_shorter_to: only for fit 'center_crop'"),
    (_pre(fit="center_crop", resize_shorter_to=100), r"resize_shorter_to: must be 192"),
    (
        {"outputs": [{"name": OUTPUT, "dtype": "int64", "shape": ["batch", 2]}]},
        r"manifest.outputs\[0\]",
    ),
    (
        {"inputs": [{"name": "x", "dtype": "uint8", "shape": ["batch", 3, 48, 192]}]},
        r"manifest.inputs",
    ),
]


@pytest.mark.parametrize(("sections", "match"), BAD_MANIFESTS)
def test_bad_manifests_are_manifest_errors(
    tmp_path: Path, sections: dict[str, Any], match: str
) -> None:
    with pytest.raises(ManifestError, match=match):
        _processors(_manifest(tmp_path, **sections))


def test_a_bad_manifest_is_refused_at_load(tmp_path: Path) -> None:
    folder = write_bundle(
        tmp_path / "b", [text_line("x")], np.zeros((1, 2)), **_post(labels=["0", "90", "180"])
    )
    with pytest.raises(ManifestError, match="one score per label"):
        load(folder)


def test_other_layouts_fits_and_gray_models_preprocess_as_declared(tmp_path: Path) -> None:
    """No such model here: the tensors are compared with the NCHW BGR ones directly."""
    image = text_line(TEXTS[1], 60, 250)

    def prepared(**sections: Any) -> np.ndarray:
        pre, _ = _processors(_manifest(tmp_path, **sections))
        tensor = pre(image).tensors["x"]
        assert tensor.dtype == np.float32 and tensor.flags.c_contiguous
        return tensor

    nchw = prepared()
    assert nchw.shape == (1, 3, 48, 192)
    nhwc = prepared(
        inputs=[{"name": "x", "dtype": "float32", "shape": ["batch", 48, 192, 3]}],
        **_pre(layout="nhwc"),
    )
    np.testing.assert_array_equal(nhwc, nchw.transpose(0, 2, 3, 1))
    rgb = prepared(**_pre(channel_order="rgb"))
    np.testing.assert_array_equal(rgb, nchw[:, ::-1])
    gray = prepared(
        inputs=[{"name": "x", "dtype": "float32", "shape": ["batch", 1, "h", "w"]}],
        **_pre(channel_order="gray", mean=[0.5], std=[0.5]),
    )
    assert gray.shape == (1, 1, 48, 192)
    assert np.abs(gray[0, 0] - nchw[0, 0]).max() < 0.02  # black on white: B == G == R
    for fit in ("center_crop", "letterbox"):
        assert prepared(**_pre(fit=fit)).shape == (1, 3, 48, 192)


# (4) the wire: the device's contract and the fleet's validator


def test_bodies_pass_the_contract_and_the_fleet(pipe: edgemed.Pipeline) -> None:
    for image in (text_line(TEXTS[0]), text_line("SpO2 98 %")):  # a label, an abstention
        result = _classify(pipe, image)
        body = result.body()
        check_result_body(result.kind, body)
        raw = encode_result(
            result,
            device_id="bed-3",
            seq=1,
            boot_id="b" * 32,
            lowest_unacked_seq=1,
            clock_synced=True,
        )
        msg = PayloadValidator().result(raw, topic_device_id="bed-3")
        assert msg.kind == "image-classification"
        assert msg.body["result"] == json.loads(json.dumps(body))
        assert len(json.dumps(body)) < 300  # small on the wire
        assert msg.body["input"]["kind"] == "image"


def _body(**changes: Any) -> dict[str, Any]:
    sound = {
        "kind": "image-classification",
        "label": "0",
        "score": 0.98,
        "top": [["0", 0.98], ["180", 0.02]],
        "positive": ["0"],
        "multi_label": False,
        "abstained": None,
    }
    return {**sound, **changes}


@pytest.mark.parametrize(
    "body",
    [
        _body(score=1.2),
        _body(top=[["0", 0.02], ["180", 0.98]]),  # not best first
        _body(top=[["0", 1.5]]),
        _body(top=[]),
        _body(top=[["0", 0.9], ["0", 0.1]]),
        _body(top=[["0"]]),
        _body(abstained="top score 0.5 < min_confidence 0.9"),  # with a label
        _body(label=None),  # single-label, no label, no reason
        _body(label="180", positive=["180"]),  # single-label: not the best score
        _body(positive=["0", "180"]),
        _body(multi_label="no"),
        _body(abstained=""),
        _body(label=3, positive=[3]),
    ],
)
def test_bodies_outside_the_contract_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ContractError):
        check_result_body("image-classification", body)


def test_sound_bodies_pass_the_contract() -> None:
    check_result_body("image-classification", _body())
    check_result_body(
        "image-classification",
        _body(label=None, positive=[], abstained="top score 0.5 < min_confidence 0.9"),
    )
    multi = _body(multi_label=True, label="180", score=0.4, positive=["180", "0"])
    check_result_body("image-classification", multi)  # "180" over a lower threshold
    check_result_body("image-classification", _body(multi_label=True, label=None, positive=[]))


# (5) multi-label: per-class thresholds, sigmoid, abstention under min_confidence


def _variant(
    tmp_path: Path,
    rapid: TextClassifier,
    images: list[np.ndarray],
    final: Callable[[np.ndarray], np.ndarray],
    **postprocess: Any,
) -> edgemed.Pipeline:
    """The same classifier, another postprocess section; its golden scores computed here."""
    scores = final(reference_probabilities(rapid, images))
    folder = write_bundle(tmp_path / "v", images, scores, **_post(**postprocess))
    return load(folder)


def test_multi_label_thresholds_and_abstention(
    tmp_path: Path, rapid: TextClassifier, lines: list[np.ndarray]
) -> None:
    up, down = lines[0], lines[len(TEXTS)]
    p_up = reference_probabilities(rapid, [up])[0]
    pipe = _variant(
        tmp_path,
        rapid,
        lines,
        lambda p: p,
        multi_label=True,
        thresholds={"180": 0.0},
        min_confidence=0.0,
    )
    both = _classify(pipe, up)  # "0" over 0.5; "180" over its threshold 0
    assert both.multi_label and both.abstained is None
    assert both.positive == ("0", "180") and both.label == "0"
    assert both.score == pytest.approx(float(p_up[0]), abs=1e-4)
    assert float(p_up[1]) < 0.5
    pipe.close()
    pipe = _variant(
        tmp_path,
        rapid,
        lines,
        lambda p: p,
        multi_label=True,
        thresholds={"180": 0.0},
        min_confidence=0.5,
    )
    unsure = _classify(pipe, up)  # "180" over its threshold 0 but under min_confidence 0.5
    assert unsure.label is None and unsure.positive == ()
    assert unsure.abstained is not None
    assert unsure.abstained.startswith("180 score ") and "min_confidence 0.5" in unsure.abstained
    assert unsure.score == pytest.approx(float(p_up[1]), abs=1e-4)
    check_result_body(unsure.kind, unsure.body())
    pipe.close()
    # Default thresholds (0.5), no abstention floor: one label each way, none for an empty line.
    pipe = _variant(tmp_path, rapid, lines, lambda p: p, multi_label=True, min_confidence=0.0)
    assert _classify(pipe, up).positive == ("0",)
    assert _classify(pipe, down).positive == ("180",)
    blank = np.full((48, 192, 3), 255, np.uint8)
    p_blank = reference_probabilities(rapid, [blank])[0]
    nothing = _classify(pipe, blank)
    assert nothing.positive == tuple(LABELS[i] for i in np.flatnonzero(p_blank >= 0.5))
    pipe.close()


def test_multi_label_sigmoid_scores(
    tmp_path: Path, rapid: TextClassifier, lines: list[np.ndarray]
) -> None:
    """Sigmoid over the model's outputs (here probabilities, so scores lie in [0.5, 0.73]):
    a per-class threshold of 0.7 keeps only confident directions."""

    def sigmoid(p: np.ndarray) -> np.ndarray:
        return (1.0 / (1.0 + np.exp(-p.astype(np.float64)))).astype(np.float32)

    pipe = _variant(
        tmp_path,
        rapid,
        lines,
        sigmoid,
        scores="sigmoid",
        multi_label=True,
        thresholds={"0": 0.7, "180": 0.7},
        min_confidence=0.6,
    )
    assert pipe.check_golden() == []
    expected = sigmoid(reference_probabilities(rapid, lines))
    for image, want in zip(lines, expected, strict=True):
        result = _classify(pipe, image)
        assert dict(result.top) == pytest.approx(
            dict(zip(LABELS, want.tolist(), strict=True)), abs=1e-5
        )
        assert result.positive == tuple(LABELS[i] for i in np.argsort(-want) if want[i] >= 0.7)
        assert result.abstained is None
        check_result_body(result.kind, result.body())
    pipe.close()


def test_the_golden_check_catches_drift(
    tmp_path: Path, rapid: TextClassifier, lines: list[np.ndarray]
) -> None:
    scores = reference_probabilities(rapid, lines)
    folder = write_bundle(tmp_path / "d", lines, scores + np.float32(2e-4))
    with pytest.raises(edgemed.GoldenMismatchError, match=r"max \|score diff\|"):
        load(folder)
    swapped = write_bundle(tmp_path / "s", lines, scores[:, ::-1])
    with pytest.raises(edgemed.GoldenMismatchError, match=r"top-1 agreement 0\.000"):
        load(swapped)


def test_models_info_input_contract(bundle: Path) -> None:
    spec = find_task("image-classification")
    assert spec is not None and spec.input_contract is not None
    parsed = parse_manifest(json.loads((bundle / "manifest.json").read_text()), bundle)
    contract = spec.input_contract(parsed)
    assert contract["kind"] == "image" and contract["colour_order"] == "BGR"
    assert contract["model_input"]["size"] == [48, 192] and contract["labels"] == LABELS
