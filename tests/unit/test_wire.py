"""Wire protocol: round trip, and every kind of bad payload is a PayloadError."""

from __future__ import annotations

import base64
import dataclasses
import json

import numpy as np
import pytest
from jsonschema import Draft202012Validator

import edgemed
from edgemed import wire
from edgemed.fleet.validation import PayloadValidator, load_schema
from edgemed.results import ModelUse


@pytest.fixture(scope="module")
def payload(encoder: edgemed.Pipeline) -> bytes:
    result = encoder("shortness of breath on exertion")
    return wire.encode_result(
        result, device_id="bed-7", seq=12, boot_id="b1", lowest_unacked_seq=10, clock_synced=True
    )


@pytest.fixture(scope="module")
def encoder() -> edgemed.Pipeline:
    return edgemed.load("clinical-text-minilm", threads=1)


def test_round_trip(payload: bytes, encoder: edgemed.Pipeline) -> None:
    msg = wire.decode_result(payload, topic_device_id="bed-7")
    assert (msg.device_id, msg.seq, msg.lowest_unacked_seq, msg.boot_id) == ("bed-7", 12, 10, "b1")
    assert msg.model_id == "clinical-text-minilm" and msg.kind == "text-embedding"
    body = msg.body
    assert body["schema"] == "edgemed.result/1" and body["clock_synced"] is True
    assert body["model"]["sha256"] == encoder.manifest.model_sha256
    emb = np.frombuffer(base64.b64decode(body["result"]["embedding"]["b64"]), dtype="<f2")
    ref = encoder("shortness of breath on exertion").embedding
    assert float(emb.astype(np.float32) @ ref) > 0.9999  # float16 on the wire loses nothing useful


def test_topics() -> None:
    assert wire.topic("bed-7", "results") == "edgemed/v1/bed-7/results"
    assert wire.parse_topic("edgemed/v1/bed-7/ack") == ("bed-7", "ack")
    for bad in (
        "edgemed/v1/bed-7",
        "edgemed/v2/bed-7/results",
        "edgemed/v1/a b/results",
        "x/y/z/w",
    ):
        with pytest.raises(edgemed.PayloadError):
            wire.parse_topic(bad)
    for bad_id in ("", "a/b", "+", "#", "x" * 65, "név"):
        with pytest.raises(edgemed.InputError):
            wire.check_device_id(bad_id)


def _mutate(payload: bytes, **changes: object) -> bytes:
    data = json.loads(payload)
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: b"\x00\xffgarbage", "not UTF-8 JSON"),
        (lambda p: b"[1, 2, 3]", "JSON object"),
        (lambda p: p[: len(p) // 2], "not UTF-8 JSON"),
        (lambda p: _mutate(p, schema="edgemed.result/2"), "unsupported schema version"),
        (lambda p: _mutate(p, schema="something/1"), "is not edgemed.result/1"),
        (lambda p: _mutate(p, seq=None), "'seq'"),
        (lambda p: _mutate(p, seq="12"), "'seq'"),
        (lambda p: _mutate(p, seq=True), "'seq'"),
        (lambda p: _mutate(p, lowest_unacked_seq=13), "lowest_unacked_seq <= seq"),
        (lambda p: _mutate(p, device_id="bed-8"), "does not match its topic"),
        (lambda p: _mutate(p, model="x"), "'model'"),
        (lambda p: b"{" + b" " * 300_000 + b"}", "exceeds"),
    ],
)
def test_bad_payloads(payload: bytes, make: object, match: str) -> None:
    with pytest.raises(edgemed.PayloadError, match=match):
        wire.decode_result(make(payload), topic_device_id="bed-7")  # type: ignore[operator]


def test_ack_and_status() -> None:
    assert wire.decode_ack(wire.encode_ack(41)) == 41
    with pytest.raises(edgemed.PayloadError):
        wire.decode_ack(b'{"schema": "edgemed.ack/1", "ack_seq": -1}')
    status = wire.decode_status(wire.encode_status("online", boot_id="b", connection=2))
    assert status["state"] == "online" and status["connection"] == 2
    with pytest.raises(edgemed.PayloadError):
        wire.decode_status(b'{"schema": "edgemed.status/1", "state": "maybe"}')


def test_results_message_lines_round_trip(encoder: edgemed.Pipeline) -> None:
    result = encoder("line one\nline two")  # a newline in the input never reaches the wire raw
    payloads = [
        wire.encode_result(
            result, device_id="bed-1", seq=i, boot_id="b", lowest_unacked_seq=1, clock_synced=False
        )
        for i in (1, 2, 3)
    ]
    message = wire.join_results(payloads)
    assert wire.split_results(message) == payloads and wire.count_results(message) == 3
    assert wire.split_results(payloads[0]) == [payloads[0]]  # a lone result is a batch of one
    assert all(b"\n" not in p for p in payloads)  # compact JSON escapes newlines in text


def test_oversized_results_message_is_refused() -> None:
    with pytest.raises(edgemed.PayloadError, match="exceeds"):
        wire.split_results(b"x" * (wire.MAX_MESSAGE_BYTES + 1))


def test_stamped_payload_equals_the_one_shot_encoding(encoder: edgemed.Pipeline) -> None:
    result = encoder("fever")
    unstamped = wire.prepare_result(result, device_id="bed-1", clock_synced=True)
    stamped = json.loads(wire.stamp_result(unstamped, seq=7, boot_id="b", lowest_unacked_seq=3))
    assert stamped["seq"] == 7 and stamped["boot_id"] == "b" and stamped["lowest_unacked_seq"] == 3
    message = wire.decode_result(json.dumps(stamped).encode(), topic_device_id="bed-1")
    assert message.seq == 7
    with pytest.raises(edgemed.InputError):
        wire.stamp_result(b"{}", seq=1, boot_id="b", lowest_unacked_seq=1)


# --- further models in the provenance (model.components) --------------------------------

RECOGNIZER = ModelUse(role="recognizer", sha256="c" * 64, backend="onnxruntime", device="cpu")


def _with_components(result: edgemed.Result, *uses: ModelUse) -> edgemed.Result:
    provenance = dataclasses.replace(result.provenance, components=uses)
    return dataclasses.replace(result, provenance=provenance)  # type: ignore[type-var]


def _encode(result: edgemed.Result) -> bytes:
    return wire.encode_result(
        result, device_id="bed-7", seq=5, boot_id="b1", lowest_unacked_seq=5, clock_synced=True
    )


def test_components_go_on_the_wire_only_when_a_further_model_contributed(
    payload: bytes, encoder: edgemed.Pipeline
) -> None:
    assert "components" not in json.loads(payload)["model"]  # single-model results unchanged
    raw = _encode(_with_components(encoder("fever"), RECOGNIZER))
    model = json.loads(raw)["model"]
    assert model["components"] == [
        {"role": "recognizer", "sha256": "c" * 64, "backend": "onnxruntime", "device": "cpu"}
    ]
    assert model["sha256"] == encoder.manifest.model_sha256  # the main model stays where it was
    validator = PayloadValidator()
    for accepted in (payload, raw):
        msg = validator.result(accepted, topic_device_id="bed-7")
        assert Draft202012Validator(load_schema("result-1")).is_valid(msg.body)


def test_a_fleet_older_than_components_accepts_them_as_an_extension(
    encoder: edgemed.Pipeline,
) -> None:
    """Rolling upgrade: devices that send components before their fleet knows the field."""
    older = load_schema("result-1")
    del older["properties"]["model"]["properties"]["components"]
    del older["$defs"]["component"]
    raw = _encode(_with_components(encoder("fever"), *[RECOGNIZER] * 16))
    assert Draft202012Validator(older).is_valid(json.loads(raw))


@pytest.mark.parametrize(
    ("components", "rule"),
    [
        ([RECOGNIZER.body()] * 17, "maxItems"),
        ([{k: v for k, v in RECOGNIZER.body().items() if k != "sha256"}], "sha256"),
        ([{**RECOGNIZER.body(), "sha256": "C" * 64}], "pattern"),
        ([{**RECOGNIZER.body(), "role": ""}], "minLength"),
        ([{**RECOGNIZER.body(), "device": "x" * 65}], "maxLength"),
        ([{**RECOGNIZER.body(), **{f"k{i}": i for i in range(13)}}], "maxProperties"),
        ("recognizer", "type"),
    ],
)
def test_the_fleet_bounds_and_checks_components(
    payload: bytes, components: object, rule: str
) -> None:
    data = json.loads(payload)
    data["model"]["components"] = components
    with pytest.raises(edgemed.PayloadError, match=rule):
        PayloadValidator().result(json.dumps(data).encode(), topic_device_id="bed-7")
    data["model"]["components"] = [{**RECOGNIZER.body(), "precision": "int8"}]  # newer fields
    PayloadValidator().result(json.dumps(data).encode(), topic_device_id="bed-7")


# --- the encoding: orjson, never a non-finite number ------------------------------------


def _with_timing(result: edgemed.Result, value: float) -> edgemed.Result:
    timings = dataclasses.replace(result.provenance.timings, preprocess_ms=value)
    provenance = dataclasses.replace(result.provenance, timings=timings)
    return dataclasses.replace(result, provenance=provenance)  # type: ignore[type-var]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), np.float64("nan")])
def test_a_non_finite_number_anywhere_in_a_payload_is_refused(
    encoder: edgemed.Pipeline, value: float
) -> None:
    """orjson writes NaN as null where the stdlib refused it: a timing outside the result's
    contract must still never reach the wire as null (or as anything)."""
    with pytest.raises(ValueError, match="not JSON compliant"):
        wire.prepare_result(_with_timing(encoder("fever"), value), device_id="d", clock_synced=True)


def test_what_orjson_cannot_write_is_encoded_as_before(encoder: edgemed.Pipeline) -> None:
    """A NumPy float64 (a float subclass the stdlib writes, orjson refuses) and text beyond
    ASCII: the same JSON values either way, read back by the fleet's own decoder."""
    result = _with_timing(encoder("fièvre à 39"), np.float64(1.25))
    raw = wire.prepare_result(result, device_id="d", clock_synced=True, encounter="enc-ü")
    data = json.loads(raw)
    assert data["timings_ms"]["preprocess"] == 1.25 and data["encounter"] == "enc-ü"
    assert data == json.loads(wire._COMPACT_JSON.encode(data))
    stamped = wire.stamp_result(raw, seq=1, boot_id="b", lowest_unacked_seq=1)
    assert wire.decode_result(stamped, topic_device_id="d").body["encounter"] == "enc-ü"


def test_what_the_stdlib_refused_to_encode_is_still_refused(encoder: edgemed.Pipeline) -> None:
    """orjson would write a dataclass or a datetime (and NaN inside one as null) where the
    stdlib refused them: those go to the stdlib, which refuses them as before."""
    import datetime

    result = encoder("fever")
    for odd in (result.provenance.timings, datetime.datetime(2026, 1, 1)):
        with pytest.raises(TypeError):
            wire._encode({"x": odd})
    assert json.loads(wire._encode({1: 2.5, "a": [1]})) == {"1": 2.5, "a": [1]}  # as json
