"""Wire protocol between devices and the fleet (DESIGN.md §4): topics and versioned JSON payloads.

Shared by both sides; the fleet imports nothing else from the device side except results/errors.
Topics carry only the opaque fleet ``device_id``: never patient data.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from .errors import InputError, PayloadError
from .results import Result

__all__ = [
    "ACK_SCHEMA",
    "NEWS2_PARAMETERS",
    "PREFIX",
    "RESULT_SCHEMA",
    "STATUS_SCHEMA",
    "ResultMessage",
    "check_device_id",
    "count_results",
    "decode_ack",
    "decode_result",
    "decode_status",
    "encode_ack",
    "encode_result",
    "encode_status",
    "join_results",
    "parse_topic",
    "prepare_result",
    "split_results",
    "stamp_result",
    "topic",
]

RESULT_SCHEMA = "edgemed.result/1"
ACK_SCHEMA = "edgemed.ack/1"
STATUS_SCHEMA = "edgemed.status/1"
PREFIX = "edgemed/v1"
Channel = Literal["results", "status", "ack", "cmd"]
_CHANNELS = ("results", "status", "ack", "cmd")
_DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_PAYLOAD_BYTES = 256 * 1024  # one result
# One message on a results topic carries one or more results, one JSON object per line (JSON
# Lines: compact JSON never contains a raw newline). Batching amortises the per-message cost of
# MQTT (publish, PUBACK, broker routing); each line is validated, stored and acked on its own.
MAX_MESSAGE_BYTES = 1024 * 1024
BATCH_TARGET_BYTES = 128 * 1024  # the device starts a new message beyond this
# One encoder for every result: json.dumps with options builds a new one per call (~10 % of
# encoding a result). JSONEncoder.encode keeps no state between calls, so sharing is safe.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def check_device_id(device_id: str) -> str:
    """Device ids are opaque fleet ids usable as MQTT client id and topic level."""
    if not isinstance(device_id, str) or not _DEVICE_ID_RE.match(device_id):
        raise InputError(
            f"device_id {device_id!r} must be 1-64 characters of letters, digits, '.', '_', '-'"
        )
    return device_id


def topic(device_id: str, channel: Channel) -> str:
    return f"{PREFIX}/{check_device_id(device_id)}/{channel}"


def parse_topic(name: str) -> tuple[str, str]:
    """``edgemed/v1/{device_id}/{channel}`` -> (device_id, channel); PayloadError otherwise."""
    parts = name.split("/")
    if len(parts) != 4 or "/".join(parts[:2]) != PREFIX or parts[3] not in _CHANNELS:
        raise PayloadError(f"not an edgemed topic: {name!r}")
    try:
        return check_device_id(parts[2]), parts[3]
    except InputError as exc:
        raise PayloadError(str(exc)) from exc


def encode_result(
    result: Result,
    *,
    device_id: str,
    seq: int,
    boot_id: str,
    lowest_unacked_seq: int,
    clock_synced: bool,
    encounter: str | None = None,
) -> bytes:
    """The JSON payload of one result; ``encounter`` is an opaque reference, never a name."""
    unstamped = prepare_result(
        result, device_id=device_id, clock_synced=clock_synced, encounter=encounter
    )
    return stamp_result(unstamped, seq=seq, boot_id=boot_id, lowest_unacked_seq=lowest_unacked_seq)


def prepare_result(
    result: Result, *, device_id: str, clock_synced: bool, encounter: str | None = None
) -> bytes:
    """The payload without its sequence fields (seq, boot_id, lowest_unacked_seq).

    The device encodes this before it enters the outbox's group commit, where only
    :func:`stamp_result` runs: the commit's critical section stays short.
    """
    p = result.provenance
    message = {
        "schema": RESULT_SCHEMA,
        "result_id": str(uuid.uuid4()),
        "device_id": check_device_id(device_id),
        "created_at": p.created_at,
        "clock_synced": clock_synced,
        "model": {
            "id": p.model_id,
            "version": p.model_version,
            "sha256": p.model_sha256,
            "backend": p.backend,
            "device": p.device,
            "precision": p.precision,
        },
        "input": {
            "sha256": p.input_sha256,
            "kind": p.input_kind,
            "window": p.window.body() if p.window else None,
        },
        "timings_ms": {
            "preprocess": p.timings.preprocess_ms,
            "inference": p.timings.inference_ms,
            "postprocess": p.timings.postprocess_ms,
        },
        "edgemed_version": p.edgemed_version,
        "encounter": encounter,
        "result": result.body(),
    }
    return _COMPACT_JSON.encode(message).encode("utf-8")


def stamp_result(unstamped: bytes, *, seq: int, boot_id: str, lowest_unacked_seq: int) -> bytes:
    """A prepared payload with its sequence fields added (a JSON object's keys are unordered)."""
    if not unstamped.startswith(b"{") or unstamped == b"{}":
        raise InputError("stamp_result takes the non-empty JSON object prepare_result makes")
    head = f'{{"seq":{int(seq)},"boot_id":{json.dumps(boot_id)},'
    return f'{head}"lowest_unacked_seq":{int(lowest_unacked_seq)},'.encode() + unstamped[1:]


@dataclass(frozen=True, kw_only=True)
class ResultMessage:
    """A validated result payload as the fleet sees it."""

    device_id: str
    seq: int
    boot_id: str
    result_id: str
    lowest_unacked_seq: int
    created_at: float
    model_id: str
    model_version: str
    kind: str
    payload_sha256: str
    body: dict[str, Any]
    raw: str  # the payload exactly as received (stored verbatim: no re-serialisation)


def _load_json(raw: bytes, what: str) -> dict[str, Any]:
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"{what}: {len(raw)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"{what}: not UTF-8 JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise PayloadError(f"{what}: expected a JSON object")
    return data


def _schema_major(data: dict[str, Any], expected: str, what: str) -> None:
    schema = data.get("schema")
    if not isinstance(schema, str) or schema.rsplit("/", 1)[0] != expected.rsplit("/", 1)[0]:
        raise PayloadError(f"{what}: schema {schema!r} is not {expected}")
    if schema != expected:
        raise PayloadError(
            f"{what}: unsupported schema version {schema!r} (this fleet reads {expected})"
        )


def _field(data: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (
        isinstance(value, bool) and kind in (int, float, (int, float))
    ):
        raise PayloadError(f"{what}: field {key!r} missing or of the wrong type")
    return value


def decode_result(raw: bytes, *, topic_device_id: str) -> ResultMessage:
    """Validate a result payload; its device_id must match the topic it arrived on."""
    data = _load_json(raw, "result")
    _schema_major(data, RESULT_SCHEMA, "result")
    device_id = _field(data, "device_id", str, "result")
    if device_id != topic_device_id:
        raise PayloadError(f"result: device_id {device_id!r} does not match its topic")
    seq = _field(data, "seq", int, "result")
    low = _field(data, "lowest_unacked_seq", int, "result")
    if not 1 <= low <= seq < 2**63:
        raise PayloadError("result: need 1 <= lowest_unacked_seq <= seq < 2**63")
    model = _field(data, "model", dict, "result")
    body = _field(data, "result", dict, "result")
    kind = _field(body, "kind", str, "result.result")
    _check_body(kind, body)
    return ResultMessage(
        device_id=device_id,
        seq=seq,
        boot_id=_field(data, "boot_id", str, "result"),
        result_id=_field(data, "result_id", str, "result"),
        lowest_unacked_seq=low,
        created_at=float(_field(data, "created_at", (int, float), "result")),
        model_id=_field(model, "id", str, "result.model"),
        model_version=_field(model, "version", str, "result.model"),
        kind=kind,
        payload_sha256=hashlib.sha256(raw).hexdigest(),
        body=data,
        raw=raw.decode("utf-8"),
    )


NEWS2_PARAMETERS = (
    "respiration_rate",
    "spo2",
    "air_or_oxygen",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
)


def _check_body(kind: str, body: dict[str, Any]) -> None:
    """Kinds the fleet acts on (alerts) must carry well-formed fields; others pass through."""
    if kind == "monitor-reading":  # the fleet alerts on the NEWS2 it carries
        if body.get("news2") is not None:
            _check_body("news2", _field(body, "news2", dict, "result.result"))
        if body.get("news2_partial") is not None:
            partial = _field(body, "news2_partial", dict, "result.result")
            scores = _field(partial, "parameter_scores", dict, "result.result.news2_partial")
            total = _field(partial, "partial_score", int, "result.result.news2_partial")
            if not set(scores) <= set(NEWS2_PARAMETERS) or not all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 3
                for v in scores.values()
            ):
                raise PayloadError("news2_partial: parameter_scores must be NEWS2 parameters, 0-3")
            if total != sum(scores.values()):
                raise PayloadError("news2_partial: partial_score is not the sum of its scores")
    elif kind == "news2":
        score = _field(body, "score", int, "result.result")
        params = _field(body, "parameter_scores", dict, "result.result")
        if set(params) != set(NEWS2_PARAMETERS) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 3 for v in params.values()
        ):
            raise PayloadError(
                f"news2: parameter_scores must give 0-3 for each of {', '.join(NEWS2_PARAMETERS)}"
            )
        if score != sum(params.values()):
            raise PayloadError(f"news2: score {score} is not the sum of its parameter scores")
    elif kind == "seizure-probability":
        for key in ("probability", "threshold"):
            value = _field(body, key, (int, float), "result.result")
            if not 0.0 <= value <= 1.0:
                raise PayloadError(f"seizure-probability: {key} {value} is outside [0, 1]")


def join_results(payloads: list[bytes]) -> bytes:
    """Several result payloads as one results-topic message (see MAX_MESSAGE_BYTES)."""
    return b"\n".join(payloads)


def count_results(message: bytes) -> int:
    """How many results a results-topic message carries (without splitting it)."""
    return message.count(b"\n") + 1


def split_results(message: bytes) -> list[bytes]:
    """A results-topic message -> its result payloads, one per line (PayloadError if the whole
    message is too large; each line is then decoded, and dead-lettered, on its own)."""
    if len(message) > MAX_MESSAGE_BYTES:
        raise PayloadError(f"results message: {len(message)} bytes exceeds {MAX_MESSAGE_BYTES}")
    return message.split(b"\n")


def encode_ack(ack_seq: int) -> bytes:
    """Fleet -> device: every seq <= ack_seq is committed at the fleet."""
    return json.dumps({"schema": ACK_SCHEMA, "ack_seq": ack_seq}).encode()


def decode_ack(raw: bytes) -> int:
    data = _load_json(raw, "ack")
    _schema_major(data, ACK_SCHEMA, "ack")
    ack_seq = _field(data, "ack_seq", int, "ack")
    if ack_seq < 0:
        raise PayloadError("ack: ack_seq must be >= 0")
    return int(ack_seq)


def encode_status(state: Literal["online", "offline"], **fields: Any) -> bytes:
    """Retained birth (online) / LWT death (offline) on the status topic."""
    return json.dumps({"schema": STATUS_SCHEMA, "state": state, **fields}).encode()


def decode_status(raw: bytes) -> dict[str, Any]:
    data = _load_json(raw, "status")
    _schema_major(data, STATUS_SCHEMA, "status")
    if data.get("state") not in ("online", "offline"):
        raise PayloadError("status: state must be 'online' or 'offline'")
    return data
