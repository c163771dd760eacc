"""Task ``signal-classification`` on a graph whose answer is known exactly: three leads in the
[batch, samples, channels] layout (``nsc``), fixed normalisation ``(x - offset) / scale`` in
microvolts, and a model that returns each lead's mean over the window as its logit (sigmoid).
So every score follows from the window by hand, which pins the layout, the lead order, the
units, the normalisation, resampling and the abstention rule. The real network (an ECG
artefact CNN built through the command line) is tests/integration/test_bundle_signal.py.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import edgemed
from edgemed.contracts import ContractError, check_result_body
from edgemed.errors import GoldenMismatchError, InputError, ManifestError
from edgemed.fleet.validation import PayloadValidator
from edgemed.io import Signal
from edgemed.results import SignalClassification
from edgemed.wire import encode_result

onnx = pytest.importorskip("onnx")
FS, SAMPLES = 100, 200
LEADS = ["I", "II", "III"]
OFFSET, SCALE = [10.0, 0.0, 0.0], [100.0, 100.0, 200.0]
PREPROCESS: dict[str, Any] = {
    "leads": LEADS, "units": "uV", "normalize": "fixed", "offset": OFFSET, "scale": SCALE,
    "layout": "nsc",
}  # fmt: skip
POSTPROCESS: dict[str, Any] = {
    "labels": ["a", "b", "c"], "scores": "sigmoid", "top_k": 2, "min_confidence": 0.6,
}  # fmt: skip
STREAM: dict[str, Any] = {
    "sampling_rate_hz": FS, "channels": 3, "samples": SAMPLES, "hop": FS,
    "min_sampling_rate_hz": 50, "max_sampling_rate_hz": 400,
}  # fmt: skip


def lead_means_model(path: Path) -> None:
    """x [batch, SAMPLES, 3] -> ReduceMean over samples -> scores [batch, 3]."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["scores"], axes=[1], keepdims=0)],
        "lead_means",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", SAMPLES, 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def window(values: list[float]) -> np.ndarray:
    """(3, SAMPLES) float32, each lead constant (uV)."""
    return np.repeat(np.array(values, np.float32)[:, None], SAMPLES, axis=1)


def expected(values: list[float]) -> list[float]:
    return [1 / (1 + math.exp(-(v - o) / s)) for v, o, s in zip(values, OFFSET, SCALE, strict=True)]


def write_bundle(folder: Path, golden_scores: list[list[float]] | None = None, **over: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lead_means_model(folder / "model.onnx")
    golden = [window([110, 30, 100]), window([10, 60, 0])]
    np.savez(folder / "gi.npz", signal_0=golden[0], signal_1=golden[1], fs=np.array([FS, FS]))
    scores = golden_scores or [expected([110, 30, 100]), expected([10, 60, 0])]
    np.savez(folder / "go.npz", scores=np.array(scores, np.float32))
    (folder / "MODEL_CARD.md").write_text("# lead means (test bundle)\n")
    files = {"model": "model.onnx", "golden_inputs": "gi.npz", "golden_outputs": "go.npz",
             "model_card": "MODEL_CARD.md"}  # fmt: skip
    manifest: dict[str, Any] = {
        "schema": "edgemed.manifest/1", "id": "lead-means", "version": "1.0.0",
        "task": "signal-classification", "summary": "test", "license": "MIT",
        "medical_device": False, "source": {"package": "tests", "upstream": "-", "recipe": "-"},
        "backends": ["onnxruntime"],
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", SAMPLES, 3]}],
        "outputs": [{"name": "scores", "dtype": "float32", "shape": ["batch", 3]}],
        "preprocess": PREPROCESS, "postprocess": POSTPROCESS, "stream": STREAM,
        "golden": {"max_abs_diff": 1e-5, "min_label_agreement": 1.0}, "metrics": {},
        "artifacts": {
            role: {"path": name, "sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest()}
            for role, name in files.items()
        },
    }  # fmt: skip
    for key, value in over.items():
        section, _, field = key.partition("__")
        if value is None:
            manifest[section].pop(field) if field else manifest.pop(section)
        elif field:
            manifest[section] = {**manifest[section], field: value}
        else:
            manifest[section] = value
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with edgemed.load(write_bundle(tmp_path_factory.mktemp("lead-means"))) as pipe:
        yield pipe


def test_scores_follow_the_manifest_exactly(model: Any) -> None:
    result = model(window([110, 30, 100]))
    a, _, c = expected([110, 30, 100])
    assert isinstance(result, SignalClassification) and result.label == "a"
    assert [label for label, _ in result.top] == ["a", "c"]  # top_k 2, best first
    assert result.top[0][1] == pytest.approx(a, abs=1e-6)
    assert result.top[1][1] == pytest.approx(c, abs=1e-6)
    in_mv = model({"signal": window([110, 30, 100]) / 1000, "fs": FS, "units": "mV"})
    assert in_mv.top[0][1] == pytest.approx(a, abs=1e-6)
    per_lead = model({"signal": window([110, 30, 100]), "fs": FS, "units": ["uV", "µV", "uV"]})
    assert per_lead.label == "a"


def test_leads_are_picked_by_name_and_resampled(model: Any) -> None:
    """A Signal with the leads in another order, plus one the model does not read, at 200 Hz."""
    data = np.repeat(np.array([[100.0], [0.11], [30.0], [7.0]], np.float32), 2 * SAMPLES, axis=1)
    recording = Signal(data=data, sampling_rate_hz=200, channel_names=("III", "I", "II", "V1"),
                       units=("uV", "mV", "uV", "uV"))  # fmt: skip
    result = model(recording)
    assert result.label == "a"  # edges of the resampling filter move the means a little
    assert result.top[0][1] == pytest.approx(expected([110, 30, 100])[0], abs=0.02)


def test_abstains_below_min_confidence_saying_why(model: Any) -> None:
    result = model(window([10, 0, 0]))  # every logit 0: sigmoid 0.5 < 0.6
    assert result.label is None and result.score == pytest.approx(0.5)
    assert result.abstained == "top score 0.5 < min_confidence 0.6"
    check_result_body(result.kind, result.body())


def test_streams_three_leads_at_another_rate(model: Any) -> None:
    signal = np.repeat(np.array([[110.0], [30.0], [100.0]], np.float32), 400 * 6, axis=1)
    # a list of blocks (channels, samples): iterating one 2-D array would yield its rows
    results = list(model.stream([signal], sampling_rate_hz=400))
    assert len(results) == 5  # 6 s, 2 s windows every 1 s
    assert {r.label for r in results} == {"a"}
    assert results[2].body()["window_start_s"] == 2.0
    with pytest.raises(InputError, match="supports 50-400 Hz"):
        list(model.stream([signal], sampling_rate_hz=1000))
    with pytest.raises(InputError, match=r"expected shape \(3, samples\)"):
        list(model.stream([signal[:2]], sampling_rate_hz=400))


def test_result_travels_to_the_fleet(model: Any) -> None:
    result = next(model.stream([window([110, 30, 100])], sampling_rate_hz=FS))
    raw = encode_result(result, device_id="bed-3", seq=1, boot_id="b" * 32,
                        lowest_unacked_seq=1, clock_synced=True)  # fmt: skip
    msg = PayloadValidator().result(raw, topic_device_id="bed-3")
    assert msg.kind == "signal-classification"
    assert msg.body["result"] == json.loads(json.dumps(result.body()))
    assert msg.body["input"]["kind"] == "signal"


def _body(**changes: Any) -> dict[str, Any]:
    sound = {"kind": "signal-classification", "label": "a", "score": 0.9,
             "top": [["a", 0.9], ["b", 0.1]], "abstained": None}  # fmt: skip
    return {**sound, **changes}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_body(label="b"), "best-scored label"),
        (_body(label=None), "or why it was withheld"),
        (_body(abstained="low"), "or why it was withheld"),
        (_body(score=0.5), "the best label's"),
        (_body(top=[["a", 0.9], ["b", 1.1]]), r"outside \[0, 1\]"),
        (_body(top=[["a", 0.1], ["b", 0.9]]), "best first"),
        (_body(top=[]), "at least the best label"),
        (_body(top=[["a", 0.9], ["a", 0.1]]), "labels repeat"),
        (_body(window_start_s=2.0, window_end_s=2.0), "a window must have a length"),
        (_body(window_start_s=-1.0, window_end_s=1.0), "outside"),
    ],
)
def test_the_contract_refuses_bodies_out_of_range(body: dict[str, Any], message: str) -> None:
    check_result_body("signal-classification", _body())
    with pytest.raises(ContractError, match=message):
        check_result_body("signal-classification", body)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stream": None}, "needs its window"),
        ({"preprocess__leads": ["I", "II"]}, "preprocess.leads names 2"),
        ({"preprocess__leads": ["I", "I", "II"]}, "names repeat"),
        ({"preprocess__units": " "}, "state the units"),
        ({"preprocess__normalize": "minmax"}, "'minmax' is not one of"),
        ({"preprocess__scale": [1.0, 0.0, 1.0]}, "positive number"),
        ({"preprocess__normalize": "zscore"}, "offset and scale are for normalize 'fixed'"),
        ({"preprocess__layout": "ncs"}, r"\[batch, 3, 200\]"),
        ({"preprocess__extra": 1}, "unknown key"),
        ({"postprocess__labels": ["a"]}, "two or more"),
        ({"postprocess__top_k": 4}, "top_k"),
        ({"postprocess__scores": "logits"}, "'logits' is not one of"),
    ],
)
def test_manifest_errors_name_the_key(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        edgemed.load(write_bundle(tmp_path / "b", **change))


def test_golden_drift_refuses_the_bundle(tmp_path: Path) -> None:
    folder = write_bundle(tmp_path / "drift", golden_scores=[[0.1, 0.2, 0.9], [0.5, 0.5, 0.5]])
    with pytest.raises(GoldenMismatchError, match=r"max \|score diff\|"):
        edgemed.load(folder)
